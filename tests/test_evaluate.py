"""logreg evaluate: every figure checked against values worked out by hand on tiny sets."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.dataset import Dataset, save_features
from logreg_cli.metrics import average_ranks, best_f1_threshold, report, roc_auc
from logreg_cli.model import Model, save_model


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


# Six 1x1 images scored by a hand-made binary model: z = 4 * red/255 - 1.9.
RED = [0, 51, 153, 153, 204, 255]
Z = [-1.9, -1.1, 0.5, 0.5, 1.3, 2.1]
TRUTH = [0, 1, 0, 1, 0, 1]  # neg, pos, neg, pos, neg, pos


@pytest.fixture
def hand_made(tmp_path):
    """A binary model and a 6-image feature file whose probabilities are sigmoid(Z)."""
    model = tmp_path / "model.npz"
    save_model(Model(np.array([[4.0], [0.0], [0.0]], dtype=np.float32),
                     np.array([-1.9], dtype=np.float32), ["neg", "pos"], (1, 1)), model)
    X = np.array([[red, 7, 9] for red in RED], dtype=np.uint8)
    paths = [f"img{i}.png" for i in range(6)]
    features = tmp_path / "six.npz"
    save_features(Dataset(X, np.array(TRUTH), ["neg", "pos"], paths, (1, 1)), features)
    return model, features


def evaluate(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def test_binary_report_matches_the_hand_computation(hand_made):
    model, features = hand_made
    result = evaluate(features, "-m", model, "--format", "json", "--misclassified", "2")
    assert (result.exit_code, result.stderr) == (0, "")
    figures = json.loads(result.stdout)
    # Predicted positive when z > 0: images 2..5, so predictions are neg neg pos pos pos pos.
    assert figures["confusion_matrix"] == [[1, 2], [1, 2]]
    assert (figures["correct"], figures["images"]) == (3, 6)
    assert figures["accuracy"] == pytest.approx(0.5)
    assert figures["per_class"]["pos"] == pytest.approx(
        {"precision": 2 / 4, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert figures["per_class"]["neg"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 3, "f1": 0.4, "support": 3})
    expected_loss = -np.mean([math.log(sigmoid(z) if y else 1 - sigmoid(z))
                              for z, y in zip(Z, TRUTH)])
    assert figures["log_loss"] == pytest.approx(expected_loss, rel=1e-5)
    # Pairs (positive, negative) ordered right: 1 + (1 + 1/2) + 3 = 5.5 of 9 (images 2, 3 tie).
    assert figures["positive_class"] == "pos"
    assert figures["roc_auc"] == pytest.approx(5.5 / 9)
    # Threshold at image 1's score: 5 predicted positive, all 3 positives found, F1 = 6/8.
    assert figures["best_threshold"] == pytest.approx(
        {"threshold": sigmoid(-1.1), "f1": 0.75, "precision": 3 / 5, "recall": 1.0}, rel=1e-5)
    # Wrong: image 4 (pos at 0.786), image 1 (neg at 0.750), image 2 (pos at 0.622).
    assert [(m["path"], m["true"], m["predicted"]) for m in figures["misclassified"]] == [
        ("img4.png", "neg", "pos"), ("img1.png", "pos", "neg")]
    assert figures["misclassified"][0]["probability"] == pytest.approx(sigmoid(1.3), rel=1e-5)


def test_text_report_lays_out_names_and_figures(hand_made):
    model, features = hand_made
    result = evaluate(features, "-m", model, "--misclassified", "1")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "accuracy  50.00 % (3/6)"
    assert lines[2] == "ROC AUC   0.611111  (positive class: pos)"
    assert lines[3].startswith(f"best F1   0.750000 at threshold {sigmoid(-1.1):.6f}")
    assert "class  precision  recall     f1  support" in lines
    assert "pos        0.500   0.667  0.571        3" in lines
    matrix = lines.index("confusion matrix (rows: true class, columns: predicted)")
    assert lines[matrix + 1:matrix + 4] == ["       neg  pos", "neg      1    2", "pos      1    2"]
    assert lines[-1] == f"img4.png\tneg\tpos\t{sigmoid(1.3):.6f}"


def test_multiclass_report_by_hand():
    proba = np.array([
        [0.7, 0.2, 0.1],  # a -> a
        [0.1, 0.6, 0.3],  # a -> b (wrong, 0.6)
        [0.2, 0.5, 0.3],  # b -> b
        [0.1, 0.1, 0.8],  # c -> c
        [0.5, 0.1, 0.4],  # c -> a (wrong, 0.5)
    ])
    y = np.array([0, 0, 1, 2, 2])
    # report takes scores: log(proba) are scores whose softmax is proba (rows sum to 1)
    figures = report(y, np.log(proba), ["a", "b", "c"], paths=list("vwxyz"), misclassified=5)
    assert figures["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert figures["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert figures["per_class"]["b"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert figures["log_loss"] == pytest.approx(
        -np.mean(np.log([0.7, 0.1, 0.5, 0.8, 0.4])))
    assert "roc_auc" not in figures
    assert [m["path"] for m in figures["misclassified"]] == ["w", "z"]


def test_average_ranks_share_ties():
    assert average_ranks(np.array([0.3, 0.1, 0.3, 0.9])).tolist() == [2.5, 1.0, 2.5, 4.0]


def test_roc_auc_equals_counting_pairs():
    rng = np.random.default_rng(5)
    score = rng.integers(0, 5, size=40) / 4.0  # many ties
    positive = rng.random(40) < 0.4
    pos, neg = score[positive], score[~positive]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert roc_auc(positive, score) == pytest.approx(pairs.mean())


def test_roc_auc_and_threshold_need_positives():
    score = np.array([0.2, 0.8])
    assert roc_auc(np.array([False, False]), score) is None
    assert roc_auc(np.array([True, True]), score) is None
    assert best_f1_threshold(np.array([False, False]), score) is None
    assert best_f1_threshold(np.array([True, True]), score)["threshold"] == pytest.approx(0.2)


@pytest.mark.parametrize("seed", range(5))
def test_roc_points_and_best_threshold_agree_with_scikit_learn_on_tied_scores(seed):
    from sklearn.metrics import f1_score, roc_curve

    from logreg_cli.report import roc_points

    rng = np.random.default_rng(seed)
    score = rng.integers(0, 12, 60) / 11.0  # few distinct values: many ties
    is_positive = rng.random(60) < 0.4
    fpr, tpr = roc_points(is_positive, score)
    expected_fpr, expected_tpr, _ = roc_curve(is_positive, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, expected_fpr)
    np.testing.assert_allclose(tpr, expected_tpr)
    best = best_f1_threshold(is_positive, score)
    f1s = {t: f1_score(is_positive, score >= t) for t in np.unique(score)}
    top = max(f1s.values())
    assert best["f1"] == pytest.approx(top)
    assert best["threshold"] == max(t for t, f1 in f1s.items() if f1 == pytest.approx(top))
