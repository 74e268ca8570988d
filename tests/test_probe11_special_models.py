"""probe11: a model or labels file that is not a regular file (issue 11, case 17's kind).

A model or --init file is a zip archive, read with seeks: a named pipe (FIFO) can never be
one, yet each command that loads a model opened it blocking and waited forever for a
writer. It is now refused unread, by what it is, like an image path that is a FIFO.
"""

import os
import resource
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


def limit_memory():  # so that a regression reading /dev/zero cannot take the machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))


def run(args):
    try:
        return subprocess.run(logreg_command(*args), capture_output=True, env=subprocess_env(),
                              stdin=subprocess.DEVNULL, timeout=15, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 15 s (waiting on a FIFO, or reading a device)")


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


# ---------------------------------------------------------------- labels files
# The same kind for a labels file: it was read whole with read_text, so a .csv that is a
# FIFO waited forever for a writer and one that leads to /dev/zero or /dev/urandom filled
# memory until "not enough memory" (or the OOM killer) ended the command.

def labels_commands(work, labels):
    root, _, model, _ = work
    return {
        "train": ["train", labels, "--size", "8x8", "--epochs", "1", "-m", root / "out.npz"],
        "check": ["check", labels],
        "evaluate": ["evaluate", labels, "-m", model],
        "flatten": ["flatten", labels, "--size", "8x8", "-o", root / "out-features.npz"],
        "--val": ["train", root / "data", "--size", "8x8", "--epochs", "1", "--val", labels,
                  "-m", root / "out.npz"],
        "--against": ["check", root / "data", "--against", labels],
    }


@pytest.mark.parametrize("command", ["train", "check", "evaluate", "flatten", "--val",
                                     "--against"])
def test_a_fifo_labels_file_is_refused_at_once(work, command):
    labels = work[0] / "labels.csv"
    if not labels.exists():
        os.mkfifo(labels)
    done = run(labels_commands(work, labels)[command])
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"Error: {labels}: a named pipe (FIFO), not a labels file"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's devices")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_labels_file_that_leads_to_an_endless_device_is_refused_unread(work, device):
    labels = work[0] / f"{os.path.basename(device)}.tsv"
    if not labels.is_symlink():
        labels.symlink_to(device)
    done = run(labels_commands(work, labels)["check"])
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"Error: {labels}: a character device (like /dev/zero), not a labels file"]


def test_a_regular_labels_file_with_old_mac_line_ends_is_still_read(work):
    root = work[0]
    images = sorted((root / "data").rglob("*.png"))
    labels = root / "cr.csv"
    labels.write_bytes(b"path,label\r" + b"".join(
        f"{image.relative_to(root)},{image.parent.name}\r".encode() for image in images))
    done = run(labels_commands(work, labels)["check"])
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines()[0] == f"{labels}: 4 image files, 4 readable, 2 classes"
