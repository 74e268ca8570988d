"""What training does between the data and the core: class order, validation split,
class weights, scaling, --init checks, in-memory or streamed features and the model record.
No click, no tqdm, no printing: the callers (api.py, the command) pass callbacks in.
Options come checked from api.train_settings, by their options.py names.

Shapes: X is m x n (one image per row), y holds m class indices, n = H * W * 3.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from . import core
from .errors import DataError, LogregError
from .features import RowBlocks, choose_streaming, feature_extremes, open_feature_file
from .features import standardizer
from .options import DEFAULT_SIZE



@dataclass
class TrainingData:
    """Everything the core needs, ready: X (m x n float32 or RowBlocks), y (m ints)."""

    X: object
    y: np.ndarray
    classes: list
    size: tuple
    source: str
    validation: core.Validation | None = None
    val_source: str | None = None
    sample_weight: np.ndarray | None = None
    class_weights: list | None = None
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    init: tuple | None = None  # (W, b) of --init
    streamed: bool = False
    memory_note: str = ""  # for a feature file: why it is streamed or held in memory
    skipped: int = 0
    jobs: int | None = None  # --jobs: caps the BLAS and kernel threads of training

    @property
    def n_classes(self):
        return len(self.classes)


# ---------------------------------------------------------------- validation split


def split_fraction(name):
    """A file name -> a number in [0, 1) fixed by the name alone (sha256 of its UTF-8)."""
    import hashlib  # here: only --val-split needs it

    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def relative_name(path, root):
    """path relative to root, '/'-separated (the path itself when it is not below root)."""
    try:
        return PurePath(path).relative_to(root).as_posix()
    except ValueError:
        return PurePath(path).as_posix()


def validation_mask(paths, y, fraction, root):
    """Bool mask of the m images that go to validation.

    A file goes there when split_fraction(its path relative to root) < fraction, so a file
    stays on its side when images are added or removed, and each class is split in about
    the same proportion. One exception keeps every class with at least two images on both
    sides: if the hash puts none (or all) of a class's images in validation, the image with
    the smallest (largest) fraction is moved across.
    """
    fractions = np.array([split_fraction(relative_name(p, root)) for p in paths])
    mask = fractions < fraction
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < 2:
            continue
        if not mask[members].any():
            mask[members[np.argmin(fractions[members])]] = True
        elif mask[members].all():
            mask[members[np.argmax(fractions[members])]] = False
    return mask


# ---------------------------------------------------------------- preparing the data


def class_order(classes, positive, init_model):
    """The class order of the model: --init's, or --positive last (binary), or for two
    classes of which one is the rest of the other (cat, non-cat) the other last
    (names.default_positive), else sorted.

    Names are compared as names.class_name() reads them (--positive as typed, an older
    --init model's classes as stored)."""
    from .names import class_name, default_positive

    typed, positive = positive, None if positive is None else class_name(positive)
    if init_model is not None:
        init_classes = [class_name(name) for name in init_model.classes]
        if set(init_classes) != set(classes):
            raise DataError(f"--init model has classes {', '.join(init_model.classes)} but the "
                            f"data has {', '.join(classes)}")
        if positive is not None and init_classes[-1] != positive:
            raise LogregError(f"--positive {typed!r} differs from the --init model's "
                              f"positive class {init_model.classes[-1]!r}")
        return init_classes
    if positive is None:
        positive = default_positive(classes)
    if positive is None:
        return list(classes)
    if len(classes) != 2:
        raise LogregError(f"--positive applies to two classes; the data has {len(classes)}")
    if positive not in classes:
        raise LogregError(f"--positive {typed!r} is not a class; the classes are "
                          f"{', '.join(classes)}")
    return [name for name in classes if name != positive] + [positive]


def remap_labels(y, from_classes, to_classes):
    """Labels indexing from_classes -> the same names' indices in to_classes."""
    mapping = np.array([to_classes.index(name) for name in from_classes], dtype=np.int64)
    return mapping[y] if len(y) else y.astype(np.int64)


def balanced_class_weights(y, k):
    """Per-class weights m / (k_present * count), 0 for a class with no images."""
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = np.count_nonzero(counts)
    return np.divide(len(y), present * counts, out=np.zeros(k), where=counts > 0)


def load_init(path, size, standardize):
    """The --init model, checked against --size and --standardize."""
    from .model import load_model, size_text

    model = load_model(path, history=False)
    if size is not None and tuple(size) != tuple(model.size):
        raise DataError(f"--init model {path} was trained at --size {size_text(model.size)}, "
                        f"not {size_text(size)}")
    if standardize and model.feature_mean is None:
        raise LogregError(f"--init model {path} scales pixels by /255; drop --standardize "
                          "or train from scratch")
    return model


def prepare(data, settings, load_folder, on_left_out=None, keep_on_disk=False):
    """DATA -> TrainingData, for settings checked by api.train_settings.

    data: a class folder, labels file or feature file (path), or arrays (X, y, classes):
    X m x n uint8 pixels, or float features already scaled as pixel / 255.
    load_folder(path, size, classes) decodes a folder of images into a dataset.Dataset
    (the command passes one with a progress bar and skip warnings). on_left_out(error) is
    called with the ClassLeftOut of each class of a feature file that holds no images.
    keep_on_disk: leave a feature file's X (and --val's) in the file, never read here
    (--scheduler: the Dask workers read their rows themselves, distributed.place).
    """
    from .dataset import require_classes

    size_option = settings["size"]
    init_path = settings["init"]
    init_model = load_init(init_path, size_option, settings["standardize"]) if init_path else None
    size = size_option or (init_model.size if init_model else DEFAULT_SIZE)
    source = _source(data, settings, size, load_folder, keep_on_disk)
    X_uint8, y, classes, paths, size = source.X, source.y, source.classes, source.paths, source.size
    data = source.name
    require_classes(y, classes, data)
    if init_model is not None and tuple(init_model.size) != tuple(size):
        raise DataError(f"--init model {init_path} expects {init_model.n_features} features "
                        f"but {data} has {X_uint8.shape[1]}")
    order = class_order(classes, settings["positive"], init_model)
    y = remap_labels(y, classes, order)

    train_rows, val_rows = None, None
    val_split = settings["val_split"]
    if val_split is not None:
        if len(paths) != len(y):
            raise DataError(f"{data}: --val-split needs the image paths, which this file lacks")
        mask = validation_mask(paths, y, val_split, source.root)
        train_rows, val_rows = np.flatnonzero(~mask), np.flatnonzero(mask)
        if not len(train_rows):
            raise DataError(f"{data}: --val-split {val_split:g} leaves no training images")
        require_classes(y[train_rows], order, data)

    if init_model is not None:
        mean, scale = init_model.feature_mean, init_model.feature_scale
    elif settings["standardize"]:
        mean, scale = standardizer(RowBlocks(X_uint8, train_rows))
    else:
        mean, scale = None, None
    if X_uint8.dtype.kind == "f" and mean is not None:
        raise LogregError("float features are taken as pixel / 255: pass uint8 pixels to "
                          "standardize them (--standardize, or an --init model that does)")

    result = TrainingData(
        X=_features(X_uint8, train_rows, mean, scale, source.streamed),
        y=y if train_rows is None else y[train_rows],
        classes=order, size=tuple(size), source=str(data), mean=mean, scale=scale,
        streamed=source.streamed, memory_note=source.note, skipped=source.skipped,
    )
    if init_model is not None:
        result.init = (init_model.weights, init_model.bias)
    if settings["class_weight"] == "balanced":
        result.class_weights = balanced_class_weights(result.y, len(order)).tolist()
        result.sample_weight = np.asarray(result.class_weights)[result.y]
    if val_rows is not None:
        result.validation = _validation(
            _features(X_uint8, val_rows, mean, scale, source.streamed), y[val_rows], result)
        result.val_source = f"{len(val_rows)} images of {data} (--val-split {val_split:g})"
    elif settings["val"] is not None:
        result.validation = _load_validation(settings["val"], result, load_folder)
        result.val_source = str(settings["val"])
    for problem in source.left_out:  # reported once the data is known to be usable
        if on_left_out is not None:
            on_left_out(problem)
    return result


@dataclass
class _Source:
    """The training data as read: X (m x n uint8 array or FileRows, or float features),
    y indexing classes, the image paths (names for --val-split) and where they are from."""

    name: object  # the path, or "the arrays"
    X: object
    y: np.ndarray
    classes: list
    paths: list
    size: tuple
    root: str = ""  # --val-split hashes paths relative to this
    streamed: bool = False
    note: str = ""
    skipped: int = 0
    left_out: list = field(default_factory=list)  # a feature file's classes without images


def _source(data, settings, size, load_folder, keep_on_disk=False):
    """Read data (a path, or arrays) for prepare."""
    from .dataset import is_feature_file, path_exists, without_empty_classes

    if isinstance(data, tuple):
        return _arrays_source(data, settings, size)
    if not isinstance(data, (str, os.PathLike)):
        raise DataError(f"data must be a path or a tuple (X, y, classes), got "
                        f"{type(data).__name__}")
    data = Path(data)
    if not path_exists(data):
        raise DataError(f"{data}: no such file or folder")
    if is_feature_file(data):
        features = open_feature_file(data)
        y, classes, left_out = without_empty_classes(data, features.y, features.classes)
        if settings["size"] is not None and tuple(settings["size"]) != tuple(features.size):
            raise DataError(f"{data} holds {features.size[0]}x{features.size[1]} images; "
                            f"--size {settings['size'][0]}x{settings['size'][1]} cannot "
                            "change that")
        streamed, note = (True, "X is read by the workers") if keep_on_disk else \
            choose_streaming(*features.X.shape, forced=settings["stream"])
        return _Source(data, features.X, y, classes, features.paths, features.size,
                       features.metadata.get("source", ""), streamed, note, left_out=left_out)
    if settings["stream"]:
        raise LogregError(f"--stream needs a feature file; write one with "
                          f"`logreg flatten {data} -o features.npz`")
    dataset = load_folder(data, size, None)  # a class folder or a labels file
    return _Source(data, dataset.X, dataset.y, dataset.classes, dataset.paths, size,
                   str(data.parent if data.is_file() else data), skipped=len(dataset.skipped))


def _arrays_source(data, settings, size):
    """(X, y, classes) arrays -> _Source; rows are named by their index for --val-split."""
    from .dataset import arrays_dataset

    if settings["stream"]:
        raise LogregError("--stream needs a feature file, not arrays")
    dataset = arrays_dataset(data, size)
    if dataset.X.dtype != np.uint8 and dataset.X.dtype.kind != "f":
        raise DataError(f"data arrays: X must be uint8 pixels or float features, got "
                        f"{dataset.X.dtype}")
    if dataset.X.dtype.kind == "f" and not np.isfinite(dataset.X).all():
        raise DataError("data arrays: X holds NaN or infinity")
    n = size[0] * size[1] * 3
    if dataset.X.shape[1] != n:
        raise DataError(f"data arrays: X has {dataset.X.shape[1]} features but size "
                        f"{size[0]}x{size[1]} gives {n} (pass size=(width, height))")
    return _Source("the arrays", dataset.X, dataset.y, dataset.classes, dataset.paths,
                   tuple(size))


def _features(X_uint8, rows, mean, scale, streamed):
    """Selected rows of uint8 X (array or FileRows) -> a RowBlocks the core converts a few
    MB at a time: streamed from the file, or with the rows read into memory as uint8 (never
    a float32 copy of X: the fused kernel converts each block as it uses it)."""
    if X_uint8.dtype.kind == "f":  # features already scaled (arrays given to api.train)
        return np.asarray(X_uint8 if rows is None else X_uint8[rows], dtype=np.float32)
    if streamed:
        return RowBlocks(X_uint8, rows, mean, scale)
    if rows is not None or not isinstance(X_uint8, np.ndarray):
        X_uint8 = X_uint8[:] if rows is None else X_uint8[rows]  # a slice: one read
    return RowBlocks(X_uint8, None, mean, scale, in_memory=True)


def _validation(X, y, data):
    weights = None if data.class_weights is None else np.asarray(data.class_weights)[y]
    return core.Validation(X, y, weights)


def _load_validation(path, data, load_folder):
    """--val DATA: a class folder or feature file whose classes are among the model's."""
    from .dataset import is_feature_file, path_exists

    path = Path(path)
    if not path_exists(path, "--val "):
        raise DataError(f"--val {path}: no such file or folder")
    if is_feature_file(path):
        features = open_feature_file(path)
        unknown = [name for name in features.classes if name not in data.classes]
        if unknown:
            raise DataError(f"--val {path}: class {unknown[0]!r} is not one of the training "
                            f"classes ({', '.join(data.classes)})")
        if features.X.shape[1] != _n_features(data):
            raise DataError(f"--val {path} has {features.X.shape[1]} features but the training "
                            f"data has {_n_features(data)}")
        y = remap_labels(features.y, features.classes, data.classes)
        X = _features(features.X, None, data.mean, data.scale, data.streamed)
    else:
        dataset = load_folder(path, data.size, data.classes)
        y = dataset.y
        X = _features(dataset.X, None, data.mean, data.scale, False)
    if not len(y):
        raise DataError(f"--val {path}: found 0 images")
    return _validation(X, y, data)


def _n_features(data):
    return data.size[0] * data.size[1] * 3


# ---------------------------------------------------------------- running


def run(data, config, on_epoch=None):
    """Train on prepared TrainingData; returns (core.Fit, seconds). BLAS and kernel threads
    are chosen by the problem's size, at most data.jobs (threads.choose_threads)."""
    from . import threads

    started = time.perf_counter()
    extremes = feature_extremes(data.X.shape[1], data.mean, data.scale)
    fit = threads.train(data.X, data.y, data.n_classes, config, data.jobs, init=data.init,
                        sample_weight=data.sample_weight, on_epoch=on_epoch,
                        validation=data.validation, extremes=extremes)
    return fit, time.perf_counter() - started


def accuracy(X, y, weights, bias):
    """Fraction of rows of X (float32 or RowBlocks) whose predicted class is y."""
    return scores_accuracy(core.scores(X, weights, bias), y)


def scores_accuracy(Z, y):
    """Fraction of rows of scores Z (m x c) whose predicted class is y (None when m = 0)."""
    if not len(y):
        return None
    return float(np.mean(core.predicted_classes(Z) == y))


@dataclass
class Outcome:
    """What a training run produced, for the model metadata and the summary."""

    fit: core.Fit
    seconds: float
    train_accuracy: float
    val_accuracy: float | None
    interrupted: str | None  # the signal name when stopped by one


def evaluate_fit(data, fit, seconds, interrupted):
    """Accuracies of the kept weights on the training and validation sets."""
    train_accuracy = scores_accuracy(fit.train_scores, data.y)  # scored once, in core.train
    val_accuracy = None
    if data.validation is not None:
        val_accuracy = accuracy(data.validation.X, data.validation.y, fit.weights, fit.bias)
    return Outcome(fit, seconds, train_accuracy, val_accuracy, interrupted)


def build_model(data, outcome, settings, version):
    """The Model record (weights, classes, scaling) with its JSON metadata."""
    from .dataset import class_counts
    from .model import Model

    fit = outcome.fit
    history = {"epoch": [h.epoch for h in fit.history], "lr": [h.lr for h in fit.history],
               "cost": [h.cost for h in fit.history]}
    if data.validation is not None:
        history["val_cost"] = [h.val_cost for h in fit.history]
        history["val_accuracy"] = [h.val_accuracy for h in fit.history]
    best = fit.best
    metadata = {
        "logreg_version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": recorded_options(settings, data),
        "data": {"source": data.source, "images": int(len(data.y)),
                 "class_counts": class_counts(data.y, data.classes),
                 "skipped": data.skipped, "class_weights": data.class_weights},
        "method": fit.method,
        "epochs_run": fit.epochs_run,
        # the figures of the weights saved: with validation those of the kept epoch
        "saved_epoch": fit.epochs_run if fit.best_epoch is None else fit.best_epoch,
        "final_cost": saved_cost(data, fit, settings["l2"]),
        "train_accuracy": outcome.train_accuracy,
        "validation": None if data.validation is None else {
            "source": data.val_source,
            "images": int(len(data.validation.y)),
            "accuracy": outcome.val_accuracy,
            "kept_epoch": fit.best_epoch,
            "kept_val_cost": None if best is None else best.val_cost,
            "early_stopped": fit.early_stopped,
        },
        "interrupted": outcome.interrupted is not None,
        "interrupted_by": outcome.interrupted,
        "seconds": round(outcome.seconds, 3),
        "history": history,
    }
    return Model(fit.weights, fit.bias, data.classes, data.size, data.mean, data.scale, metadata)


def saved_cost(data, fit, l2):
    """The training cost (as the history records it: mean loss + L2) of the weights fit
    returns, or None after no epoch. The history holds it for a kept or a stopped epoch;
    after the last update it is computed from fit.train_scores (m x c, no pass over X)."""
    if not fit.history:
        return None
    if fit.best is not None:
        return fit.best.cost
    if fit.epochs_run < len(fit.history):  # stopped before this epoch's update
        return fit.history[fit.epochs_run].cost
    cost, _ = core.cost_and_delta(fit.train_scores.astype(np.float64), data.y,
                                  data.sample_weight)
    weights = fit.weights.astype(np.float64)
    return cost + core._l2_cost(l2, len(data.y), float(np.sum(weights * weights)))


def recorded_options(settings, data):
    """The options the model records: every option of options.TRAIN_OPTIONS, in that order,
    as it acted on this data (the size used, the scaling, the positive class...)."""
    from .model import size_text
    from .options import TRAIN_OPTIONS

    recorded = {}
    for name in TRAIN_OPTIONS:
        value = settings[name]
        if name == "size":
            value = size_text(data.size)
        elif name == "standardize":
            name, value = "scaling", "unit" if data.mean is None else "standardize"
        elif name == "positive":
            value = data.classes[-1] if data.n_classes == 2 else None
        elif name in ("val", "init"):
            value = None if value is None else str(value)
        elif name == "stream":
            value = data.streamed
        recorded[name] = value
    return recorded


def cost_warning(model, config):
    """'DATA: the cost rose ...; --lr X is likely too large ...' when the training cost of
    a just-trained model went up (core.cost_warning), else None."""
    data = model.metadata["data"]
    message = core.cost_warning(model.history.get("cost", []), config, data["images"])
    return None if message is None else f"{data['source']}: {message}"
