"""Hostile re-test of the Dask engine (issue 14): a scheduler killed under `logreg train` and
`logreg flatten --scheduler`, a scheduler without workers, workers started in another
folder, a scheduler file that is a FIFO. Each must end in one line on stderr, exit 2, no
hang, nothing of distributed's logging, and no file left behind."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed "
                                          "(pip install 'logreg-cli[dask]')")

from test_dask_cluster import dask_cluster  # noqa: E402
from test_dask_training import write_features  # noqa: E402
from tiny_models import logreg_command, subprocess_env  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")


@contextmanager
def scheduler_and_workers(folder, workers=2, worker_cwd=None):
    """A `dask scheduler` on 127.0.0.1 and `workers` one-thread `dask worker` processes
    (started in worker_cwd); yields (address, scheduler process) once they have joined."""
    with dask_cluster(folder, workers, worker_cwd) as (address, _, scheduler):
        yield address, scheduler


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
            stderr = train.communicate(timeout=60)[1]
            assert train.returncode == 2
        finally:
            train.kill()
            train.wait()
    assert announced[-1].startswith("training on 3000 images")
    assert stderr == (f"Error: --scheduler: lost the scheduler at {address} (it stopped or "
                      "cannot be reached)\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["f.npz", "scheduler.json"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """1200 small PNGs in two classes: at --size 128x128 a store chunk holds about 400
    rows, so a flatten on the cluster is three tasks that take a few seconds."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("probedask") / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for index in range(600):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                folder / name / f"{index:04d}.png")
    return folder


def leftovers(folder):
    return sorted(path.name for path in Path(folder).iterdir() if "zarr" in path.name)


def test_flatten_on_a_scheduler_with_no_worker_is_one_line_not_a_hang(image_folder, tmp_path):
    with scheduler_and_workers(tmp_path, workers=0) as (address, _):
        done = subprocess.run(
            logreg_command("flatten", image_folder, "-o", "x.zarr", "--size", "8x8",
                           "--scheduler", address),
            capture_output=True, text=True, env=subprocess_env(), timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "Error: --scheduler: no worker joined the scheduler within 5 s\n"
    assert leftovers(tmp_path) == []


def test_flatten_with_a_relative_output_on_workers_started_in_another_folder(image_folder,
                                                                             tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with scheduler_and_workers(tmp_path, worker_cwd=elsewhere) as (address, _):
        done = subprocess.run(
            logreg_command("flatten", image_folder, "-o", "x.zarr", "--size", "8x8",
                           "--scheduler", address),
            capture_output=True, text=True, env=subprocess_env(), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "wrote 1200 images x 192 features to x.zarr\n"
    assert leftovers(tmp_path) == ["x.zarr"] and list(elsewhere.iterdir()) == []
    import logreg_cli

    assert logreg_cli.evaluate(logreg_cli.train(tmp_path / "x.zarr", epochs=1),
                               tmp_path / "x.zarr")["images"] == 1200


@pytest.mark.parametrize("killed", ["scheduler", "every worker"])
def test_flatten_losing_its_cluster_is_one_line_exit_2_and_no_store(image_folder, tmp_path,
                                                                    killed):
    with scheduler_and_workers(tmp_path) as (address, scheduler):
        flatten = subprocess.Popen(
            logreg_command("flatten", image_folder, "-o", "x.zarr", "--size", "128x128",
                           "--scheduler", address),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(),
            text=True, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while not any(path.name.endswith(".tmp") for path in tmp_path.iterdir()):
                assert flatten.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            import psutil

            victims = ([scheduler] if killed == "scheduler" else
                       [psutil.Process(child.pid) for child in
                        psutil.Process(scheduler.pid).parent().children()
                        if "worker" in child.cmdline()])
            for victim in victims:
                victim.kill()
            stderr = flatten.communicate(timeout=60)[1]
            assert flatten.returncode == 2
        finally:
            flatten.kill()
            flatten.wait()
    expected = (f"Error: --scheduler: lost the scheduler at {address} (it stopped or cannot "
                "be reached)\n" if killed == "scheduler" else
                "Error: --scheduler: no worker joined the scheduler within 5 s\n")
    assert stderr == expected
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_scheduler_file_that_is_not_a_regular_file_is_refused_at_once(tmp_path, special):
    data = write_features(tmp_path / "f.npz", m=50)
    kind = {"fifo": "a named pipe (FIFO)", "/dev/zero": "a character device (like /dev/zero)"}[
        special]
    if special == "fifo":
        special = tmp_path / "scheduler.json"
        os.mkfifo(special)  # nothing ever writes it: reading it would wait for ever
    done = subprocess.run(
        logreg_command("train", data, "--scheduler-file", special, "-m", tmp_path / "m.npz"),
        capture_output=True, text=True, env=subprocess_env(), timeout=30)
    assert done.returncode == 2
    assert done.stderr == (f"Error: --scheduler-file {special}: {kind}, not a scheduler "
                           "file (the JSON a scheduler writes)\n")
    assert not (tmp_path / "m.npz").exists()
