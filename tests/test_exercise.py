"""The classic cat/non-cat exercise, reproduced to its published cost trace and accuracies.

Uses ../shared/datasets/catvnoncat (or $LOGREG_SHARED_DATA); skipped when that is absent.
Settings: 64x64, pixels / 255, zero init, lr 0.005, 2000 full-batch epochs, no decay.
"""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli import core
from logreg_cli.features import scale_pixels
from logreg_cli.cli import cli
from logreg_cli.dataset import load_data
from logreg_cli.model import load_model

# Cost before the update of epochs 0, 100, ..., 1900: "our reproduction" column of
# ../shared/datasets/catvnoncat/README.md (the notebook prints the same to 6 decimals).
PUBLISHED_COSTS = [
    0.6931471805599453, 0.5845083636993086, 0.46694904094655476, 0.37600686694802077,
    0.33146328932825125, 0.30327306747438293, 0.27987958658260487, 0.2600421369258757,
    0.24294068467796617, 0.2280042225672606, 0.21481951378449637, 0.20307819060644985,
    0.1925442771670686, 0.18303333796883506, 0.17439859438448874, 0.16652139705400335,
    0.15930451829756614, 0.15266732471296507, 0.1465422350398234, 0.1408720757031016,
]
TOLERANCE = 2e-6


def test_cli_reproduces_the_exercise(shared_data, tmp_path):
    model, history = tmp_path / "cats.npz", tmp_path / "h.csv"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(shared_data / "train"), "--lr", "0.005",
                                 "--epochs", "2000", "--history", str(history), "-m", str(model)])
    assert result.exit_code == 0, result.output

    with open(history, newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2000
    costs = [float(row["cost"]) for row in rows[::100]]
    np.testing.assert_allclose(costs, PUBLISHED_COSTS, rtol=0, atol=TOLERANCE)

    metadata = load_model(model).metadata
    assert metadata["data"]["images"] == 209
    assert round(metadata["train_accuracy"] * 209) == 207
    assert metadata["train_accuracy"] == pytest.approx(207 / 209)

    result = runner.invoke(cli, ["evaluate", str(shared_data / "test"), "-m", str(model),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["correct"], report["images"]) == (35, 50)
    assert report["accuracy"] == 0.7
    assert report["positive_class"] == "cat"  # as in the exercise (label 1 = cat)


def test_plain_core_reproduces_the_exercise(shared_data):
    """The plain (two passes over X per epoch) path gives the same trace as the Gram path."""
    dataset = load_data(shared_data / "train", (64, 64))
    assert dataset.X.shape == (209, 12288)
    X = scale_pixels(dataset.X)
    fit = core.train(X, dataset.y, 2, core.TrainConfig(lr=0.005, epochs=2000, method="plain"))
    assert fit.method == "plain"
    costs = [stats.cost for stats in fit.history[::100]]
    np.testing.assert_allclose(costs, PUBLISHED_COSTS, rtol=0, atol=TOLERANCE)
    predicted = core.predict_proba(X, fit.weights, fit.bias).argmax(axis=1)
    assert int((predicted == dataset.y).sum()) == 207
