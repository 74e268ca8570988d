"""Classification figures from true labels y (m ints) and probabilities P (m x k)."""

import numpy as np


def confusion_matrix(y_true, y_pred, k):
    """k x k counts: row = true class, column = predicted class."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def log_loss(y_true, proba):
    """Mean -log P[i, y_i], with probabilities floored at the smallest positive float64."""
    picked = proba[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float64).tiny))))


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


def report(y_true, proba, classes):
    """Everything `logreg evaluate` prints, as plain Python values (JSON-ready)."""
    k = len(classes)
    y_pred = proba.argmax(axis=1)
    confusion = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1, support = per_class(confusion)
    return {
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else 0.0,
        "correct": int(np.sum(y_pred == y_true)),
        "images": int(len(y_true)),
        "log_loss": log_loss(y_true, proba),
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
