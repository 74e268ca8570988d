"""Zarr stores on a Dask cluster: `flatten -o x.zarr --scheduler` decodes on the workers
(one task per chunk, each writing its chunk) into the store a local flatten writes, with the
same warnings in path order."""

import time

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")
distributed = pytest.importorskip("distributed", reason="the dask extra (distributed) is not "
                                                        "installed")

from logreg_cli import zarrstore  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402
from logreg_cli.errors import ImageError  # noqa: E402
from test_dask_cluster import dask_processes  # noqa: E402
from tiny_models import logreg_command, subprocess_env  # noqa: E402

SIZE = ["--size", "8x8"]
ROWS_PER_CHUNK = 4


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A real `dask scheduler` and 2 `dask worker` processes (a LocalCluster of processes
    started in the test process would leave multiprocessing's resource tracker under it)."""
    with dask_processes(tmp_path_factory.mktemp("cluster")) as (address, _):
        yield address


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of ROWS_PER_CHUNK rows of 8x8 images, so a few images make several tasks."""
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", ROWS_PER_CHUNK * 8 * 8 * 3)


@pytest.fixture
def damaged(make_image_folder):
    """a (5 images, the 2nd and 5th unreadable), b (4, all unreadable: left out), c (4) and a
    stray file: failures in three different chunks."""
    root = make_image_folder({"a": 5, "b": 4, "c": 4})
    for name in ("a/001.png", "a/004.png", *(f"b/{i:03d}.png" for i in range(4))):
        (root / name).write_bytes(b"no image here")
    (root / "c" / "readme.txt").write_text("stray")
    return root


def store_arrays(location):
    group = zarr.open_group(str(location), mode="r")
    arrays = {name: group[name][:] for name in zarrstore.ARRAY_NAMES}
    metadata = dict(group.attrs["metadata"])
    metadata.pop("created")
    return arrays, metadata, group["X"].chunks


def test_flatten_on_a_cluster_writes_the_store_a_local_flatten_writes(
        damaged, tmp_path, small_chunks, scheduler):
    here = run("flatten", damaged, "-o", tmp_path / "here.zarr", *SIZE)
    there = run("flatten", damaged, "-o", tmp_path / "there.zarr", *SIZE,
                "--scheduler", scheduler)
    assert (here.exit_code, there.exit_code) == (0, 0), there.stderr
    # the same warnings, in path order (failures of chunks 1, 2 and 3, then class b left out)
    assert there.stderr.replace("there.zarr", "here.zarr") == here.stderr
    lines = here.stderr.splitlines()
    assert [line.split(str(damaged))[1].split(":")[0] for line in lines[:7]] == [
        "/c/readme.txt", "/a/001.png", "/a/004.png", "/b/000.png", "/b/001.png", "/b/002.png",
        "/b/003.png"]
    assert "class 'b'" in lines[7]
    (mine, mine_info, mine_chunks), (theirs, their_info, their_chunks) = (
        store_arrays(tmp_path / "here.zarr"), store_arrays(tmp_path / "there.zarr"))
    assert mine_chunks == their_chunks == (ROWS_PER_CHUNK, 192)
    for name in zarrstore.ARRAY_NAMES:
        assert np.array_equal(mine[name], theirs[name]), name
    assert mine_info == their_info
    assert mine["valid"].tolist() == [True, False, True, True, False] + [False] * 4 + [True] * 4
    assert mine["y"].tolist() == [0, -1, 0, 0, -1] + [-1] * 4 + [1] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "here.zarr", "there.zarr"]


def test_strict_on_a_cluster_stops_at_the_first_bad_image_in_path_order(
        damaged, tmp_path, monkeypatch, scheduler):
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 8 * 8 * 3)  # chunks of one row
    (damaged / "c" / "readme.txt").unlink()
    result = run("flatten", damaged, "-o", tmp_path / "f.zarr", *SIZE, "--strict",
                 "--scheduler", scheduler)
    assert result.exit_code == 2 and result.stdout == "", result.stderr
    assert result.stderr == (f"Error: {damaged / 'a' / '001.png'}: not an image Pillow can "
                             "read\n")
    assert run("flatten", damaged, "-o", tmp_path / "f.zarr", *SIZE,
               "--strict").stderr == result.stderr  # as a local flatten stops
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no store, no temporary


def test_flatten_on_a_local_cluster_of_processes_writes_the_same_store(damaged, tmp_path):
    """`--scheduler local` as a user runs it: its own process, which starts and ends a
    LocalCluster of --jobs worker processes."""
    import subprocess

    run("flatten", damaged, "-o", tmp_path / "here.zarr", *SIZE)
    done = subprocess.run(
        logreg_command("flatten", damaged, "-o", tmp_path / "there.zarr", *SIZE,
                       "--scheduler", "local", "--jobs", 2),
        capture_output=True, text=True, env=subprocess_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "UserWarning" not in done.stderr
    (mine, mine_info, _), (theirs, their_info, _) = (
        store_arrays(tmp_path / "here.zarr"), store_arrays(tmp_path / "there.zarr"))
    for name in zarrstore.ARRAY_NAMES:
        assert np.array_equal(mine[name], theirs[name]), name
    assert mine_info == their_info


def test_tasks_still_running_when_strict_stops_write_nothing_after(damaged, tmp_path,
                                                                   monkeypatch):
    """A cancelled Dask task runs to its end: a chunk's task that opened the store before
    --strict stopped the flatten must not write into it after it is removed (its write
    would make the store's folders again). Threads of this process as workers, so that
    the write can be slowed down here."""
    from logreg_cli import api

    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 8 * 8 * 3)  # chunks of one row
    (damaged / "c" / "readme.txt").unlink()

    def slow_write(group, start, X, y, valid):  # as write_chunk, taking 0.5 s to write
        into = [group[name] for name in ("X", "y", "valid")]
        if start >= 2:  # a/001.png, row 1, is the first failure
            time.sleep(0.5)
        for array, rows in zip(into, (X, y, valid)):
            array[start : start + len(rows)] = rows

    monkeypatch.setattr(zarrstore, "write_chunk", slow_write)
    # the scheduler's HTTP on any free port: no warning when 8787 is taken
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as local, \
            distributed.Client(local) as client:
        with pytest.raises(ImageError, match="001.png"):
            api.flatten(damaged, tmp_path / "f.zarr", size="8x8", strict=True, client=client)
        time.sleep(1.5)  # any task still running has written by now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_missing_data_is_said_before_a_cluster_starts(tmp_path, monkeypatch):
    from logreg_cli import cluster

    monkeypatch.setattr(cluster, "connect", lambda *a, **k: pytest.fail("cluster started"))
    result = run("flatten", tmp_path / "nowhere", "-o", tmp_path / "f.zarr", "--scheduler",
                 "local")
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {tmp_path / 'nowhere'}: no such file or folder\n")


def test_scheduler_needs_a_store_output(damaged, tmp_path):
    result = run("flatten", damaged, "-o", tmp_path / "f.npz", "--scheduler", "local")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: --scheduler: {tmp_path / 'f.npz'}: decoding on a "
                                    "cluster writes a Zarr store; name one with -o NAME.zarr")
    result = run("flatten", damaged, "-o", tmp_path / "f.npz", "--scheduler-file", "s.json")
    assert result.exit_code == 2 and result.stderr.startswith(
        f"Error: --scheduler-file: {tmp_path / 'f.npz'}: decoding on a cluster writes a Zarr")
    assert not (tmp_path / "f.npz").exists()
