"""What a trained model learned and why it decides: the model summary and exact per-pixel
explanations.

For a linear model the explanation is exact: z = sum_i w_i x_i + b, so the contribution of
pixel (r, c) is the sum over its three channels of w_i x_i, where x is the feature the model
was trained on (pixel / 255, or standardized), and the contributions plus b add up to z.
"""

from dataclasses import dataclass

import numpy as np

from . import core
from .errors import LogregError
from .names import shown


@dataclass
class Explanation:
    """One image explained for one output: contributions is H x W, pixels H x W x 3 uint8."""

    name: str
    explained_class: str
    positive_only: bool  # binary model: z is the positive class's score, P = sigmoid(z)
    contributions: np.ndarray
    pixels: np.ndarray
    z: float
    bias: float
    probability: float
    predicted: str
    probabilities: dict
    negated: bool = False  # binary model, negative class: z, b and contributions are -(...)

    def as_dict(self):
        height, width = self.contributions.shape
        flat = self.contributions.reshape(-1)
        order = np.argsort(flat)

        def pixel(index):
            row, column = divmod(int(index), width)
            return {"x": column, "y": row, "contribution": float(flat[index])}

        return {
            "image": self.name,
            "class": self.explained_class,
            "binary": self.positive_only,
            "negated": self.negated,
            "z": self.z,
            "b": self.bias,
            "sum_of_contributions": float(flat.sum()),
            "probability": self.probability,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "strongest_positive": [pixel(i) for i in order[::-1][:5] if flat[i] > 0],
            "strongest_negative": [pixel(i) for i in order[:5] if flat[i] < 0],
        }


def class_index(model, class_name):
    """The index in model.classes of class_name as names.class_name reads it (NFC, ...).

    Raises LogregError naming --class when the model has no such class."""
    from .names import class_name as read_name

    known = [read_name(name) for name in model.classes]
    if read_name(class_name) not in known:
        raise LogregError(f"--class {class_name!r} is not one of the model's classes "
                          f"({', '.join(model.classes)})")
    return known.index(read_name(class_name))


def explain(model, row, name, class_name=None):
    """Explain the model's score of one uint8 pixel row (n) -> Explanation.

    The score of class_name, by default of the predicted class. A binary model has one
    score z, the positive class's (classes[1]); the negative class's own score is -z
    (P = sigmoid(-z)), so explaining it negates every contribution and b.
    """
    width, height = model.size
    features = model.features(row[None, :])[0].astype(np.float64)
    weights = model.weights.astype(np.float64)
    # z exactly as the sum of its parts (float64), so that contributions + b == z;
    scores = features @ weights + model.bias.astype(np.float64)  # c
    # the probabilities and the predicted class as predict computes them (model.scores,
    # float32 products), so explain never names another class than predict
    probabilities = core.probabilities(model.scores(row[None, :]))[0]
    predicted = model.classes[int(np.argmax(probabilities))]
    binary = len(model.classes) == 2
    if class_name is None:
        class_name = predicted
    index = class_index(model, class_name)
    class_name = model.classes[index]
    column = 0 if binary else index  # a binary model's one column is its positive class's
    sign = -1.0 if binary and index == 0 else 1.0  # the negative class's score is -z
    contributions = sign * (weights[:, column] * features).reshape(height, width, 3).sum(axis=2)
    return Explanation(
        name=shown(str(name)),  # printable: undecodable bytes as \xNN
        explained_class=class_name,
        positive_only=binary,
        contributions=contributions,
        pixels=row.reshape(height, width, 3),
        z=sign * float(scores[column]),
        bias=sign * float(model.bias[column]),
        probability=float(probabilities[index]),
        predicted=predicted,
        probabilities={c: float(p) for c, p in zip(model.classes, probabilities)},
        negated=sign < 0,
    )


# ---------------------------------------------------------------- the model summary


def model_summary(model, model_path):
    """What `logreg inspect` shows, as plain values (JSON-ready)."""
    from .model import FORMAT_VERSION, size_text, summarize_history

    meta = model.metadata
    history = meta.get("history") or {}
    # written at save time, so that inspect never reads the per-epoch history member
    recorded = meta.get("history_summary") or summarize_history(history)
    summary = {
        "model": str(model_path),
        "format_version": FORMAT_VERSION,
        "logreg_version": meta.get("logreg_version"),
        "created": meta.get("created"),
        "classes": model.classes,
        "positive_class": model.classes[1] if len(model.classes) == 2 else None,
        "size": size_text(model.size),
        "features": model.n_features,
        "scaling": model.scaling,
        "options": meta.get("options", {}),
        "data": meta.get("data", {}),
        "method": meta.get("method"),
        "epochs_run": meta.get("epochs_run", recorded.get("epochs") or None),
        "saved_epoch": _saved_epoch(meta),
        "final_cost": meta.get("final_cost", (history.get("cost") or [None])[-1]),
        "best_cost": recorded.get("best_cost"),
        "train_accuracy": meta.get("train_accuracy"),
        "training_seconds": meta.get("seconds"),
        "interrupted": meta.get("interrupted"),
        "interrupted_by": meta.get("interrupted_by"),
        "validation": _validation(meta, recorded),
    }
    return summary


def _saved_epoch(meta):
    """The epoch whose weights the file holds: the kept epoch with validation, else the last
    (files older than "saved_epoch" lack the key); None when unknown."""
    if "saved_epoch" in meta:
        return meta["saved_epoch"]
    validation = meta.get("validation")
    if isinstance(validation, dict) and validation.get("kept_epoch") is not None:
        return validation["kept_epoch"]
    return meta.get("epochs_run")


def _validation(meta, recorded):
    """Validation figures the training run recorded (metadata["validation"], as `train`
    writes it, and the history summary), or None when it had no validation."""
    figures = dict(meta["validation"]) if isinstance(meta.get("validation"), dict) else {}
    for key in ("final_val_cost", "best_val_cost", "final_val_accuracy"):
        if key in recorded:
            figures.setdefault(key, recorded[key])
    return figures or None


def weight_captions(model):
    """Captions of the weight tiles: the positive class alone for a binary model."""
    if len(model.classes) == 2:
        return [f"{model.classes[1]} (positive; {model.classes[0]} is -w)"]
    return list(model.classes)
