"""Outputs that are not regular files (issue 11, part "files").

Only regular files are replaced atomically. A FIFO or a device is written to directly (so
`-o /dev/null` discards and `/dev/full` is `No space left on device`, exit 2); a symlink's
target is replaced and the link kept. Each output option is tried: -m, --history, --plot,
flatten -o, inspect --weights-png, explain -o. The error rows (empty paths, an output that
is an input, two outputs naming one file) are in tests/test_error_paths.py.

The real /dev/null and /dev/full are only written after the same command has left a
character device made in tmp_path a character device (so the old code could not replace
them), and are checked afterwards.
"""

import io
import os
import select
import stat
import threading
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.model import load_model
from tiny_models import train_model, write_class_folders

NULL_DEVICE, FULL_DEVICE = (1, 3), (1, 7)  # Linux's major, minor of /dev/null and /dev/full


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    data = root / "data"
    paths = write_class_folders(data, ["blue", "red"], 3)
    model = train_model(data, root / "model.npz", epochs=5)
    return data, model, paths[0]


def commands(work, output):
    """option -> the command line writing that output to `output`."""
    data, model, image = work
    train = ["train", str(data), "--size", "8x8", "--epochs", "3", "-q"]
    return {
        "--model": [*train, "-m", str(output)],
        "--history": [*train, "-m", str(output) + ".model.npz", "--history", str(output)],
        "--plot": [*train, "-m", str(output) + ".model.npz", "--plot", str(output)],
        "flatten -o": ["flatten", str(data), "--size", "8x8", "-q", "-o", str(output)],
        "--weights-png": ["inspect", str(model), "--weights-png", str(output)],
        "explain -o": ["explain", str(image), "-m", str(model), "-o", str(output)],
    }


def check_content(option, content):
    """The bytes written for option are a whole file of its kind."""
    if option in ("--model", "flatten -o"):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
        assert {"weights.npy", "X.npy"} & names, names
        with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
            assert "weights" in arrays.files or arrays["X"].shape == (6, 192)
    elif option == "--history":
        assert content.decode().splitlines()[0] == "epoch,lr,cost"
        assert len(content.decode().splitlines()) == 4
    else:
        assert Image.open(io.BytesIO(content)).format == "PNG"


class FifoReader(threading.Thread):
    """Reads everything written into a FIFO while a command runs (opened non-blocking, so
    that neither side waits for the other to open)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.chunks, self.finished = [], threading.Event()

    def run(self):
        while True:
            done = self.finished.is_set()
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            chunk = os.read(self.fd, 1 << 16) if ready else b""
            self.chunks.append(chunk)
            if done and not chunk:
                break
            if not chunk:
                time.sleep(0.01)  # no writer yet (or between writes): a FIFO reads as EOF

    def content(self):
        self.finished.set()
        self.join(timeout=30)
        os.close(self.fd)
        return b"".join(self.chunks)


OPTIONS = ["--model", "--history", "--plot", "flatten -o", "--weights-png", "explain -o"]


@pytest.mark.parametrize("option", OPTIONS)
def test_a_fifo_output_is_written_into_not_replaced(tmp_path, work, option):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    reader.start()

    result = CliRunner().invoke(cli, commands(work, fifo)[option])

    content = reader.content()
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a file"
    check_content(option, content)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def make_device(path, numbers):
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(*numbers))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot make a device node here ({error})")
    return path


@pytest.mark.parametrize("option", OPTIONS)
def test_a_null_device_output_discards_and_stays_a_device(tmp_path, work, option):
    null = make_device(tmp_path / "null", NULL_DEVICE)
    result = CliRunner().invoke(cli, commands(work, null)[option])
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode), "the device was replaced by a file"


@pytest.mark.parametrize("option", OPTIONS)
def test_a_full_device_output_is_no_space_left_exit_2(tmp_path, work, option):
    full = make_device(tmp_path / "full", FULL_DEVICE)
    result = CliRunner().invoke(cli, commands(work, full)[option])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"Error: {full}: cannot write (No space left on device)"
    assert "written to" not in result.stderr
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@pytest.mark.parametrize("device, numbers, exit_code", [("/dev/null", NULL_DEVICE, 0),
                                                        ("/dev/full", FULL_DEVICE, 2)])
def test_the_real_dev_null_and_dev_full(tmp_path, work, device, numbers, exit_code):
    if not os.path.exists(device) or not stat.S_ISCHR(os.stat(device).st_mode):
        pytest.skip(f"no {device} here")
    stand_in = make_device(tmp_path / "stand-in", numbers)
    CliRunner().invoke(cli, commands(work, stand_in)["flatten -o"])
    assert stat.S_ISCHR(os.lstat(stand_in).st_mode), \
        f"this code replaces a device: not running it on the real {device}"

    for option in ("--model", "flatten -o"):
        result = CliRunner().invoke(cli, commands(work, device)[option])
        assert result.exit_code == exit_code, result.stderr
        assert stat.S_ISCHR(os.stat(device).st_mode) and os.stat(device).st_rdev == os.makedev(*numbers)


@pytest.mark.parametrize("option", ["--model", "--history", "flatten -o", "--weights-png"])
def test_a_symlink_output_keeps_the_link_and_replaces_its_target(tmp_path, work, option):
    target = tmp_path / "real" / "file.out"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.out"
    link.symlink_to(target)

    result = CliRunner().invoke(cli, commands(work, link)[option])

    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    check_content(option, target.read_bytes())
    if option == "--model":
        assert load_model(link).metadata["options"]["epochs"] == 3


def test_a_dangling_symlink_output_creates_its_target(tmp_path, work):
    target = tmp_path / "models" / "new.npz"
    target.parent.mkdir()
    link = tmp_path / "model.npz"
    link.symlink_to(target)
    result = CliRunner().invoke(cli, commands(work, link)["--model"])
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and load_model(target).classes == ["blue", "red"]


def test_a_symlink_into_a_missing_folder_is_refused_before_training(tmp_path, work):
    link = tmp_path / "model.npz"
    link.symlink_to(tmp_path / "nowhere" / "model.npz")
    result = CliRunner().invoke(cli, commands(work, link)["--model"] + ["--epochs", "100000"])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {link}: cannot write there, folder {tmp_path / 'nowhere'} "
                             "does not exist\n")
