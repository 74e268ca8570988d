"""Classification figures from true labels y (m ints) and a model's scores Z (m x c),
turned into probabilities P (m x k) by core.probabilities."""

import numpy as np

from . import core


def confusion_matrix(y_true, y_pred, k):
    """k x k counts: row = true class, column = predicted class."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def log_loss(y_true, Z):
    """Mean -ln P[i, y_i] from the scores Z (m x c): core.log_loss, the training cost's
    formula (without L2), exact for any score."""
    return core.log_loss(Z, y_true)


def _ratio(numerator, denominator):
    """Elementwise numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def per_class(confusion):
    """Precision, recall, F1 and support of each class from a confusion matrix."""
    true_positive = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def average_ranks(values):
    """1-based ranks of values (m), tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2.0)[inverse]


def roc_auc(is_positive, score):
    """Area under the ROC curve from ranks (Mann-Whitney U): the chance that a random
    positive scores above a random negative, ties counting one half. None without both."""
    is_positive = np.asarray(is_positive, dtype=bool)
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = average_ranks(score)[is_positive].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def ranked_counts(is_positive, score):
    """Predicting positive when score >= t, for each distinct score t from the highest down:
    (t, true positives, predicted positives), three arrays of the same length, float64 and
    int counts. Ties of equal scores are predicted together."""
    is_positive = np.asarray(is_positive, dtype=bool)
    order = np.argsort(-score, kind="stable")
    sorted_score, sorted_positive = score[order], is_positive[order]
    # Cut after the last of each run of equal scores: everything up to it is predicted positive.
    cut = np.flatnonzero(np.append(sorted_score[1:] != sorted_score[:-1], True))
    return sorted_score[cut], np.cumsum(sorted_positive)[cut], cut + 1


def best_f1_threshold(is_positive, score):
    """The threshold t (one of the scores; predict positive when score >= t) with the highest
    F1 of the positive class, the highest such t on ties; dict of threshold, f1, precision,
    recall, or None when there is no positive."""
    positives = int(np.count_nonzero(is_positive))
    if positives == 0:
        return None
    thresholds, true_positive, predicted = ranked_counts(is_positive, score)
    f1 = 2.0 * true_positive / (predicted + positives)
    best = int(np.argmax(f1))
    return {
        "threshold": float(thresholds[best]),
        "f1": float(f1[best]),
        "precision": float(true_positive[best] / predicted[best]),
        "recall": float(true_positive[best] / positives),
    }


def most_confident_mistakes(y_true, proba, count):
    """Indices of up to count wrongly predicted rows, most probable predicted label first."""
    y_pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    confidence = proba[wrong, y_pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count].tolist()


def report(y_true, Z, classes, paths=None, misclassified=0):
    """Everything `logreg evaluate` prints, as plain Python values (JSON-ready), from the
    true labels y_true (m ints) and the model's scores Z (m x c float64).

    Binary models add roc_auc and best_threshold (the positive class is classes[1]);
    misclassified > 0 adds the most confidently wrong images (needs paths).
    """
    k = len(classes)
    proba = core.probabilities(Z)
    y_pred = proba.argmax(axis=1)
    confusion = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1, support = per_class(confusion)
    correct = int(np.trace(confusion))
    result = {
        "accuracy": correct / len(y_true) if len(y_true) else 0.0,
        "correct": correct,
        "images": int(len(y_true)),
        "log_loss": log_loss(y_true, Z),
        "classes": list(classes),
        "confusion_matrix": confusion.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
    }
    if k == 2:
        is_positive = y_true == 1
        result["positive_class"] = classes[1]
        # ranked by z, not by P = sigmoid(z), which rounds every z past 37 to the same 1.0
        result["roc_auc"] = roc_auc(is_positive, Z[:, 0])
        result["best_threshold"] = best_f1_threshold(is_positive, proba[:, 1])
    if misclassified:
        result["misclassified"] = [
            {"path": str(paths[i]), "true": classes[y_true[i]], "predicted": classes[y_pred[i]],
             "probability": float(proba[i, y_pred[i]])}
            for i in most_confident_mistakes(y_true, proba, misclassified)
        ]
    return result
