"""The model file: one .npz of plain arrays, written atomically, read without pickle.

Arrays (c = 1 for a binary model, c = k classes otherwise; n = H * W * 3):
    format_version  int64 scalar
    weights         n x c float32
    bias            c float32
    classes         k unicode strings, in class-index order
    size            int64 [H, W], the image size the model was trained at
    feature_mean    n float32, or empty when pixels are scaled by /255
    feature_scale   n float32, or empty when pixels are scaled by /255
    metadata        unicode scalar holding a JSON object (options, data summary, and the
                    history's column names and summary)
    history         epochs x columns float64 (optional): the per-epoch history, one row per
                    epoch, columns named by metadata "history_columns" (epoch, lr, cost, and
                    val_cost, val_accuracy with validation; NaN for a missing value)

Older files of this format keep the history as lists inside the metadata JSON; they are
still read. predict, evaluate, explain and inspect never read the history member (inspect
shows metadata "history_summary"), so their cost does not grow with the epochs trained.
"""

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import core
from .features import feature_extremes, scale_pixels
from .atomic import write_atomically
from .errors import ModelFileError
from .npzfile import NpzFile

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "weights", "bias", "classes", "size", "feature_mean",
                 "feature_scale", "metadata")
PREDICT_BLOCK_ROWS = 2048
MAX_CODE_POINT = 0x10FFFF
HISTORY_NUMBER_LISTS = ("epoch", "lr", "cost", "val_cost", "val_accuracy")
HISTORY_KEY = "history"
# format_version and size are a scalar and two integers: anything larger is refused unread
SMALL_MEMBER_BYTES = 64


@dataclass
class Model:
    """A trained classifier, as `logreg train` makes it and the model file holds it.

    Attributes
    ----------
    weights : ndarray, n x c float32
        n = H * W * 3 features; c = 1 for two classes (one sigmoid: the positive class
        classes[1]), c = k softmax columns otherwise.
    bias : ndarray, c float32
    classes : list of str
        The k class names, in class-index order.
    size : (width, height)
        The size every image is resized to, as Pillow counts it.
    feature_mean, feature_scale : ndarray, n float32, or None
        --standardize's per-feature scaling; None when pixels are scaled by /255.
    metadata : dict
        Options, data summary, method, epochs run, accuracies and history, as saved.
    """

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

    @property
    def history(self):
        """The per-epoch history {"epoch", "lr", "cost"[, "val_cost", "val_accuracy"]: list}
        ({} when the model was read without it)."""
        return self.metadata.get("history") or {}

    def save(self, path):
        """Write the model file at path atomically (temporary file, fsync, rename), as
        `logreg train -m PATH` writes it.

        Raises
        ------
        LogregError
            path cannot be written (missing folder, no permission, a folder...).
        """
        save_model(self, path)

    def predict(self, images):
        """The predicted class of each image, as `logreg predict` prints it.

        Parameters
        ----------
        images
            As for predict_proba.

        Returns
        -------
        list of str
            m class names: the most probable class of each image.
        """
        proba = self.predict_proba(images)
        return [self.classes[index] for index in proba.argmax(axis=1).tolist()]

    def predict_proba(self, images):
        """Class probabilities, exactly as `logreg predict` computes them.

        Parameters
        ----------
        images
            One image or a list of them, each a path, a binary file object or a PIL image
            (decoded and resized to self.size as predict does); a uint8 array m x H x W x 3
            (or one H x W x 3); or m x n uint8 pixel rows already at self.size.

        Returns
        -------
        ndarray, m x k float64
            Row i: the probability of each class (self.classes order) for image i.

        Raises
        ------
        ImageError
            An image cannot be read.
        ModelFileError
            Rows of another length than self.n_features.
        """
        from .images import image_rows

        rows = image_rows(images, self.size)
        # one image at a time, as `logreg predict` scores them: a float32 product of many
        # rows at once may round differently in the last bits
        scores = [self.scores(rows[index : index + 1]) for index in range(len(rows))]
        Z = np.concatenate(scores) if scores else np.zeros((0, self.weights.shape[1]))
        return core.probabilities(Z)

    def features(self, X_uint8):
        """uint8 pixel rows (m x n) -> the float32 features this model was trained on."""
        return scale_pixels(X_uint8, self.feature_mean, self.feature_scale)

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
    """Write model to path atomically (temporary file, fsync, rename).

    metadata["history"] (lists per column, as training builds it) is written as the
    float64 `history` member, with its column names and summary in the JSON metadata.
    """
    width, height = model.size
    empty = np.zeros(0, dtype=np.float32)
    metadata, history = split_history(model.metadata)
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "weights": np.ascontiguousarray(model.weights, dtype=np.float32),
        "bias": np.asarray(model.bias, dtype=np.float32),
        "classes": np.array([str(c) for c in model.classes], dtype=str),
        "size": np.array([height, width], dtype=np.int64),
        "feature_mean": empty if model.feature_mean is None else model.feature_mean.astype(np.float32),
        "feature_scale": empty if model.feature_scale is None else model.feature_scale.astype(np.float32),
        "metadata": np.array(json.dumps(metadata)),
    }
    if history is not None:
        arrays[HISTORY_KEY] = history
    write_atomically(path, lambda file: np.savez(file, **arrays))


def split_history(metadata):
    """(metadata without the history lists, history as an epochs x columns float64 array or
    None). The metadata gains "history_columns" and "history_summary"."""
    history = metadata.get("history")
    if not isinstance(history, dict) or not history:
        return metadata, None
    columns = [key for key in history if isinstance(history[key], list)]
    rows = max((len(history[key]) for key in columns), default=0)
    table = np.full((rows, len(columns)), np.nan)
    for index, key in enumerate(columns):
        values = [np.nan if v is None else v for v in history[key]]
        table[: len(values), index] = values
    rest = {key: value for key, value in metadata.items() if key != "history"}
    rest["history_columns"] = columns
    rest["history_summary"] = summarize_history(history)
    return rest, table


def summarize_history(history):
    """What inspect shows of a history (lists per column): epochs, the lowest cost and its
    epoch, and with validation the final and lowest val_cost and the final val_accuracy."""
    costs = history.get("cost") or []
    epochs = history.get("epoch") or list(range(len(costs)))
    summary = {"epochs": len(costs), "best_cost": _lowest(costs, epochs)}
    val_costs = history.get("val_cost") or []
    if val_costs:
        summary["final_val_cost"] = val_costs[-1]
        summary["best_val_cost"] = _lowest(val_costs, epochs)
    val_accuracy = history.get("val_accuracy") or []
    if val_accuracy:
        summary["final_val_accuracy"] = val_accuracy[-1]
    return summary


def _lowest(values, epochs):
    """{"value", "epoch"} of the lowest finite value, or None."""
    finite = [(v, e) for v, e in zip(values, epochs) if v is not None and np.isfinite(v)]
    if not finite:
        return None
    value, epoch = min(finite, key=lambda pair: pair[0])
    return {"value": value, "epoch": epoch}


class _Refused(ModelFileError):
    """The archive reads, but is not a valid model (the message is the cause)."""


def load_model(path, history=True):
    """Read and validate a model file; raise ModelFileError naming path and the problem.

    The file is opened once. Every member's header (names, dtypes, shapes, sizes) is
    checked before any array is read, so a small hostile file is refused at once.
    history=False leaves the per-epoch history unread (predict, inspect do not need it);
    with True, metadata["history"] holds it as lists per column.
    """
    path = Path(path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file ({_missing_model_hint(path)})") from None
    except OSError as error:  # a name too long, a loop of links, a file used as a folder...
        raise ModelFileError(f"{path}: cannot read ({error.strerror})") from None
    if is_folder:
        raise ModelFileError(f"{path}: is a folder, not a model file")
    try:
        with NpzFile(path) as npz:
            arrays = _read_model_arrays(npz, history)
    except _Refused as error:
        raise ModelFileError(f"{path}: {error}") from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable model file ({error})") from None
    try:
        return _model_from_arrays(arrays)
    except ModelFileError as error:  # the arrays read: any check names its cause after path
        raise ModelFileError(f"{path}: {error}") from None


def _missing_model_hint(path):
    """What to do about a model path that names no file: the .npz of that name when there
    is one (-m pets for pets.npz), else how to train one."""
    if path.suffix != ".npz" and path.with_name(path.name + ".npz").is_file():
        return f"did you mean -m {path}.npz?"
    return f"train one with: logreg train DATA -m {path}"


def is_model_file(path):
    """True when path is an archive holding a model's weights and bias (a model given where
    images are expected); False for anything else, or what cannot be read."""
    import zipfile

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device: never opened here
            return False
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return {"weights.npy", "bias.npy"} <= names


def _read_model_arrays(npz, with_history):
    """The model's arrays, each read only after every header was checked (_check_headers)."""
    names = npz.names
    if "X" in names and "weights" not in names:
        raise _Refused("is a feature file (from logreg flatten), not a model")
    missing = [key for key in REQUIRED_KEYS if key not in names]
    if missing:
        raise _Refused(f"not a logreg model (missing {', '.join(missing)})")
    headers = {key: npz.header(key) for key in REQUIRED_KEYS}
    small = {}
    for key in ("format_version", "size"):
        if headers[key].n_bytes > SMALL_MEMBER_BYTES:
            raise _Refused(f"{key} has shape {headers[key].shape}, which no model has")
        small[key] = npz.read(key)
    _check_headers(headers, small)
    arrays = {key: small.get(key) if key in small else npz.read(key) for key in REQUIRED_KEYS}
    if with_history and HISTORY_KEY in names:
        arrays[HISTORY_KEY] = npz.read(HISTORY_KEY)
    return arrays


def _check_headers(headers, small):
    """Refuse from the headers alone any member whose dtype or shape disagrees with the
    model that format_version, size and the number of classes describe."""
    _check_version(small["format_version"])
    size = _checked_size(small["size"])
    n = int(size[0]) * int(size[1]) * 3
    k = _expect(headers, "classes", kinds="U", ndim=1).shape[0]
    c = core.n_outputs(max(k, 2))
    _expect(headers, "weights", kinds="f", shape=(n, c))
    _expect(headers, "bias", kinds="f", shape=(c,))
    for key in ("feature_mean", "feature_scale"):
        if _expect(headers, key, kinds="f", ndim=1).shape not in ((0,), (n,)):
            raise _Refused(f"feature_mean and feature_scale must have {n} values")
    if headers["metadata"].shape != () or headers["metadata"].dtype.kind != "U":
        raise _Refused("metadata is not a JSON string")


def _check_version(version):
    if version.shape != () or version.dtype.kind not in "iu":
        raise _Refused("format_version is not an integer")
    if int(version) != FORMAT_VERSION:
        raise _Refused(
            f"model format version {int(version)}, this logreg reads version {FORMAT_VERSION}"
        )


def _checked_size(size):
    _expect({"size": size}, "size", kinds="iu", ndim=1)
    if size.shape != (2,) or (size < 1).any():
        raise _Refused(f"size must be two positive integers, got {size.tolist()}")
    return size


def _model_from_arrays(arrays):
    """The Model of arrays whose names, version, dtypes and shapes _read_model_arrays has
    checked; what is left to check are the values."""
    classes = _text_array(_expect(arrays, "classes", kinds="U", ndim=1), "classes")
    check_class_names(classes.tolist())
    k = len(classes)
    if k < 2 or len(set(classes.tolist())) != k:
        raise _Refused(f"classes must be at least two distinct names, got {classes.tolist()}")
    height, width = (int(v) for v in _checked_size(arrays["size"]))
    n, c = height * width * 3, core.n_outputs(k)
    weights = _expect(arrays, "weights", kinds="f", shape=(n, c))
    bias = _expect(arrays, "bias", kinds="f", shape=(c,))
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise _Refused("weights or bias hold NaN or infinity")
    mean = _expect(arrays, "feature_mean", kinds="f", ndim=1)
    scale = _expect(arrays, "feature_scale", kinds="f", ndim=1)
    if mean.size or scale.size:
        if mean.shape != (n,) or scale.shape != (n,):
            raise _Refused(f"feature_mean and feature_scale must have {n} values")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise _Refused("feature_mean or feature_scale hold invalid values")
    core.check_model_scores(weights, bias, feature_extremes(n, mean, scale))
    metadata = _metadata(arrays["metadata"])
    if arrays.get(HISTORY_KEY) is not None:  # back to the lists training made; save redoes the rest
        metadata["history"] = _history_lists(arrays[HISTORY_KEY], metadata)
        metadata.pop("history_summary", None)
    metadata.pop("history_columns", None)
    return Model(
        weights=weights.astype(np.float32),
        bias=bias.astype(np.float32),
        classes=classes.tolist(),
        size=(width, height),
        feature_mean=mean.astype(np.float32) if mean.size else None,
        feature_scale=scale.astype(np.float32) if scale.size else None,
        metadata=metadata,
    )


def check_class_names(classes):
    """Raise ModelFileError naming the first class name that holds a lone surrogate (bytes
    that were not UTF-8): no output could print it."""
    from .names import is_text, shown

    for name in classes:
        if not is_text(name):
            raise ModelFileError(f"class name '{shown(name)}' is not text (it holds a lone "
                                 "surrogate); retrain with readable class names")


def _history_lists(table, metadata):
    """The history member (epochs x columns) -> {column: list}, NaN as None, epochs as ints."""
    columns = metadata.get("history_columns")
    if not (isinstance(columns, list) and all(isinstance(name, str) for name in columns)):
        raise _Refused("metadata 'history_columns' is not a list of names")
    if table.dtype.kind != "f" or table.ndim != 2 or table.shape[1] != len(columns):
        raise _Refused(f"history has dtype {table.dtype} and shape {table.shape}, expected "
                       f"float with {len(columns)} columns")
    if "epoch" in columns:
        epochs = table[:, columns.index("epoch")]
        if not (np.isfinite(epochs).all() and (epochs >= 0).all() and (epochs % 1 == 0).all()):
            raise _Refused("history's epoch column must hold whole numbers >= 0")
    history = {}
    for name, column in zip(columns, table.T.astype(np.float64)):
        values = [None if v != v else v for v in column.tolist()]
        history[name] = [int(v) for v in values] if name == "epoch" else values
    return history


def _expect(arrays, key, kinds, ndim=None, shape=None):
    value = arrays[key]
    if value.dtype.kind not in kinds:
        raise _Refused(f"{key} has dtype {value.dtype}, expected {kinds!r} kind")
    if shape is not None and value.shape != shape:
        raise _Refused(f"{key} has shape {value.shape}, expected {shape}")
    if ndim is not None and value.ndim != ndim:
        raise _Refused(f"{key} has {value.ndim} dimensions, expected {ndim}")
    return value


def _text_array(value, key):
    """A unicode array whose every character is a real code point (numpy stores UTF-32 and
    does not check; Python refuses more than U+10FFFF with a SystemError)."""
    if value.dtype.itemsize:
        codes = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")).reshape(-1)
        if (codes.view(np.uint32) > MAX_CODE_POINT).any():
            raise _Refused(f"{key} holds characters that are not Unicode")
    return value


def _metadata(value):
    if value.shape != () or value.dtype.kind != "U":
        raise _Refused("metadata is not a JSON string")
    _text_array(value, "metadata")
    try:
        metadata = json.loads(str(value))
    except (ValueError, RecursionError):
        raise _Refused("metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise _Refused("metadata is not a JSON object")
    _check_metadata(metadata)
    return metadata


def _check_metadata(metadata):
    """The parts of the metadata that inspect reads must have the types train writes."""
    for key in ("options", "data"):
        if not isinstance(metadata.get(key, {}), dict):
            raise _Refused(f"metadata {key!r} is not a JSON object")
    history = metadata.get("history", {})
    if not isinstance(history, dict):
        raise _Refused("metadata 'history' is not a JSON object")
    for key in HISTORY_NUMBER_LISTS:
        values = history.get(key, [])
        if not (isinstance(values, list) and all(_is_number_or_null(v) for v in values)):
            raise _Refused(f"metadata history {key!r} is not a list of numbers")
    _check_history_summary(metadata)


def _check_history_summary(metadata):
    """metadata "history_summary", shown by inspect: numbers, or {"value", "epoch"} pairs."""
    summary = metadata.get("history_summary", {})
    if not isinstance(summary, dict):
        raise _Refused("metadata 'history_summary' is not a JSON object")
    for key, value in summary.items():
        pair = isinstance(value, dict) and set(value) == {"value", "epoch"}
        if not (_is_number_or_null(value) or (pair and all(map(_is_number_or_null,
                                                               value.values())))):
            raise _Refused(f"metadata history_summary {key!r} is not a number")


def _is_number_or_null(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
