"""One loss formula: the training cost, the validation cost and evaluate's log-loss are the
same per-image cross-entropy of the scores, exact for any score (issue 10, cases 7 and 8)."""

import csv
import json
import math

import numpy as np
import pytest

from logreg_cli import core
from logreg_cli.features import scale_pixels
from logreg_cli.dataset import Dataset, load_data, save_features
from logreg_cli.metrics import report
from logreg_cli.model import Model, load_model, save_model
from test_cli import run


def softplus(z):
    """ln(1 + e^z) in Python floats, exact for any z (the oracle)."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z > -700 else 0.0


def oracle_cost(z, y, weights=None):
    """Mean binary cross-entropy of scores z for labels y: softplus(-z) for 1, softplus(z) for 0."""
    weights = [1.0] * len(z) if weights is None else weights
    losses = [w * softplus(-s if label else s) for s, label, w in zip(z, y, weights)]
    return math.fsum(losses) / len(z)


# ---------------------------------------------------------------- the formula itself


@pytest.mark.parametrize("scale", [40.0, 1e17, 1e20, 1e32, 1e300])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "class-weighted"])
def test_binary_cost_is_exact_for_huge_scores(scale, weighted):
    """softplus(z) - y z cancels to rounding noise (even a negative cost) when |z| is huge;
    the cost must be the mean of exact, non-negative terms."""
    rng = np.random.default_rng(3)
    z = scale * rng.uniform(0.5, 1.5, size=64)
    z[::2] *= -1
    y = (z > 0).astype(np.int64)  # all right...
    y[:3] = 1 - y[:3]  # ...but three confident mistakes
    weights = rng.uniform(0.5, 2.0, size=64) if weighted else None
    cost, dZ = core.cost_and_delta(z[:, None], y, weights)
    assert cost >= 0
    assert cost == pytest.approx(oracle_cost(z.tolist(), y.tolist(), weights), rel=1e-12)
    # a - y is sigmoid(z) for label 0 and -sigmoid(-z) for label 1, each exact
    a_minus_y = [-sigmoid(-s) if label else sigmoid(s) for s, label in zip(z, y)]
    expected_dZ = np.array(a_minus_y) * (1.0 if weights is None else weights)
    np.testing.assert_allclose(dZ[:, 0], expected_dZ, rtol=1e-12, atol=0)


def test_binary_cost_of_right_answers_with_huge_scores_is_zero():
    """Every image right with |z| ~ 1e17: each exact loss is e^-1e17 = 0, so the cost is 0,
    not the difference of two sums of size 1e18 (which rounds to a multiple of 16)."""
    rng = np.random.default_rng(5)
    z = 1e17 * rng.uniform(1.0, 2.0, size=50)
    z[rng.permutation(50)[:25]] *= -1
    y = (z > 0).astype(np.int64)
    assert core.cost_and_delta(z[:, None], y)[0] == 0.0
    assert core.log_loss(z[:, None], y) == 0.0


def test_negative_class_probability_is_sigmoid_of_minus_z():
    """P(negative) = sigmoid(-z): 4.25e-18 at z = 40, not 1 - sigmoid(40) = 0."""
    P = core.probabilities(np.array([[40.0], [-40.0], [800.0]]))
    assert P[0, 0] == pytest.approx(1 / (1 + math.exp(40)), rel=1e-15)
    assert P[1, 1] == pytest.approx(1 / (1 + math.exp(40)), rel=1e-15)
    assert P[2, 0] == 0.0 and P[2, 1] == 1.0  # e^-800 is below float64's range
    np.testing.assert_array_equal(P.sum(axis=1), [1.0, 1.0, 1.0])


# ---------------------------------------------------------------- train and evaluate agree


def two_row_case(tmp_path, wrong_z):
    """A 1x1 binary model and two images both labelled 'neg', scored z = wrong_z and -3."""
    weights = np.array([[wrong_z + 3.0], [0.0], [0.0]], dtype=np.float32)
    bias = np.array([-3.0], dtype=np.float32)
    model = tmp_path / "model.npz"
    save_model(Model(weights, bias, ["neg", "pos"], (1, 1)), model)
    X = np.array([[255, 0, 0], [0, 0, 0]], dtype=np.uint8)
    features = tmp_path / "two.npz"
    save_features(Dataset(X, np.array([0, 0]), ["neg", "pos"], ["a.png", "b.png"], (1, 1)),
                  features)
    return model, features, X, weights, bias


@pytest.mark.parametrize("wrong_z", [40.0, 745.0, 1e6])
def test_evaluate_log_loss_equals_the_training_cost_for_a_confident_mistake(tmp_path, wrong_z):
    """The case of issue 10: z = 40 and -3, both labelled 0: cost 20.02, log-loss 354.2
    before. Now both are (softplus(40) + softplus(-3)) / 2 = 20.024294."""
    model, features, X, weights, bias = two_row_case(tmp_path, wrong_z)
    expected = (softplus(wrong_z) + softplus(-3.0)) / 2

    result = run("evaluate", features, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.output
    log_loss = json.loads(result.stdout)["log_loss"]
    assert log_loss == pytest.approx(expected, rel=1e-12)

    X32 = scale_pixels(X)
    fit = core.train(X32, np.array([0, 0]), 2, core.TrainConfig(epochs=1), init=(weights, bias))
    assert fit.history[0].cost == pytest.approx(log_loss, rel=1e-12)

    text = run("evaluate", features, "-m", model).stdout.splitlines()
    assert text[1] == f"log-loss  {expected:.6f}"


def test_predict_and_explain_give_the_negative_class_its_probability(tmp_path):
    model, _, X, _, _ = two_row_case(tmp_path, 40.0)
    from PIL import Image

    image = tmp_path / "white.png"
    Image.fromarray(np.full((1, 1, 3), 255, dtype=np.uint8)).save(image)  # z = 40 + 0 + 0
    expected = 1 / (1 + math.exp(40.0))

    result = run("predict", image, "-m", model, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["probabilities"]["neg"] == pytest.approx(expected, rel=1e-6)
    assert record["probabilities"]["pos"] == 1.0

    result = run("explain", image, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["probabilities"]["neg"] == pytest.approx(expected, rel=1e-6)


def test_ten_class_log_loss_equals_the_training_cost(tmp_path, make_image_folder):
    """10 classes, score gaps of hundreds: a softmax probability below e^-745 is 0 in
    float64 (the old log-loss floored it and counted 708). evaluate's log-loss is the cost
    that training records for the same weights (epoch 0 of a run that starts from them)."""
    data = make_image_folder({f"c{i}": 2 for i in range(10)}, name="ten")
    rng = np.random.default_rng(7)
    weights = rng.normal(scale=40.0, size=(192, 10)).astype(np.float32)
    bias = rng.normal(scale=3.0, size=10).astype(np.float32)
    model = tmp_path / "ten.npz"
    save_model(Model(weights, bias, sorted(f"c{i}" for i in range(10)), (8, 8)), model)

    result = run("evaluate", data, "-m", model, "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    log_loss = json.loads(result.stdout)["log_loss"]

    history = tmp_path / "h.csv"
    result = run("train", data, "--init", model, "--epochs", "1", "--history", history,
                 "-m", tmp_path / "next.npz", "-q")
    assert result.exit_code == 0, result.output
    with open(history, newline="") as file:
        cost = float(next(csv.DictReader(file))["cost"])
    assert cost == pytest.approx(log_loss, rel=1e-12)

    dataset = load_data(data, (8, 8))
    Z = core.scores(scale_pixels(dataset.X), weights, bias)
    gaps = Z.max(axis=1) - Z[np.arange(len(Z)), dataset.y]
    assert gaps.max() > 745  # some true class has a probability below e^-745
    assert log_loss == pytest.approx(np.mean([math.log(math.fsum(math.exp(v - row.max())
                                                                  for v in row)) + gap
                                              for row, gap in zip(Z, gaps)]), rel=1e-9)


def test_report_takes_scores_and_uses_the_shared_formula():
    Z = np.array([[40.0], [-3.0]])
    figures = report(np.array([0, 0]), Z, ["neg", "pos"])
    assert figures["log_loss"] == pytest.approx((softplus(40.0) + softplus(-3.0)) / 2, rel=1e-15)


# ---------------------------------------------------------------- every training path


LOSS_PATHS = {
    "gram-lean": [],
    "gram-l2": ["--l2", "1e-30"],
    "gram-weighted": ["--class-weight", "balanced"],
    "minibatch": ["--batch-size", "3"],
    "validation": ["--val-split", "0.3"],
}


@pytest.mark.parametrize("options", LOSS_PATHS.values(), ids=LOSS_PATHS.keys())
def test_huge_learning_rate_never_records_a_negative_cost(tmp_path, make_image_folder, options):
    """--lr 1e20 at 16x16: scores of ~1e20, a cost that was once -262144. Every recorded
    cost is now >= 0, and the last one is the exact cost of the weights it was measured on."""
    data = make_image_folder({"a": 4, "b": 4})
    history = tmp_path / "h.csv"
    result = run("train", data, "--size", "16x16", "--lr", "1e20", "--epochs", "12",
                 "--history", history, "-m", tmp_path / "m.npz", *options)
    assert result.exit_code == 0, result.output
    with open(history, newline="") as file:
        rows = list(csv.DictReader(file))
    costs = [float(row["cost"]) for row in rows]
    assert len(costs) == 12 and min(costs) >= 0
    if "val_cost" in rows[0]:
        assert min(float(row["val_cost"]) for row in rows) >= 0


def test_roc_auc_ranks_confident_scores_that_probabilities_tie(tmp_path):
    """z = 38.0 (negative) and 45 (positive) both have P = 1.0 in float64: ranked by
    probability they tie (AUC (0.5 + 1) / 2 = 0.75); ranked by score, 1.0."""
    model = tmp_path / "model.npz"
    save_model(Model(np.array([[47.0], [0.0], [0.0]], np.float32), np.array([-2.0], np.float32),
                     ["neg", "pos"], (1, 1)), model)
    X = np.array([[217, 0, 0], [255, 0, 0], [0, 0, 0]], dtype=np.uint8)  # z = 38.0, 45, -2
    features = tmp_path / "three.npz"
    save_features(Dataset(X, np.array([0, 1, 0]), ["neg", "pos"], ["a", "b", "c"], (1, 1)),
                  features)
    Z = core.scores(scale_pixels(X), load_model(model).weights, load_model(model).bias)
    assert core.probabilities(Z)[0, 1] == core.probabilities(Z)[1, 1] == 1.0
    result = run("evaluate", features, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["roc_auc"] == 1.0
