"""Issue 15 part 5, "messages": what the README tells a person to type works as written."""

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

README = Path(__file__).resolve().parents[1] / "README.md"
ODD_NAMES = ["tab\there.png", "new\nline.png", "plain.png"]


@pytest.mark.parametrize("shell, first_line", [("bash", "_logreg_completion() {"),
                                               ("zsh", "#compdef logreg"),
                                               ("fish", "function _logreg_completion;")])
def test_the_readme_completion_lines_produce_a_completion_script(shell, first_line):
    assert f"_LOGREG_COMPLETE={shell}_source logreg" in README.read_text(encoding="utf-8")
    env = {**subprocess_env(), "_LOGREG_COMPLETE": f"{shell}_source"}
    done = subprocess.run(logreg_command(), capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == first_line
    assert "_LOGREG_COMPLETE" in done.stdout


def test_the_readme_says_how_to_get_logreg_on_the_path():
    assert "source .venv/bin/activate" in README.read_text(encoding="utf-8")


@pytest.fixture
def inbox(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 4)
    model = train_model(data, tmp_path / "model.npz", epochs=20)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, source in zip(ODD_NAMES, ["blue/000.png", "red/000.png", "blue/001.png"]):
        shutil.copy(data / source, inbox / name)
    return model, inbox


@pytest.mark.skipif(shutil.which("jq") is None, reason="the README's loop uses jq")
def test_the_readme_folder_sorting_loop_moves_names_with_tabs_and_newlines(inbox):
    model, folder = inbox
    text = README.read_text(encoding="utf-8")
    loop = re.search(r"\n    (logreg predict inbox/ --min-confidence 0\.8 --format jsonl \|\n"
                     r"(?:        .*\n)+)", text).group(1)
    env = {**subprocess_env(), "LOGREG_MODEL": str(model),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", loop], cwd=folder.parent, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.listdir(folder) == []
    moved = sorted((label.name, name) for label in (folder.parent / "sorted").iterdir()
                   for name in os.listdir(label))
    assert sorted(name for _, name in moved) == sorted(ODD_NAMES)


def test_csv_keeps_tabs_and_newlines_of_a_path_as_the_readme_says(inbox):
    model, folder = inbox
    result = CliRunner().invoke(cli, ["predict", "-m", str(model), "--format", "csv",
                                      str(folder)])
    assert result.exit_code == 0
    paths = [row["path"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert sorted(Path(path).name for path in paths) == sorted(ODD_NAMES)
    assert "the csv cell keeps them intact" in README.read_text(encoding="utf-8")
