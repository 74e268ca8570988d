"""probe11: names that are not UTF-8 (issue 11, case 8's kind) in every line a person reads.

A path or a model's metadata may hold bytes that are not UTF-8 (os.fsdecode makes them lone
surrogates). README promises they are shown as \\xNN in warnings, errors and reports. These
run the real program under a strict UTF-8 stdout (what Python picks in an en_US.UTF-8 locale).
"""

import json
import os
import subprocess

import numpy as np
import pytest

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs bytes file names")


def run(*args, cwd):
    env = subprocess_env()
    env["PYTHONIOENCODING"] = "utf-8:strict"  # stdout as in an en_US.UTF-8 locale
    return subprocess.run(logreg_command(*args), capture_output=True, env=env, cwd=cwd,
                          timeout=120)


@pytest.fixture()
def bad_folder(tmp_path):
    folder = tmp_path / os.fsdecode(b"bad\xff")
    write_class_folders(folder / "data", ["red", "blue"], 3)
    return folder


def test_inspect_shows_a_non_utf8_model_path_and_data_source_as_bytes(bad_folder, tmp_path):
    model = train_model(bad_folder / "data", bad_folder / "m.npz", epochs=2)
    done = run("inspect", model.relative_to(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode("utf-8").splitlines()
    assert "model                bad\\xff/m.npz" in lines
    assert any(line.endswith("bad\\xff/data") and line.startswith("data source")
               for line in lines), lines
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("key_path", [("data", "source"), ("options", "positive"),
                                      ("logreg_version",)])
def test_inspect_shows_a_lone_surrogate_in_hostile_metadata_escaped(tmp_path, key_path):
    data = tmp_path / "data"
    write_class_folders(data, ["red", "blue"], 3)
    model = train_model(data, tmp_path / "m.npz", epochs=2)
    arrays = dict(np.load(model, allow_pickle=False))
    metadata = json.loads(str(arrays["metadata"]))
    target = metadata
    for key in key_path[:-1]:
        target = target[key]
    target[key_path[-1]] = "x\ud800y"
    arrays["metadata"] = np.array(json.dumps(metadata))  # valid JSON: "x\\ud800y"
    np.savez(tmp_path / "hostile.npz", **arrays)
    done = run("inspect", "hostile.npz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert any(line.split()[-1] == "x\\ud800y" for line in done.stdout.decode().splitlines())


@pytest.mark.parametrize("args, line", [
    (("train", "bad\udcff/nope", "-m", "x.npz"), "Error: bad\\xff/nope: no such file or folder"),
    (("inspect", "bad\udcff/nope.npz"),
     "Error: bad\\xff/nope.npz: no such model file (train one with: logreg train DATA -m "
     "bad\\xff/nope.npz)"),
    (("train", "bad\udcff/data", "-m", "bad\udcff/no/m.npz", "--size", "8x8"),
     "Error: bad\\xff/no/m.npz: cannot write there, folder bad\\xff/no does not exist"),
])
def test_errors_show_non_utf8_bytes_as_xNN(bad_folder, tmp_path, args, line):
    done = run(*args, cwd=tmp_path)  # subprocess passes "\udcff" as the byte 0xff
    assert done.returncode == 2
    assert done.stderr.decode("utf-8").splitlines() == [line]


def test_summaries_show_non_utf8_bytes_as_xNN(bad_folder, tmp_path):
    done = run("flatten", "bad\udcff/data", "-o", "bad\udcff/f.npz", "--size", "8x8",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().splitlines()[-1] == \
        "wrote 6 images x 192 features to bad\\xff/f.npz"
    done = run("train", "bad\udcff/f.npz", "-m", "bad\udcff/m.npz", "--epochs", "2",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().splitlines()[-1] == "model written to bad\\xff/m.npz"
