"""Hostile re-test of the Dask engine (issue 14): a scheduler killed under `logreg train` and
`logreg flatten --scheduler`, a scheduler without workers, workers started in another
folder, a scheduler file that is a FIFO. Each must end in one line on stderr, exit 2, no
hang, nothing of distributed's logging, and no file left behind."""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed "
                                          "(pip install 'logreg-cli[dask]')")

from test_dask_cluster import dask_command, free_port, wait_for_file  # noqa: E402
from test_dask_training import write_features  # noqa: E402
from tiny_models import logreg_command, subprocess_env  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")


@contextmanager
def scheduler_and_workers(folder, workers=2, worker_cwd=None):
    """A `dask scheduler` on 127.0.0.1 and `workers` one-thread `dask worker` processes
    (started in worker_cwd); yields (address, scheduler process) once they have joined."""
    import distributed

    scheduler_file = Path(folder) / "scheduler.json"
    env = subprocess_env()
    started = [subprocess.Popen(
        dask_command("scheduler", "--host", "127.0.0.1", "--port", free_port(),
                     "--no-dashboard", "--scheduler-file", scheduler_file),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)]
    try:
        wait_for_file(scheduler_file, started[0])
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            started.append(subprocess.Popen(
                dask_command("worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                             "--no-dashboard"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                cwd=worker_cwd))
        if workers:
            with distributed.Client(address, timeout=30, set_as_default=False) as client:
                client.wait_for_workers(workers, timeout=60)
        yield address, started[0]
    finally:
        for process in started:
            process.kill()
            process.wait()


def stderr_until(process, text, seconds=60):
    """The stderr lines of process up to the first one containing text."""
    lines, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        assert line, f"{process.args} ended before {text!r}: {lines}"
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {seconds} s: {lines}")


def test_a_scheduler_killed_mid_training_is_one_line_exit_2_and_no_model(tmp_path):
    data = write_features(tmp_path / "f.npz", m=3000)
    model_path = tmp_path / "m.npz"
    with scheduler_and_workers(tmp_path) as (address, scheduler):
        train = subprocess.Popen(
            logreg_command("train", data, "--scheduler", address, "--epochs", 10_000_000,
                           "-m", model_path),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(),
            text=True, cwd=tmp_path)
        try:
            announced = stderr_until(train, "training on")
            time.sleep(1)  # epochs under way
            scheduler.kill()
            stderr = train.stderr.read()
            assert train.wait(timeout=60) == 2
        finally:
            train.kill()
            train.wait()
    assert announced[-1].startswith("training on 3000 images")
    assert stderr == (f"Error: --scheduler: lost the scheduler at {address} (it stopped or "
                      "cannot be reached)\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["f.npz", "scheduler.json"]
