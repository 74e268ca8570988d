"""Issue 11, "folders": names holding bytes that are not UTF-8 (a lone surrogate in Python).

A class folder so named is refused by name at train time; a model or feature file whose class
names hold a lone surrogate is refused when loaded; a PATH of such bytes is printed escaped
(\\xNN) in reports and on stderr, and as its original bytes in predict's output, and never
crashes a command, even where stdout is strict UTF-8 (LANG=en_US.UTF-8).
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def strict_utf8_run(*args):
    """A real process whose stdout refuses what is not UTF-8, as under LANG=en_US.UTF-8."""
    env = {**subprocess_env(), "PYTHONIOENCODING": "utf-8"}
    completed = subprocess.run(logreg_command(*args), capture_output=True, env=env, timeout=60)
    assert b"Traceback" not in completed.stderr, completed.stderr.decode("utf-8", "replace")
    return completed


@pytest.mark.parametrize("command", ["train", "flatten", "check", "evaluate"])
def test_a_class_folder_named_with_undecodable_bytes_is_refused_by_name(tmp_path, command):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    model = train_model(data, tmp_path / "model.npz", epochs=2)
    bad = os.fsdecode(os.fsencode(str(data)) + b"/\xffbird")
    os.mkdir(bad)
    shutil.copy(data / "blue" / "000.png", os.path.join(bad, "000.png"))
    out = tmp_path / "out.npz"
    extra = {"train": ["-m", out], "flatten": ["-o", out], "check": [],
             "evaluate": ["-m", model]}[command]
    result = run(command, data, *extra)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {data}/\\xffbird: a class folder name must be UTF-8 text "
                             "(this one holds other bytes); rename the folder\n")
    assert not out.exists()


def crafted_model(path, classes):
    n = 8 * 8 * 3
    np.savez(path, format_version=np.int64(1), weights=np.zeros((n, 1), np.float32),
             bias=np.zeros(1, np.float32), classes=np.array(classes),
             size=np.array([8, 8]), feature_mean=np.zeros(0, np.float32),
             feature_scale=np.zeros(0, np.float32), metadata=np.array("{}"))
    return path


@pytest.mark.parametrize("name, escaped", [("\ud800", "\\ud800"), ("cat\udcff", "cat\\xff")])
@pytest.mark.parametrize("command", ["inspect", "predict", "evaluate", "explain"])
def test_a_model_whose_class_name_is_not_text_is_refused(tmp_path, name, escaped, command):
    data = tmp_path / "data"
    paths = write_class_folders(data, ["blue", "red"], 2)
    model = crafted_model(tmp_path / "model.npz", [name, "dog"])
    args = {"inspect": [model], "predict": ["-m", model, paths[0]],
            "evaluate": [data, "-m", model], "explain": [paths[0], "-m", model]}[command]
    result = run(command, *args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {model}: class name '{escaped}' is not text (it holds a "
                             "lone surrogate); retrain with readable class names\n")


def test_a_feature_file_whose_class_name_is_not_text_is_refused(tmp_path):
    features = tmp_path / "features.npz"
    np.savez(features, X=np.zeros((2, 192), np.uint8), y=np.array([0, 1]),
             classes=np.array(["\udcffcat", "dog"]), paths=np.array(["a.png", "b.png"]),
             size=np.array([8, 8]), metadata=np.array("{}"))
    result = run("train", features, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {features}: class name '\\xffcat' is not text (it holds a "
                             "lone surrogate); retrain with readable class names\n")
    assert not (tmp_path / "m.npz").exists()


@pytest.fixture
def undecodable_files(tmp_path):
    """data/blue/\\xff.png (a copy of a red image, so misclassified), data/red/\\xfe.png (not an image),
    data/red/\\xfd.txt (a stray), and a model trained without them."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    model = train_model(data, tmp_path / "model.npz", epochs=5)
    base = os.fsencode(str(data))
    shutil.copy(data / "red" / "000.png", os.fsdecode(base + b"/blue/\xff.png"))
    with open(os.fsdecode(base + b"/red/\xfe.png"), "wb") as file:
        file.write(b"no image")
    with open(os.fsdecode(base + b"/red/\xfd.txt"), "wb") as file:
        file.write(b"notes")
    return data, model


def test_reports_print_undecodable_paths_escaped(undecodable_files):
    data, model = undecodable_files
    text = strict_utf8_run("check", data)
    assert text.returncode == 1
    lines = text.stdout.decode().splitlines()
    assert f"  {data}/red/\\xfe.png: not an image Pillow can read" in lines
    assert (f"  {data}/blue/\\xff.png (blue)  =  {data}/red/000.png (red)") in lines
    report = json.loads(strict_utf8_run("check", data, "--format", "json").stdout)
    assert report["unreadable"] == [{"path": f"{data}/red/\\xfe.png",
                                     "cause": "not an image Pillow can read"}]
    assert report["ignored"][0]["path"] == f"{data}/red/\\xfd.txt"
    evaluated = strict_utf8_run("evaluate", data, "-m", model, "--misclassified", "20")
    assert evaluated.returncode == 0
    assert f"{data}/blue/\\xff.png\tblue\tred\t" in evaluated.stdout.decode()
    assert evaluated.stderr.decode().splitlines()[:2] == [
        f"Warning: {data}/red/\\xfd.txt: not an image file ('.txt' is not an image extension); "
        "skipped",
        f"Warning: {data}/red/\\xfe.png: not an image Pillow can read"]


def test_predict_prints_the_original_bytes_on_stdout_and_escapes_them_on_stderr(
        undecodable_files, tmp_path):
    data, model = undecodable_files
    completed = strict_utf8_run("predict", "-m", model, data / "blue", data / "red")
    assert completed.returncode == 1
    rows = [line.split(b"\t")[0] for line in completed.stdout.splitlines()]
    assert os.fsencode(str(data)) + b"/blue/\xff.png" in rows
    assert completed.stderr.decode() == f"Error: {data}/red/\\xfe.png: not an image Pillow can read\n"
    features = tmp_path / "f.npz"
    assert strict_utf8_run("flatten", data, "-o", features, "--size", "8x8").returncode == 0
    from_features = strict_utf8_run("predict", "-m", model, features)
    assert os.fsencode(str(data)) + b"/blue/\xff.png" in \
        [line.split(b"\t")[0] for line in from_features.stdout.splitlines()]


def test_explain_and_jsonl_name_an_undecodable_path_without_crashing(undecodable_files):
    """explain prints the name escaped; predict's jsonl carries it as JSON's \\udcNN escape,
    which json.loads and os.fsencode turn back into the original bytes."""
    data, model = undecodable_files
    image = os.fsdecode(os.fsencode(str(data)) + b"/blue/\xff.png")
    explained = strict_utf8_run("explain", image, "-m", model)
    assert explained.returncode == 0
    assert explained.stdout.decode().splitlines()[0] == f"image        {data}/blue/\\xff.png"
    predicted = strict_utf8_run("predict", "-m", model, "--format", "jsonl", image)
    assert predicted.returncode == 0
    assert os.fsencode(json.loads(predicted.stdout)["path"]) == os.fsencode(image)
