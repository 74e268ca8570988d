"""The model file: one .npz of plain arrays, written atomically, read without pickle.

Arrays (c = 1 for a binary model, c = k classes otherwise; n = H * W * 3):
    format_version  int64 scalar
    weights         n x c float32
    bias            c float32
    classes         k unicode strings, in class-index order
    size            int64 [H, W], the image size the model was trained at
    feature_mean    n float32, or empty when pixels are scaled by /255
    feature_scale   n float32, or empty when pixels are scaled by /255
    metadata        unicode scalar holding a JSON object (options, data summary, history)
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import core
from .atomic import write_atomically
from .errors import ModelFileError
from .npzfile import read_arrays

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "weights", "bias", "classes", "size", "feature_mean",
                 "feature_scale", "metadata")
PREDICT_BLOCK_ROWS = 2048
MAX_CODE_POINT = 0x10FFFF
HISTORY_NUMBER_LISTS = ("epoch", "lr", "cost", "val_cost", "val_accuracy")


@dataclass
class Model:
    """A trained classifier. size is (width, height), as Pillow counts it."""

    weights: np.ndarray
    bias: np.ndarray
    classes: list
    size: tuple
    feature_mean: np.ndarray | None = None
    feature_scale: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def n_features(self):
        return self.weights.shape[0]

    @property
    def scaling(self):
        return "unit" if self.feature_mean is None else "standardize"

    def features(self, X_uint8):
        """uint8 pixel rows (m x n) -> the float32 features this model was trained on."""
        return core.scale_pixels(X_uint8, self.feature_mean, self.feature_scale)

    def predict_proba(self, X_uint8):
        """m x k class probabilities of uint8 pixel rows (core.probabilities of scores)."""
        return core.probabilities(self.scores(X_uint8))

    def scores(self, X_uint8):
        """m x c float64 scores X W + b of uint8 pixel rows, scaled in blocks to bound memory."""
        check_features(self, X_uint8.shape[1])
        blocks = [
            core.scores(self.features(X_uint8[start : start + PREDICT_BLOCK_ROWS]),
                        self.weights, self.bias)
            for start in range(0, X_uint8.shape[0], PREDICT_BLOCK_ROWS)
        ]
        return np.concatenate(blocks) if blocks else np.zeros((0, self.weights.shape[1]))


def size_text(size):
    """(width, height) -> '64x64', the form --size takes."""
    return f"{size[0]}x{size[1]}"


def check_features(model, n_features, source=None):
    """Raise unless rows of n_features fit the model; source names the data in the message."""
    if n_features != model.n_features:
        what = "the data has" if source is None else f"{source}: has"
        raise ModelFileError(
            f"{what} {n_features} features but the model expects {model.n_features} "
            f"(trained at --size {size_text(model.size)})"
        )


def save_model(model, path):
    """Write model to path atomically (temporary file, fsync, rename)."""
    width, height = model.size
    empty = np.zeros(0, dtype=np.float32)
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "weights": np.ascontiguousarray(model.weights, dtype=np.float32),
        "bias": np.asarray(model.bias, dtype=np.float32),
        "classes": np.array([str(c) for c in model.classes], dtype=str),
        "size": np.array([height, width], dtype=np.int64),
        "feature_mean": empty if model.feature_mean is None else model.feature_mean.astype(np.float32),
        "feature_scale": empty if model.feature_scale is None else model.feature_scale.astype(np.float32),
        "metadata": np.array(json.dumps(model.metadata)),
    }
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load_model(path):
    """Read and validate a model file; raise ModelFileError naming path and the problem."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file (train one with: logreg train DATA -m {path})")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file")
    try:
        arrays, names = read_arrays(path, REQUIRED_KEYS)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable model file ({error})") from None
    try:
        return _model_from_arrays(arrays, names)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None


def _model_from_arrays(arrays, names=()):
    if "X" in names and "weights" not in names:
        raise ModelFileError("is a feature file (from logreg flatten), not a model")
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ModelFileError(f"not a logreg model (missing {', '.join(missing)})")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise ModelFileError("format_version is not an integer")
    if int(version) != FORMAT_VERSION:
        raise ModelFileError(
            f"model format version {int(version)}, this logreg reads version {FORMAT_VERSION}"
        )
    classes = _text_array(_expect(arrays, "classes", kinds="U", ndim=1), "classes")
    k = len(classes)
    if k < 2 or len(set(classes.tolist())) != k:
        raise ModelFileError(f"classes must be at least two distinct names, got {classes.tolist()}")
    size = _expect(arrays, "size", kinds="iu", ndim=1)
    if size.shape != (2,) or (size < 1).any():
        raise ModelFileError(f"size must be two positive integers, got {size.tolist()}")
    height, width = (int(v) for v in size)
    n, c = height * width * 3, core.n_outputs(k)
    weights = _expect(arrays, "weights", kinds="f", shape=(n, c))
    bias = _expect(arrays, "bias", kinds="f", shape=(c,))
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise ModelFileError("weights or bias hold NaN or infinity")
    mean = _expect(arrays, "feature_mean", kinds="f", ndim=1)
    scale = _expect(arrays, "feature_scale", kinds="f", ndim=1)
    if mean.size or scale.size:
        if mean.shape != (n,) or scale.shape != (n,):
            raise ModelFileError(f"feature_mean and feature_scale must have {n} values")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ModelFileError("feature_mean or feature_scale hold invalid values")
    core.check_model_scores(weights, bias, mean, scale)
    return Model(
        weights=weights.astype(np.float32),
        bias=bias.astype(np.float32),
        classes=classes.tolist(),
        size=(width, height),
        feature_mean=mean.astype(np.float32) if mean.size else None,
        feature_scale=scale.astype(np.float32) if scale.size else None,
        metadata=_metadata(arrays["metadata"]),
    )


def _expect(arrays, key, kinds, ndim=None, shape=None):
    value = arrays[key]
    if value.dtype.kind not in kinds:
        raise ModelFileError(f"{key} has dtype {value.dtype}, expected {kinds!r} kind")
    if shape is not None and value.shape != shape:
        raise ModelFileError(f"{key} has shape {value.shape}, expected {shape}")
    if ndim is not None and value.ndim != ndim:
        raise ModelFileError(f"{key} has {value.ndim} dimensions, expected {ndim}")
    return value


def _text_array(value, key):
    """A unicode array whose every character is a real code point (numpy stores UTF-32 and
    does not check; Python refuses more than U+10FFFF with a SystemError)."""
    if value.dtype.itemsize:
        codes = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")).reshape(-1)
        if (codes.view(np.uint32) > MAX_CODE_POINT).any():
            raise ModelFileError(f"{key} holds characters that are not Unicode")
    return value


def _metadata(value):
    if value.shape != () or value.dtype.kind != "U":
        raise ModelFileError("metadata is not a JSON string")
    _text_array(value, "metadata")
    try:
        metadata = json.loads(str(value))
    except (ValueError, RecursionError):
        raise ModelFileError("metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise ModelFileError("metadata is not a JSON object")
    _check_metadata(metadata)
    return metadata


def _check_metadata(metadata):
    """The parts of the metadata that inspect reads must have the types train writes."""
    for key in ("options", "data"):
        if not isinstance(metadata.get(key, {}), dict):
            raise ModelFileError(f"metadata {key!r} is not a JSON object")
    history = metadata.get("history", {})
    if not isinstance(history, dict):
        raise ModelFileError("metadata 'history' is not a JSON object")
    for key in HISTORY_NUMBER_LISTS:
        values = history.get(key, [])
        if not (isinstance(values, list) and all(_is_number_or_null(v) for v in values)):
            raise ModelFileError(f"metadata history {key!r} is not a list of numbers")


def _is_number_or_null(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
