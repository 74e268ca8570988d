"""Ctrl-C at any moment of `logreg train`: during its imports, click's parsing, loading,
training, saving or the interpreter's exit. It ends with exit 130 and at most one line
("Interrupted."), or after a first Ctrl-C during training with the complete interrupted run
saved; the run's outputs (model, history, plot) are either all the old ones or all new ones.
A train started with SIGINT ignored (nohup, `cmd &` in a script) keeps ignoring it.

The signal is sent as a terminal does, to a child whose SIGINT is reset to the default
(a test runner or a shell's background job may have it ignored)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import logreg_cli
from logreg_cli.atomic import is_temporary_of
from logreg_cli.model import load_model
from test_faults import slow_save_env
from test_interrupt import feature_file
from tiny_models import logreg_command, subprocess_env, write_class_folders

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

OUTPUTS = ("model.npz", "h.csv", "curve.png")
EPOCHS = 300
SAVE_DELAY = 0.02  # each fsync and rename of the save sleeps this long (see slow_save_env)
SWEEP = 10  # single Ctrl-C moments spread from 0 to the end of a run
SECOND_CTRL_C_AFTER = [0.0, 0.05, 0.1, 0.15]  # s after the save's first temporary


def train_command(folder, lr):
    return logreg_command("train", folder / "data", "-m", folder / "model.npz", "--history",
                          folder / "h.csv", "--plot", folder / "curve.png", "--size", "8x8",
                          "--epochs", EPOCHS, "--lr", lr, "-q")


def start(command, env, ignore_sigint=False):
    disposition = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, disposition))


@pytest.fixture
def workspace(tmp_path):
    """A data folder and the outputs of a previous run; returns (folder, old output bytes)."""
    write_class_folders(tmp_path / "data", ["blue", "red"], 6)
    completed = subprocess.run(train_command(tmp_path, "0.5"), capture_output=True,
                               env=subprocess_env(), timeout=60)
    assert completed.returncode == 0, completed.stderr
    return tmp_path, {name: (tmp_path / name).read_bytes() for name in OUTPUTS}


NOTICE = "SIGINT: stopping at the end of this epoch (press Ctrl-C again to abort without saving)"


def is_python_start_up(traceback):
    """True for a traceback of the interpreter's start-up (site, runpy) with no frame in
    the logreg_cli package: Python's handling, before any line of logreg ran."""
    package = os.path.dirname(logreg_cli.__file__) + os.sep
    return package not in traceback and any(
        mark in traceback for mark in ("<frozen site>", "<frozen runpy>",
                                       "Could not import runpy module",
                                       "Failed to import the site module"))


def check_outcome(folder, old, process, stdout, stderr, presses=1):
    """The run's outputs are all old or all new and complete; exit and stderr fit which.

    Returns "old" or "new". A signal that lands before the interpreter has started the
    program at all (its own start-up: the site module and the .pth files of the
    environment, then runpy finding the package) gets Python's own handling, before any
    line of logreg runs: that is reported as "startup" when its traceback holds no frame
    of logreg_cli.
    """
    assert "Exception ignored" not in stderr, stderr
    assert stdout == ""
    leftovers = [p.name for p in folder.iterdir() if any(is_temporary_of(p.name, name)
                                                          for name in OUTPUTS)]
    assert leftovers == []
    current = {name: (folder / name).read_bytes() for name in OUTPUTS}
    if "Traceback" in stderr:
        assert is_python_start_up(stderr), stderr
        assert current == old
        return "startup"
    if current == old:
        assert process.returncode in (130, -signal.SIGINT), stderr
        lines = [line for line in stderr.splitlines() if line]
        if presses == 1:  # empty: killed before Python had installed its handler
            assert lines in ([], ["Interrupted."]), stderr
        else:  # the first press was taken for "stop at the end of this epoch", unless the
            # second came while its handler ran, before it could say so
            assert lines in ([NOTICE, "Interrupted."], ["Interrupted."]), stderr
        return "old"
    assert all(current[name] != old[name] for name in OUTPUTS), "outputs of two runs mixed"
    model = load_model(folder / "model.npz")
    rows = (folder / "h.csv").read_text().splitlines()
    assert rows[0] == "epoch,lr,cost"  # the same run as the model: the same epochs
    assert [int(row.split(",")[0]) for row in rows[1:]] == model.metadata["history"]["epoch"]
    assert current["curve.png"].startswith(b"\x89PNG")
    if model.metadata["interrupted"]:
        assert process.returncode == 130
        assert "interrupted by SIGINT" in stderr and "Traceback" not in stderr
    else:
        assert model.metadata["epochs_run"] == EPOCHS
        assert process.returncode in (0, 130), stderr  # 130: Ctrl-C while it saved
    return "new"


def test_ctrl_c_at_any_moment_leaves_all_old_or_all_new_outputs(workspace):
    folder, old = workspace
    env = slow_save_env(folder, SAVE_DELAY)
    started = time.monotonic()
    completed = subprocess.run(train_command(folder, "0.05"), capture_output=True, env=env,
                               timeout=60)
    duration = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    new_files = {name: (folder / name).read_bytes() for name in OUTPUTS}
    for name, content in old.items():
        (folder / name).write_bytes(content)

    seen = set()
    for step in range(SWEEP):
        process = start(train_command(folder, "0.05"), env)
        time.sleep(step * duration / (SWEEP - 1))
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        seen.add(check_outcome(folder, old, process, stdout.decode(), stderr.decode()))
        for name, content in old.items():
            (folder / name).write_bytes(content)
    assert "old" in seen and "new" in seen, seen
    assert new_files["h.csv"] != old["h.csv"]


def test_a_second_ctrl_c_while_saving_never_mixes_old_and_new_outputs(workspace):
    folder, old = workspace
    env = slow_save_env(folder, SAVE_DELAY)
    for after in SECOND_CTRL_C_AFTER:
        process = start(train_command(folder, "0.05"), env)
        while process.poll() is None and not any(
                is_temporary_of(p.name, name) for p in folder.iterdir() for name in OUTPUTS):
            time.sleep(0.002)
        process.send_signal(signal.SIGINT)
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        check_outcome(folder, old, process, stdout.decode(), stderr.decode(), presses=2)
        for name, content in old.items():
            (folder / name).write_bytes(content)


def test_a_train_started_with_ctrl_c_ignored_keeps_ignoring_it(tmp_path):
    data = feature_file(tmp_path / "f.npz", 400)
    model_path = tmp_path / "m.npz"
    epochs = 3000
    process = start(logreg_command("train", data, "--epochs", epochs, "--lr", "0.1",
                                   "-m", model_path), subprocess_env(), ignore_sigint=True)
    assert process.stderr.readline().startswith(b"training on")
    while process.poll() is None:  # Ctrl-C pressed again and again until it is done
        process.send_signal(signal.SIGINT)
        time.sleep(0.02)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert b"SIGINT" not in stderr and b"Interrupted" not in stderr
    meta = load_model(model_path).metadata
    assert meta["epochs_run"] == epochs and meta["interrupted"] is False
    assert np.isfinite(meta["final_cost"])


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.3])
def test_ctrl_c_while_predict_starts_or_waits_for_stdin_is_exit_130_and_one_line(tmp_path,
                                                                                 delay):
    """The same kind through another command: its imports, parsing, model loading and its
    wait for paths on a stdin that stays open."""
    from tiny_models import train_model

    write_class_folders(tmp_path / "data", ["blue", "red"], 2)
    model = train_model(tmp_path / "data", tmp_path / "m.npz", epochs=1)
    env = subprocess_env()
    env["PYTHONFAULTHANDLER"] = "1"  # a hang is shown with its stack, on SIGABRT below
    process = subprocess.Popen(logreg_command("predict", "-", "-m", model),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            process.wait(timeout=20)
            pytest.fail("still running 20 s after Ctrl-C:\n" + process.stderr.read().decode())
        stderr = process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
        process.stderr.close()
    assert "Exception ignored" not in stderr, stderr
    if "Traceback" in stderr:  # Python's own start-up, before logreg runs: see check_outcome
        assert is_python_start_up(stderr), stderr
        return
    assert process.returncode in (130, -signal.SIGINT), stderr
    assert [line for line in stderr.splitlines() if line] in ([], ["Interrupted."]), stderr
