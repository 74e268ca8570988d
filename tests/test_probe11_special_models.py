"""probe11: a model path that is not a regular file (issue 11, case 17's kind, for models).

A model or --init file is a zip archive, read with seeks: a named pipe (FIFO) can never be
one, yet each command that loads a model opened it blocking and waited forever for a
writer. It is now refused unread, by what it is, like an image path that is a FIFO.
"""

import os
import subprocess
import sys

import pytest

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("special-models")
    paths = write_class_folders(root / "data", ["blue", "red"], 2)
    model = train_model(root / "data", root / "m.npz", epochs=1)
    fifo = root / "model.fifo"
    os.mkfifo(fifo)
    return root, paths[0], model, fifo


def commands(work, model):
    root, image, trained, _ = work
    return {
        "inspect": ["inspect", model],
        "predict": ["predict", image, "-m", model],
        "explain": ["explain", image, "-m", model],
        "evaluate": ["evaluate", root / "data", "-m", model],
        "train --init": ["train", root / "data", "--size", "8x8", "--epochs", "1", "--init",
                         model, "-m", root / "out.npz"],
    }


COMMANDS = ["inspect", "predict", "explain", "evaluate", "train --init"]


def run(args):
    try:
        return subprocess.run(logreg_command(*args), capture_output=True, env=subprocess_env(),
                              stdin=subprocess.DEVNULL, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("still waiting on the model path after 15 s")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_model_is_refused_at_once(work, command):
    fifo = work[3]
    done = run(commands(work, fifo)[command])
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"Error: {fifo}: not a readable model file (a named pipe (FIFO), not an .npz file)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's /dev/zero")
@pytest.mark.parametrize("command", ["inspect", "predict"])
def test_a_device_model_is_refused_by_what_it_is(work, command):
    done = run(commands(work, "/dev/zero")[command])
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "Error: /dev/zero: not a readable model file (a character device (like /dev/zero), "
        "not an .npz file)"]


def test_a_regular_model_is_still_read(work):
    done = run(commands(work, work[2])["predict"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(str(work[1]) + "\t")
