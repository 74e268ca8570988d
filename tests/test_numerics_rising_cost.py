"""A run whose cost goes up says so (issue 10, case 7): one warning line naming --lr, or
--l2 when its step is what overshoots; the model is still written and the exit code is 0."""

import csv

import numpy as np
import pytest

from logreg_cli import core
from logreg_cli.model import load_model
from test_cli import run
from tiny_models import write_class_folders


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """18 images of 3 classes seen at 1x1 (3 features): the classes overlap, so a too-large
    rate makes the cost oscillate instead of settling (plain method: m > n)."""
    root = tmp_path_factory.mktemp("rising") / "tri"
    write_class_folders(root, ["blue", "green", "red"], 6)
    return root


def train(data, tmp_path, *options):
    history = tmp_path / "h.csv"
    result = run("train", data, "-m", tmp_path / "m.npz", "--size", "1x1", "--history", history,
                 *options)
    assert result.exit_code == 0, result.output
    with open(history, newline="") as file:
        costs = [float(row["cost"]) for row in csv.DictReader(file)]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    return result, costs, warnings


def test_a_cost_that_ends_above_its_start_is_a_warning_naming_lr(overlapping, tmp_path):
    result, costs, warnings = train(overlapping, tmp_path, "--lr", "500", "--epochs", "50")
    assert costs[-1] > costs[0] == pytest.approx(np.log(3))
    assert warnings == [f"Warning: {overlapping}: the cost rose from 1.09861 at epoch 0 to "
                        f"{costs[-1]:.6g} at epoch 49; --lr 500 is likely too large: "
                        "try a smaller --lr"]
    assert (tmp_path / "m.npz").exists()
    final_cost = load_model(tmp_path / "m.npz").metadata["final_cost"]  # after epoch 49's update
    assert f"final cost {final_cost:.6f} (epoch 50, the weights saved)" in result.stderr


def test_a_cost_still_rising_at_the_end_is_a_warning(overlapping, tmp_path):
    """--lr 50: the cost jumps to 37 and back, and ends below its start (1.07 < 1.10) but
    above where it was a few epochs before."""
    _, costs, warnings = train(overlapping, tmp_path, "--lr", "50", "--epochs", "50")
    assert costs[-1] < costs[0]
    last, before = np.mean(costs[-4:]), np.mean(costs[-8:-4])
    assert last > before
    assert warnings == [f"Warning: {overlapping}: the cost is rising at the end: {last:.6g} on "
                        f"average over the last 4 epochs, {before:.6g} over the 4 before; "
                        "--lr 50 is likely too large: try a smaller --lr"]


@pytest.mark.parametrize("options", [["--lr", "5", "--epochs", "50"],
                                     ["--lr", "20", "--epochs", "200"],
                                     ["--lr", "5", "--epochs", "50", "--batch-size", "4"]],
                         ids=["descending", "alternating-but-falling", "minibatch"])
def test_a_cost_that_comes_down_gives_no_warning(overlapping, tmp_path, options):
    _, costs, warnings = train(overlapping, tmp_path, *options)
    assert costs[-1] < costs[0] and warnings == []


def test_minibatch_rise_is_a_warning(overlapping, tmp_path):
    _, costs, warnings = train(overlapping, tmp_path, "--lr", "50", "--epochs", "50",
                               "--batch-size", "4")
    assert costs[-1] > costs[0]
    assert len(warnings) == 1 and "--lr 50 is likely too large" in warnings[0]


def test_an_l2_step_that_overshoots_is_named_instead_of_lr(overlapping, tmp_path):
    """lr * l2 / m = 40 / 18 = 2.2 > 2: the penalty multiplies W by -1.22 each step, so the
    cost grows (not yet past float32 in 30 epochs); --lr 1 alone is fine on this data."""
    _, costs, warnings = train(overlapping, tmp_path, "--lr", "1", "--l2", "40", "--epochs", "30")
    assert costs[-1] > 100 * costs[0]
    assert warnings == [f"Warning: {overlapping}: the cost rose from 1.09861 at epoch 0 to "
                        f"{costs[-1]:.6g} at epoch 29; --l2 40 is likely too large: with --lr 1 "
                        "and 18 images each step multiplies the weights by 1 - lr*l2/m = -1.22; "
                        "use an --l2 below 36"]
    _, costs, warnings = train(overlapping, tmp_path, "--lr", "1", "--l2", "30", "--epochs", "30")
    assert warnings == []


def test_quiet_still_warns(overlapping, tmp_path):
    result, _, warnings = train(overlapping, tmp_path, "--lr", "500", "--epochs", "50", "-q")
    assert len(warnings) == 1 and result.stderr.splitlines() == warnings


def test_compare_lr_warns_for_the_rate_that_rises(overlapping, tmp_path):
    result = run("train", overlapping, "-m", tmp_path / "m.npz", "--size", "1x1", "--epochs",
                 "50", "--compare-lr", "5,500", "--plot", tmp_path / "p.png", "-q")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1 and "--lr 500 is likely too large" in warnings[0]


def test_rising_cost_rules():
    falling = list(np.linspace(0.7, 0.1, 40))
    assert core.rising_cost(falling, full_batch=True) is None
    flat = [0.25 * (1 + 1e-15 * (i % 3)) for i in range(40)]  # rounding noise only
    assert core.rising_cost(flat, full_batch=True) is None
    late_rise = falling[:30] + list(np.linspace(0.1, 0.3, 10))
    assert core.rising_cost(late_rise, full_batch=True).startswith("the cost is rising at the end")
    assert core.rising_cost(late_rise, full_batch=False) is None  # mini-batch: noise, no verdict
    assert core.rising_cost([0.69, 0.5, 0.8], full_batch=False).startswith("the cost rose")
    assert core.rising_cost([0.69], full_batch=True) is None
