"""Issue 11, cases 14 and 17: files deleted after listing, and special files given as images.

A file deleted between listing and reading is an unreadable file like any other: a warning
and a skip in train, flatten, evaluate and check, `Error: path: no such file` and exit 1 in
predict with the rest done, whether it is decoded in this thread, in threads or in worker
processes. Character devices, block devices, FIFOs, sockets and folders are refused by what
they are, without being read: /dev/zero is not an "empty file", a FIFO never blocks.
"""

import json
import os
import socket
import stat
import subprocess
import threading

import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli import dataset, images
from logreg_cli.cli import cli
from logreg_cli.dataset import is_feature_file
from logreg_cli.errors import ImageError
from logreg_cli.images import decode_full, load_image
from tiny_models import (logreg_command, subprocess_env, train_model,
                         write_class_folders)

GONE = "no such file"
TIMEOUT = 30  # seconds for what, before the fix, never ended


def refused(path, cause):
    """load_image and decode_full both refuse path with exactly this cause."""
    for decode in (lambda: load_image(path, (8, 8)), lambda: decode_full(path)):
        with pytest.raises(ImageError) as caught:
            decode()
        assert str(caught.value) == f"{path}: {cause}"


def run(*args):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                      SystemExit), result.exception
    return result


# ---------------------------------------------------------------- deleted after listing


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root, ["red", "blue"], 6)
    return root


def restore(data):
    """The same 12 images again (the same seed draws the same pixels)."""
    write_class_folders(data, ["red", "blue"], 6)


@pytest.fixture
def deleted_after_listing(monkeypatch, data):
    """Make each folder listing delete every third image of data just after listing it;
    returns the deleted paths (sorted, as str)."""
    victims = sorted(dataset.image_files(data))[1::3]
    real_list_folder, real_image_files = dataset.list_folder, dataset.image_files

    def delete_victims():
        for path in victims:
            if path.exists():
                path.unlink()

    def list_folder(root, classes=None):
        listed = real_list_folder(root, classes)
        delete_victims()
        return listed

    def image_files(folder):
        files = real_image_files(folder)
        delete_victims()
        return files

    monkeypatch.setattr(dataset, "list_folder", list_folder)
    monkeypatch.setattr(dataset, "image_files", image_files)
    return [str(path) for path in victims]


@pytest.fixture(params=["one-thread", "threads", "processes"])
def decoding(request, monkeypatch):
    """--jobs for each way load_images decodes (processes: from 2 files on)."""
    if request.param == "processes":
        monkeypatch.setattr(images, "PROCESS_MIN_IMAGES", 2)
    if request.param == "threads":  # threads are chosen for big files only
        monkeypatch.setattr(images, "THREADS_FROM_BYTES", 1)
    return "1" if request.param == "one-thread" else "2"


def warnings_of(stderr):
    return sorted(line for line in stderr.splitlines() if line.startswith("Warning: "))


def test_train_and_flatten_skip_deleted_files(tmp_path, data, deleted_after_listing, decoding):
    train = run("train", data, "-m", tmp_path / "m.npz", "--size", "8x8", "--epochs", "1",
                "-q", "--jobs", decoding)
    assert train.exit_code == 0, train.output
    assert warnings_of(train.stderr) == [f"Warning: {path}: {GONE}"
                                         for path in deleted_after_listing]
    assert f"skipped 4 unreadable file(s) in {data}" in train.stderr
    restore(data)
    flatten = run("flatten", data, "-o", tmp_path / "f.npz", "--size", "8x8", "-q",
                  "--jobs", decoding)
    assert flatten.exit_code == 0
    assert warnings_of(flatten.stderr) == warnings_of(train.stderr)


def test_strict_stops_on_a_deleted_file(tmp_path, data, deleted_after_listing, decoding):
    result = run("flatten", data, "-o", tmp_path / "f.npz", "--size", "8x8", "-q", "--strict",
                 "--jobs", decoding)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {deleted_after_listing[0]}: {GONE}\n"
    assert not (tmp_path / "f.npz").exists()


@pytest.fixture
def model(tmp_path_factory):
    data = tmp_path_factory.mktemp("model") / "data"
    write_class_folders(data, ["red", "blue"], 6)
    return train_model(data, data.parent / "m.npz", epochs=2)


def test_evaluate_and_check_skip_deleted_files(data, model, deleted_after_listing, monkeypatch):
    monkeypatch.setattr(images, "PROCESS_MIN_IMAGES", 2)
    evaluate = run("evaluate", data, "-m", model, "--jobs", "2")
    assert evaluate.exit_code == 0, evaluate.output
    assert warnings_of(evaluate.stderr) == [f"Warning: {path}: {GONE}"
                                            for path in deleted_after_listing]
    restore(data)
    check = run("check", data, "--format", "json", "--jobs", "2")
    report = json.loads(check.stdout)
    assert report["unreadable"] == [{"path": path, "cause": GONE}
                                    for path in deleted_after_listing]


def test_predict_names_deleted_files_and_does_the_rest(data, model, deleted_after_listing):
    result = run("predict", "-m", model, data, "--jobs", "2")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"Error: {path}: {GONE}"
                                          for path in deleted_after_listing]
    assert len(result.stdout.splitlines()) == 12 - 4


def test_a_file_deleted_while_predict_asks_if_it_is_a_feature_file(tmp_path, data, model,
                                                                   monkeypatch):
    """predict asks is_file() then opens the file to read its first bytes: deleted between."""
    gone = tmp_path / "gone.png"
    monkeypatch.setattr(dataset.Path, "is_file", lambda self: True)
    assert is_feature_file(gone) is False
    good = data / "red" / "000.png"
    result = run("predict", "-m", model, gone, good)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {gone}: {GONE}\n"
    assert result.stdout.startswith(f"{good}\t")


def test_a_file_deleted_after_pillow_refused_it(tmp_path, monkeypatch):
    """The cause of an unidentified file comes from the open file, not from the path again."""
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture\n")
    real_open = Image.open

    def open_then_delete(*args, **kwargs):
        try:
            return real_open(*args, **kwargs)
        finally:
            if notes.exists():
                notes.unlink()

    monkeypatch.setattr(images.Image, "open", open_then_delete)
    with pytest.raises(ImageError, match="notes.png: not an image Pillow can read$"):
        load_image(notes, (8, 8))


# ---------------------------------------------------------------- special files


def first_block_device():
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        if stat.S_ISBLK(os.stat(path).st_mode):
            return path
    return None


def test_dev_zero_and_dev_null_are_character_devices(monkeypatch):
    """Refused from their stat, never opened (opening some devices has effects)."""
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *args: opened.append(str(path))
                        or real_open(path, *args))
    for device in ("/dev/zero", "/dev/null"):
        refused(device, "is a character device (like /dev/zero), not an image file")
    assert opened == []


@pytest.mark.skipif(first_block_device() is None, reason="no block device in /dev")
def test_a_block_device_is_refused_unread():
    refused(first_block_device(), "is a block device (a disk), not an image file")


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.png"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        refused(path, "is a socket, not an image file")


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "album.png").mkdir()
    refused(tmp_path / "album.png", "is a folder, not an image file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(catch(refused, fifo,
                                                                  "is a named pipe (FIFO), not "
                                                                  "an image file")),
                              daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    if worker.is_alive():  # blocked in open(): a writer lets it go, then the test fails
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(TIMEOUT)
        pytest.fail("reading a FIFO blocked until a writer came")
    assert outcome == [None], outcome


def catch(function, *args):
    """None, or the exception function(*args) raised (to hand it out of a thread)."""
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 (a failed assertion too)
        return error
    return None


def logreg(*args, timeout=TIMEOUT):
    """A real logreg process; a hang (the old behaviour with a FIFO) fails, not blocks."""
    try:
        return subprocess.run(logreg_command(*args), capture_output=True, text=True,
                              env=subprocess_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"logreg {' '.join(map(str, args))} still running after {timeout} s")


def test_predict_on_special_files_names_each_and_does_the_rest(tmp_path, data, model):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = data / "blue" / "000.png"
    result = logreg("predict", "-m", model, fifo, "/dev/zero", good)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: {fifo}: is a named pipe (FIFO), not an image file",
        "Error: /dev/zero: is a character device (like /dev/zero), not an image file",
    ]
    assert result.stdout.startswith(f"{good}\t")


def test_train_skips_a_fifo_in_a_class_folder(tmp_path, data):
    fifo = data / "red" / "pipe.png"
    os.mkfifo(fifo)
    result = logreg("train", data, "-m", tmp_path / "m.npz", "--size", "8x8", "--epochs", "1",
                    "-q")
    assert result.returncode == 0, result.stderr
    assert f"Warning: {fifo}: is a named pipe (FIFO), not an image file\n" in result.stderr


def test_a_file_that_says_0_bytes_but_holds_text_is_not_empty():
    """/proc files report a size of 0: only one that reads nothing is an "empty file"."""
    status = "/proc/self/status"
    if not os.path.exists(status) or os.stat(status).st_size != 0:
        pytest.skip("no /proc file reporting 0 bytes here")
    refused(status, "not an image Pillow can read")


def test_explain_refuses_special_files_in_one_line(tmp_path, model):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for target, cause in ((fifo, "is a named pipe (FIFO), not an image file"),
                          ("/dev/zero", "is a character device (like /dev/zero), not an image file"),
                          (tmp_path / "gone.png", GONE)):
        result = logreg("explain", target, "-m", model)
        assert (result.returncode, result.stderr) == (2, f"Error: {target}: {cause}\n")
