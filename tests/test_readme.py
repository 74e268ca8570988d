"""The README documents every command the CLI has (the list comes from the click group)."""

from pathlib import Path

import pytest

from logreg_cli.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_exists():
    assert README.is_file(), f"{README} is missing"


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_is_in_the_readme(command):
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    assert f"logreg {command}" in text, f"README.md never shows `logreg {command}`"
