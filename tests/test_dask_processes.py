"""`logreg train --scheduler` as users run it, in processes: a real `dask scheduler` and two
`dask worker` processes on 127.0.0.1 (by address and by --scheduler-file), no worker left
behind when `logreg train --scheduler local` is killed with SIGKILL, and `logreg --help`
and `logreg predict` never importing dask."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed "
                                          "(pip install 'logreg-cli[dask]')")

import psutil  # noqa: E402  (distributed depends on it)

import logreg_cli  # noqa: E402
from test_dask_cluster import dask_processes, wait_until_gone  # noqa: E402
from test_dask_training import write_features  # noqa: E402
from tiny_models import logreg_command, subprocess_env, train_model  # noqa: E402
from tiny_models import write_class_folders  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")

@pytest.fixture
def real_cluster(tmp_path):
    """A `dask scheduler` and two one-thread `dask worker` processes on 127.0.0.1."""
    with dask_processes(tmp_path) as started:
        yield started


def test_train_through_a_real_dask_scheduler_and_workers(real_cluster, tmp_path):
    address, scheduler_file = real_cluster
    data = write_features(tmp_path / "f.npz", m=3001, classes=("a", "b", "c"))
    alone = logreg_cli.train(data, epochs=8, lr=0.01)
    for option, value in (("--scheduler", address), ("--scheduler-file", scheduler_file)):
        model_path = tmp_path / f"{option.strip('-')}.npz"
        done = subprocess.run(
            logreg_command("train", data, option, value, "--epochs", 8, "--lr", 0.01,
                           "-m", model_path),
            capture_output=True, text=True, env=subprocess_env(), timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert "X is held by 2 Dask workers, one shard each" in done.stderr
        assert "Traceback" not in done.stderr and "distributed." not in done.stderr
        model = logreg_cli.load_model(model_path)
        assert model.metadata["method"] == "dask"
        np.testing.assert_allclose(model.weights, alone.weights, rtol=1e-4,
                                   atol=1e-5 * np.abs(alone.weights).max())


def test_no_worker_outlives_a_train_killed_with_sigkill(tmp_path):
    data = write_features(tmp_path / "f.npz", m=2000)
    train = subprocess.Popen(
        logreg_command("train", data, "--scheduler", "local", "--jobs", 2, "--epochs",
                       1_000_000, "-q", "-m", tmp_path / "m.npz"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(),
        start_new_session=True)
    try:
        parent = psutil.Process(train.pid)
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2:
            assert train.poll() is None, train.stderr.read()
            assert time.monotonic() < deadline, "no worker processes started"
            time.sleep(0.2)
            workers = [child for child in parent.children(recursive=True)
                       if "spawn_main" in " ".join(child.cmdline())]
        time.sleep(2)  # training under way: the shards are loaded, epochs are running
        assert train.poll() is None, train.stderr.read()
        children = [child.pid for child in parent.children(recursive=True)]
        os.kill(train.pid, signal.SIGKILL)
        train.wait(timeout=10)
        assert wait_until_gone(children, 15) == []
    finally:
        if train.poll() is None:
            train.kill()
        train.wait()


# Runs the logreg program in this process and then says which dask modules it imported.
IMPORTS_OF = """
import sys
from logreg_cli.__main__ import main
try:
    main()
except SystemExit:
    pass
print(sorted(name for name in ("dask", "distributed", "zarr") if name in sys.modules),
      file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["predict", "IMAGE"]])
def test_help_and_predict_do_not_import_dask(args, tmp_path):
    folder = tmp_path / "data"
    write_class_folders(folder, ["blue", "red"], 3)
    model_path = train_model(folder, tmp_path / "m.npz", epochs=2)
    args = [str(next((folder / "red").iterdir())) if arg == "IMAGE" else arg for arg in args]
    if args[0] == "predict":
        args += ["-m", str(model_path)]
    done = subprocess.run([sys.executable, "-c", IMPORTS_OF, *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=60, cwd=tmp_path)
    assert done.stderr.splitlines()[-1] == "[]", done.stderr


def test_ctrl_c_at_the_terminal_stops_at_the_epoch_end_and_spares_the_workers(tmp_path):
    """A terminal's Ctrl-C goes to the whole foreground process group: logreg and its
    local workers. logreg finishes the epoch, saves and exits 130; the workers say nothing."""
    data = write_features(tmp_path / "f.npz", m=2000)
    model_path = tmp_path / "m.npz"
    train = subprocess.Popen(
        logreg_command("train", data, "--scheduler", "local", "--jobs", 2, "--epochs",
                       1_000_000, "-m", model_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), text=True,
        preexec_fn=lambda: (os.setpgrp(), signal.signal(signal.SIGINT, signal.SIG_DFL)))
    try:
        announced = train.stderr.readline()  # said once the shards are on the workers
        assert "X is held by 2 Dask workers" in announced, announced + train.stderr.read()
        time.sleep(1)  # the epochs are running
        os.killpg(train.pid, signal.SIGINT)
        stdout, rest = train.communicate(timeout=60)
        stderr = announced + rest
    finally:
        if train.poll() is None:
            train.kill()
            train.wait()
    assert train.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "SIGINT: stopping at the end of this epoch" in stderr
    model = logreg_cli.load_model(model_path)
    assert model.metadata["interrupted_by"] == "SIGINT"
    assert model.metadata["method"] == "dask"
