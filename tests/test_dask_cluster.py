"""cluster.connect: --scheduler local / tcp://... / --scheduler-file, its one-line errors,
and no worker process of a LocalCluster outliving logreg, even a logreg killed by SIGKILL."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed "
                                          "(pip install 'logreg-cli[dask]')")

from logreg_cli import cluster  # noqa: E402
from logreg_cli.errors import LogregError  # noqa: E402
from tiny_models import subprocess_env  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (just released by the kernel)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DASK = Path(sys.executable).with_name("dask")


def dask_command(*args):
    """The `dask` command of this environment (its console script, or python -m dask)."""
    if DASK.exists():
        return [str(DASK), *map(str, args)]
    return [sys.executable, "-m", "dask", *map(str, args)]


def wait_for_file(path, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text().strip():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.1)


@contextmanager
def dask_processes(folder, workers=2):
    """A `dask scheduler` on 127.0.0.1 (a free port, writing folder/scheduler.json) and
    `workers` one-thread `dask worker` processes (each under a nanny, which starts a killed
    worker again), as users start them; yields (address, scheduler file) once every worker
    has joined. Processes, not a LocalCluster in the test process: that would leave
    multiprocessing's resource tracker running under pytest."""
    with dask_cluster(folder, workers) as (address, scheduler_file, _):
        yield address, scheduler_file


@contextmanager
def dask_cluster(folder, workers=2, worker_cwd=None):
    """dask_processes, yielding (address, scheduler file, scheduler process), with the
    workers started in worker_cwd (by default this one); workers may be 0."""
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
                client.wait_for_workers(workers, timeout=60)  # train shards over those it finds
        yield address, scheduler_file, started[0]
    finally:  # SIGKILL: a graceful close takes seconds; a nanny's worker exits with it
        for process in started:
            process.kill()
            process.wait()


def test_a_refused_connection_is_one_line_at_once():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(LogregError) as raised:
        with cluster.connect(f"tcp://127.0.0.1:{port}"):
            pass
    assert str(raised.value) == (f"--scheduler tcp://127.0.0.1:{port}: cannot reach the "
                                 "scheduler (Connection refused)")
    assert time.monotonic() - started < cluster.CONNECT_TIMEOUT


def test_a_scheduler_that_never_answers_is_one_line_after_the_connect_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(LogregError) as raised:
            with cluster.connect(address):
                pass
        seconds = time.monotonic() - started
    assert str(raised.value) == (f"--scheduler {address}: cannot reach the scheduler (no "
                                 f"answer within {cluster.CONNECT_TIMEOUT} s)")
    assert cluster.CONNECT_TIMEOUT - 1 < seconds < cluster.CONNECT_TIMEOUT + 10


def test_a_missing_scheduler_file_is_named(tmp_path):
    missing = tmp_path / "scheduler.json"
    with pytest.raises(LogregError, match=f"^--scheduler-file {missing}: no such file$"):
        with cluster.connect(None, missing):
            pass


def test_a_scheduler_file_that_is_not_one_is_named(tmp_path):
    bad = tmp_path / "scheduler.json"
    bad.write_text(json.dumps({"type": "Scheduler"}))
    with pytest.raises(LogregError,
                       match=f"^--scheduler-file {bad}: not a scheduler file \\(no address\\)$"):
        with cluster.connect(None, bad):
            pass


def test_both_options_and_a_bare_word_are_refused():
    with pytest.raises(LogregError, match="cannot be used together"):
        with cluster.connect("local", "scheduler.json"):
            pass
    with pytest.raises(LogregError, match="^--scheduler localhost: not a scheduler address"):
        with cluster.connect("localhost"):
            pass


# A program that starts a LocalCluster through cluster.connect, prints its workers' process
# ids and then waits to be killed.
HOLDS_A_CLUSTER = """
import os, sys, time
from logreg_cli.cluster import connect
if __name__ == "__main__":
    with connect("local", None, jobs=2) as client:
        pids = client.run(os.getpid)
        print(" ".join(str(pid) for pid in pids.values()), flush=True)
        time.sleep(120)
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def wait_until_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def test_local_workers_do_not_outlive_a_parent_killed_with_sigkill(tmp_path):
    script = tmp_path / "holds_a_cluster.py"
    script.write_text(HOLDS_A_CLUSTER)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=subprocess_env(), text=True,
                              start_new_session=True)
    try:
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(workers) == 2, parent.stderr.read()
        assert all(alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert wait_until_gone(workers, 10) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait()


# Starts a LocalCluster through cluster.connect while another program holds port 8787 (the
# dashboard's usual port), as a second logreg or a notebook's cluster would.
CLUSTER_BESIDE_A_BUSY_8787 = """
import socket
from logreg_cli.cluster import connect
if __name__ == "__main__":
    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:  # already taken by someone else: busy all the same
        pass
    with connect("local", None, jobs=1) as client:
        print(len(client.scheduler_info()["workers"]))
"""


def test_a_local_cluster_says_nothing_when_port_8787_is_taken(tmp_path):
    script = tmp_path / "beside_a_busy_8787.py"
    script.write_text(CLUSTER_BESIDE_A_BUSY_8787)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
