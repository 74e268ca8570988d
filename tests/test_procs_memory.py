"""Running out of memory anywhere (the decoding workers' buffer, a worker that cannot be
forked, a thread that cannot start, the arrays of loading) is one line naming the input,
exit 2: `Error: DATA: not enough memory (...)`, never a traceback and never a hang."""

import errno
import os
import resource
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

MEMORY_LINE = "Error: {}: not enough memory (try a smaller --size, fewer images or --jobs 1)\n"
# Python with numpy and Pillow needs about 200 MB of address space here; X of 300 images at
# 1024x1024 is 940 MB: the limit lets the program start and refuses that buffer.
ADDRESS_SPACE = 600 << 20


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("memory")
    write_class_folders(root / "many", ["blue", "red"], 150)  # 300: decoded in processes
    write_class_folders(root / "few", ["blue", "red"], 4)     # 8: decoded in this thread
    train_model(root / "few", root / "model.npz", epochs=1)
    return root


def limited_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as on Linux")
@pytest.mark.parametrize("command, data", [("flatten", "many"), ("train", "many"),
                                           ("flatten", "few"), ("evaluate", "many")])
def test_a_memory_limit_is_one_line_naming_the_data(folders, command, data):
    out = folders / f"out-{command}.npz"
    if command == "evaluate":  # loads the images at the model's size
        args = ["-m", write_big_model(folders)]
    else:
        size = "1024x1024" if data == "many" else "4096x4096"  # 940 MB, 400 MB + decoding
        args = ["-o" if command == "flatten" else "-m", out, "--size", size]
    completed = subprocess.run(logreg_command(command, folders / data, "--jobs", "2", *args),
                               capture_output=True, env=subprocess_env(), timeout=120,
                               preexec_fn=limited_address_space)
    assert completed.stderr.decode() == MEMORY_LINE.format(folders / data)
    assert completed.returncode == 2
    assert completed.stdout == b""
    assert not out.exists()


def write_big_model(folders):
    """A model at 1024x1024 (weights of zeros), so that evaluate loads images at that size."""
    import numpy as np

    from logreg_cli.model import Model, save_model

    path = folders / "big.npz"
    if not path.exists():
        save_model(Model(np.zeros((1024 * 1024 * 3, 1), np.float32), np.zeros(1, np.float32),
                         ["blue", "red"], (1024, 1024), None, None, {}), path)
    return path


def test_a_worker_that_cannot_be_forked_for_lack_of_memory_is_one_line(folders, monkeypatch):
    def no_memory():
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(os, "fork", no_memory)
    data = folders / "many"
    result = CliRunner().invoke(cli, ["flatten", str(data), "-o", str(folders / "f.npz"),
                                      "--jobs", "2", "--size", "8x8"])
    assert result.exit_code == 2, result.exception
    assert result.stderr == MEMORY_LINE.format(data)


def test_a_worker_refused_by_a_process_limit_is_one_line(folders, monkeypatch):
    def no_more_processes():
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", no_more_processes)
    result = CliRunner().invoke(cli, ["train", str(folders / "many"), "-m",
                                      str(folders / "m.npz"), "--jobs", "2", "--size", "8x8"])
    assert result.exit_code == 2, result.exception
    assert result.stderr == ("Error: cannot start an image-decoding process (Resource "
                             "temporarily unavailable); try --jobs 1\n")


def test_a_thread_that_cannot_start_is_one_line(folders, monkeypatch):
    def no_thread(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    image = folders / "few" / "blue" / "000.png"
    result = CliRunner().invoke(cli, ["predict", str(image), "-m", str(folders / "model.npz")])
    assert result.exit_code == 2, result.exception
    assert result.stderr == MEMORY_LINE.format(image)
    assert result.stdout == ""


def test_running_out_of_memory_while_training_is_one_line(folders, monkeypatch):
    from logreg_cli import core

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(core, "train", exhausted)
    data = folders / "few"
    model = folders / "never.npz"
    result = CliRunner().invoke(cli, ["train", str(data), "-m", str(model), "--size", "8x8"])
    assert result.exit_code == 2, result.exception
    assert result.stderr == MEMORY_LINE.format(data)
    assert not model.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as on Linux")
@pytest.mark.parametrize("megabytes", [108, 116, 124, 160, 400])
def test_any_memory_limit_ends_in_success_or_the_one_line(folders, megabytes):
    """Wherever the limit bites (mapping Pillow's libraries, the workers' buffer, their
    fork, decoding, saving), the outcome is the file written or the one line; never a
    traceback, never a hang (here the old pool hung from 115 MB to 130 MB, and printed an
    ImportError's traceback below). Under about 105 MB numpy's own import fails, in C
    (OpenBLAS exits with its own message): no limit that low is swept."""
    limit = megabytes << 20
    out = folders / f"swept-{megabytes}.npz"
    data = folders / "many"
    completed = subprocess.run(
        logreg_command("flatten", data, "-o", out, "--size", "64x64", "--jobs", "2", "-q"),
        capture_output=True, env=subprocess_env(), timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    if completed.returncode == 0:
        assert completed.stderr == b"" and out.stat().st_size > 300 * 64 * 64 * 3
    else:
        assert completed.stderr.decode() == MEMORY_LINE.format(data)
        assert completed.returncode == 2
        assert not out.exists()


def test_a_library_that_cannot_be_mapped_is_out_of_memory_other_import_errors_are_not(
        folders, monkeypatch):
    from logreg_cli import dataset

    def unmappable(*args, **kwargs):
        raise ImportError("libopenblas.so.0: failed to map segment from shared object")

    monkeypatch.setattr(dataset, "load_data", unmappable)
    data = folders / "few"
    result = CliRunner().invoke(cli, ["evaluate", str(data), "-m", str(folders / "model.npz")])
    assert result.exit_code == 2 and result.stderr == MEMORY_LINE.format(data)

    def missing(*args, **kwargs):
        raise ImportError("No module named 'numpy'")

    monkeypatch.setattr(dataset, "load_data", missing)
    result = CliRunner().invoke(cli, ["evaluate", str(data), "-m", str(folders / "model.npz")])
    assert isinstance(result.exception, ImportError)  # a broken install is not "memory"
