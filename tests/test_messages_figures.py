"""Issue 15 part 2, "messages": the summary and `inspect` give the figures of the weights
actually saved (the kept epoch with validation), and inspect's text reads as a person reads:
percentages, `none`, the training time, whether (and by what) the run was interrupted."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.dataset import Dataset, save_features
from logreg_cli.model import Model, load_model, save_model


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def inspect_table(model_path):
    """inspect's text as {label: value}."""
    lines = invoke("inspect", model_path).stdout.splitlines()
    return dict(re.match(r"^(\S+(?: \S+)*)  +(\S.*)$", line).groups() for line in lines)


@pytest.fixture
def overfitting_features(tmp_path):
    """Noisy labels: the validation cost turns up long before the last epoch."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 48), dtype=np.uint8)
    y = (X[:, 0].astype(int) - 128 + rng.normal(size=60) * 60 > 0).astype(np.int64)
    path = tmp_path / "f.npz"
    save_features(Dataset(X, y, ["a", "b"], [f"d/{i}.png" for i in range(60)], (4, 4)), path,
                  {"source": "d"})
    return path


@pytest.mark.parametrize("early_stop", [[], ["--early-stop", "20"]])
def test_summary_and_inspect_give_the_cost_of_the_kept_epoch(overfitting_features, tmp_path,
                                                             early_stop):
    model_path = tmp_path / "m.npz"
    trained = invoke("train", overfitting_features, "-m", model_path, "--epochs", "400",
                     "--lr", "0.5", "--val-split", "0.5", *early_stop)
    assert trained.exit_code == 0, trained.output
    meta = load_model(model_path).metadata
    kept, costs = meta["validation"]["kept_epoch"], meta["history"]["cost"]
    assert 0 < kept < len(costs) - 1 and costs[kept] != costs[-1]
    assert f"final cost {costs[kept]:.6f} (epoch {kept}, the weights saved)" in trained.stderr
    summary = json.loads(invoke("inspect", model_path, "--format", "json").stdout)
    assert (summary["saved_epoch"], summary["final_cost"]) == (kept, costs[kept])
    assert inspect_table(model_path)["final_cost"] == \
        f"{costs[kept]} (epoch {kept}, the weights saved)"


@pytest.mark.parametrize("options", [[], ["--l2", "3", "--class-weight", "balanced"]])
def test_without_validation_the_cost_is_that_after_the_last_update(overfitting_features,
                                                                    tmp_path, options):
    """30 epochs save the weights after 30 updates: their cost is what a 31-epoch run
    records for epoch 30 (the history's last row, epoch 29, is before the last update)."""
    runs = {}
    for epochs in (30, 31):
        model_path = tmp_path / f"m{epochs}.npz"
        trained = invoke("train", overfitting_features, "-m", model_path, "--epochs", epochs,
                         "--lr", "0.05", *options)
        assert trained.exit_code == 0, trained.output
        runs[epochs] = (trained.stderr, load_model(model_path).metadata)
    stderr, meta = runs[30]
    after_last_update = runs[31][1]["history"]["cost"][30]
    assert meta["final_cost"] == pytest.approx(after_last_update, rel=1e-6)
    assert meta["final_cost"] != meta["history"]["cost"][-1]
    assert f"final cost {meta['final_cost']:.6f} (epoch 30, the weights saved)" in stderr
    summary = json.loads(invoke("inspect", tmp_path / "m30.npz", "--format", "json").stdout)
    assert (summary["saved_epoch"], summary["final_cost"]) == (30, meta["final_cost"])


def test_inspect_text_reads_as_a_person_reads(overfitting_features, tmp_path):
    model_path = tmp_path / "m.npz"
    assert invoke("train", overfitting_features, "-m", model_path, "--epochs", "30",
                  "--val-split", "0.5").exit_code == 0
    meta = load_model(model_path).metadata
    result = invoke("inspect", model_path)
    table = inspect_table(model_path)
    assert table["train_accuracy"] == f"{100 * meta['train_accuracy']:.2f} %"
    assert table["validation accuracy"] == f"{100 * meta['validation']['accuracy']:.2f} %"
    assert table["training_time"] == f"{meta['seconds']:.2f} s"
    assert table["interrupted"] == "no"
    assert table["option positive"] == "b"
    assert table["data class_counts"].startswith("a ") and "{" not in result.stdout
    assert "None" not in result.stdout and table["option init"] == "none"
    summary = json.loads(invoke("inspect", model_path, "--format", "json").stdout)
    assert (summary["interrupted"], summary["interrupted_by"]) == (False, None)
    assert summary["training_seconds"] == meta["seconds"]


def test_inspect_says_what_interrupted_the_run(tmp_path):
    metadata = {"epochs_run": 7, "seconds": 1.5, "interrupted": True, "interrupted_by": "SIGINT",
                "history": {"epoch": list(range(7)), "cost": [0.7] * 7}}
    save_model(Model(np.zeros((3, 1), np.float32), np.zeros(1, np.float32), ["a", "b"], (1, 1),
                     metadata=metadata), tmp_path / "m.npz")
    table = inspect_table(tmp_path / "m.npz")
    assert (table["interrupted"], table["training_time"]) == ("yes, by SIGINT", "1.50 s")
    summary = json.loads(invoke("inspect", tmp_path / "m.npz", "--format", "json").stdout)
    assert (summary["interrupted"], summary["interrupted_by"]) == (True, "SIGINT")
