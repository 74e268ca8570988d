"""The image-decoding worker processes end with the command that started them, however it
ends (SIGKILL, SIGTERM), and hold none of its output pipes: `logreg ... | wc -c` sees EOF."""

import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="worker processes (fork) and /proc are Linux's")

IMAGES_PER_CLASS = 150  # 300 images: over PROCESS_MIN_IMAGES, so decoded in processes
# Upscaling 8x8 images to 256x256 keeps two workers busy for about half a second: time
# enough to kill the command while they decode.
SLOW_SIZE = "256x256"


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    write_class_folders(root / "data", ["blue", "red"], IMAGES_PER_CLASS)
    train_model(root / "data", root / "model.npz", epochs=1, size=SLOW_SIZE)
    return root


def children_of(pid):
    """Pids of the live (not zombie) processes whose parent is pid."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            state_and_parent = process_state(int(name))
            if state_and_parent and state_and_parent[1] == pid and state_and_parent[0] != "Z":
                found.append(int(name))
    return found


def process_state(pid):
    """(state letter, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pids):
    return [pid for pid in pids if (process_state(pid) or ("Z",))[0] != "Z"]


def read_to_eof(stream, timeout):
    """Everything until EOF, or None when the pipe is still open after timeout seconds."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return data
            data += chunk
    return None


@pytest.mark.parametrize("command, signal_number", [
    ("flatten", signal.SIGKILL),
    ("flatten", signal.SIGTERM),
    ("train", signal.SIGKILL),
    ("evaluate", signal.SIGTERM),
])
def test_workers_end_with_a_killed_command_and_release_its_pipes(many_images, command,
                                                                   signal_number):
    data, out = many_images / "data", many_images / f"out-{command}.npz"
    args = {"flatten": ["-o", out, "--size", SLOW_SIZE],
            "train": ["-m", out, "--size", SLOW_SIZE, "--epochs", "1"],
            "evaluate": ["-m", many_images / "model.npz"]}[command]
    process = subprocess.Popen(logreg_command(command, data, "--jobs", "2", *args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=subprocess_env())
    try:
        workers = []
        deadline = time.monotonic() + 30
        while len(workers) < 2 and process.poll() is None and time.monotonic() < deadline:
            workers = children_of(process.pid)
            time.sleep(0.005)
        assert len(workers) == 2, "the command should decode in two worker processes"
        process.send_signal(signal_number)
        assert process.wait(timeout=30) == -signal_number, "killed while its workers decode"

        assert read_to_eof(process.stdout, timeout=10) == b"", "a worker holds stdout open"
        assert read_to_eof(process.stderr, timeout=10) is not None, "a worker holds stderr"
        deadline = time.monotonic() + 10
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert alive(workers) == [], "workers outlived the command"
        assert not out.exists()
    finally:
        for pid in alive(workers):  # never leave the old code's orphans behind
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()
