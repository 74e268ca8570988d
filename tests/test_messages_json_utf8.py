"""Issue 15 part 2, "messages": JSON and JSON lines carry names as they are (UTF-8), not as
\\uXXXX escapes; a lone surrogate (an undecodable path byte) is still escaped, as \\udcNN."""

import json
import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import logreg_command, subprocess_env

CLASSES = ["Über", "ñandú"]


@pytest.fixture
def unicode_model(make_image_folder, tmp_path):
    data = make_image_folder({name: 4 for name in CLASSES}, name="fotos_ä")
    model = tmp_path / "módel.npz"
    result = CliRunner().invoke(cli, ["train", str(data), "-m", str(model), "--size", "8x8",
                                      "--epochs", "5", "-q"])
    assert result.exit_code == 0, result.output
    return data, model


def json_outputs(data, model):
    image = str(data / "Über" / "000.png")
    return {
        "predict": ["predict", "-m", model, "--format", "jsonl", image],
        "evaluate": ["evaluate", data, "-m", model, "--format", "json"],
        "inspect": ["inspect", model, "--format", "json"],
        "explain": ["explain", image, "-m", model, "--format", "json"],
        "check": ["check", data, "--format", "json"],
    }


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect", "explain", "check"])
def test_json_carries_non_ascii_names_as_utf8(unicode_model, command):
    data, model = unicode_model
    args = [str(arg) for arg in json_outputs(data, model)[command]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    assert "\\u00dc" not in result.stdout and "\\u00f1" not in result.stdout
    assert "Über" in result.stdout
    if command in ("predict", "explain", "check"):
        assert "fotos_ä" in result.stdout
    if command == "inspect":
        assert "módel.npz" in result.stdout
    parsed = [json.loads(line) for line in result.stdout.splitlines()] \
        if command == "predict" else [json.loads(result.stdout)]
    assert parsed


def test_jsonl_keeps_utf8_names_and_escapes_an_undecodable_byte(unicode_model):
    """One path holding both: Ü as UTF-8, the byte 0xff as \\udcff (strict UTF-8 stdout)."""
    data, model = unicode_model
    image = os.fsdecode(os.fsencode(str(data / "Über")) + b"/\xff.png")
    shutil.copy(data / "Über" / "000.png", image)
    env = {**subprocess_env(), "PYTHONIOENCODING": "utf-8"}
    completed = subprocess.run(logreg_command("predict", "-m", model, "--format", "jsonl", image),
                               capture_output=True, env=env, timeout=60)
    assert completed.returncode == 0, completed.stderr
    line = completed.stdout.decode("utf-8")
    assert "fotos_ä/Über/\\udcff.png" in line
    assert os.fsencode(json.loads(line)["path"]) == os.fsencode(image)
    assert json.loads(line)["label"] in CLASSES
