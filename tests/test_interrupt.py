"""Ctrl-C and SIGTERM during `logreg train`: the first stops at the end of the epoch and saves
a complete model marked as interrupted (exit 130); a second one aborts without saving."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from logreg_cli.dataset import Dataset, save_features
from logreg_cli.model import load_model
from tiny_models import logreg_command, subprocess_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def feature_file(path, m, seed=0):
    """m images of 4x4 pixels in two classes told apart by their first pixel."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (m, 48), dtype=np.uint8)
    y = (X[:, 0] > 127).astype(np.int64)
    paths = [f"data/{'ab'[label]}/{i:06d}.png" for i, label in enumerate(y)]
    save_features(Dataset(X, y, ["a", "b"], paths, (4, 4)), path, {"source": "data"})
    return path


def start_training(args, cwd):
    """logreg train in a subprocess with default SIGINT (as in a shell); returns it once it
    has said that training begins."""
    process = subprocess.Popen(
        logreg_command("train", *args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=subprocess_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first_line = process.stderr.readline()
    assert first_line.startswith("training on"), first_line
    time.sleep(0.3)  # well into the epochs
    return process


def finish(process):
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_saves_a_complete_model_and_exits_130(tmp_path, signal_number):
    data = feature_file(tmp_path / "f.npz", 400)
    model_path = tmp_path / "m.npz"
    process = start_training([data, "--epochs", "100000000", "--lr", "0.1", "--val-split", "0.25",
                              "--history", tmp_path / "h.csv", "-m", model_path], tmp_path)
    process.send_signal(signal_number)
    code, stdout, stderr = finish(process)
    assert code == 130, stderr
    assert stdout == ""
    name = signal.Signals(signal_number).name
    assert f"{name}: stopping at the end of this epoch" in stderr
    assert f"interrupted by {name}" in stderr and f"model written to {model_path}" in stderr
    model = load_model(model_path)
    meta = model.metadata
    assert meta["interrupted"] is True and meta["interrupted_by"] == name
    assert 0 < meta["epochs_run"] < 100000000
    # with validation, the saved weights are the best epoch's
    val_costs = meta["history"]["val_cost"]
    assert meta["validation"]["kept_epoch"] == int(np.argmin(val_costs))
    assert "kept the weights of epoch" in stderr
    history_rows = (tmp_path / "h.csv").read_text().splitlines()
    assert len(history_rows) == len(val_costs) + 1


def test_second_ctrl_c_aborts_without_touching_the_model(tmp_path):
    # mini-batches of one image over 60000 images: the first epoch lasts over a second, so
    # both presses (at 0.3 s and 0.35 s) land in it
    data = feature_file(tmp_path / "f.npz", 60000)
    model_path = tmp_path / "m.npz"
    model_path.write_bytes(b"the previous model")
    process = start_training([data, "--epochs", "1000", "--batch-size", "1", "--lr", "0.01",
                              "-m", model_path], tmp_path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    code, stdout, stderr = finish(process)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "Interrupted." in stderr
    assert "model written" not in stderr
    assert model_path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz", "m.npz"]  # no temp file left
