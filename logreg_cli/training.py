"""What `logreg train` does between the data and the core: class order, validation split,
class weights, scaling, --init checks, in-memory or streamed features, the model record,
the history file and the summary. No click, no tqdm: the command passes callbacks in.

Shapes: X is m x n (one image per row), y holds m class indices, n = H * W * 3.
"""

import io
import os
import signal
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from . import core
from .errors import DataError, LogregError

DEFAULT_SIZE = (64, 64)
# In memory when float32 X (times this, plus the overhead below) fits in the free memory.
MEMORY_FACTOR = 1.3
MEMORY_OVERHEAD = 150 << 20
EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_NOTICE = "stopping at the end of this epoch (press Ctrl-C again to abort without saving)"


@dataclass
class TrainOptions:
    """The options of `logreg train` that are not gradient-descent settings (see TrainConfig)."""

    size: tuple | None = None  # (width, height); None: 64x64 or the --init model's size
    val_split: float | None = None
    val_data: Path | None = None
    class_weight: str | None = None  # None or "balanced"
    positive: str | None = None
    standardize: bool = False
    init: Path | None = None
    stream: bool | None = None  # None: decide from the size of X and the free memory

    def validate(self):
        if self.val_split is not None and not 0.0 < self.val_split < 1.0:
            raise LogregError(f"--val-split must be between 0 and 1, got {self.val_split:g}")
        if self.val_split is not None and self.val_data is not None:
            raise LogregError("--val-split and --val cannot be used together; choose one")
        if self.class_weight not in (None, "balanced"):
            raise LogregError(f"--class-weight must be 'balanced', got {self.class_weight!r}")


@dataclass
class TrainingData:
    """Everything the core needs, ready: X (m x n float32 or core.RowBlocks), y (m ints)."""

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
    notes: list = field(default_factory=list)

    @property
    def n_classes(self):
        return len(self.classes)


# ---------------------------------------------------------------- feature files, X left on disk


class FileRows:
    """Rows of a C-ordered m x n uint8 array stored at `offset` in a file, read on demand.

    Looks like a read-only uint8 array to core.RowBlocks: shape, dtype, len and indexing by
    a slice or by sorted row indices. Rows are read with plain file reads into a fresh
    buffer, so only the rows asked for are ever resident. (A memory map would do for
    sequential blocks, but gathering random rows through one maps far more than the rows:
    on Linux with large page-cache folios, ~0.7 MB per 12 KB row was measured.)
    """

    dtype = np.dtype(np.uint8)
    ndim = 2

    def __init__(self, path, offset, shape, file=None):
        self.path = Path(path)
        self.offset = offset
        self.shape = tuple(shape)
        self._file = open(path, "rb") if file is None else file  # file: already open on path
        weakref.finalize(self, self._file.close)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        m, n = self.shape
        if isinstance(key, slice):
            start, stop, step = key.indices(m)
            if step != 1:
                raise IndexError("FileRows reads contiguous slices only")
            return self._read_run(start, max(stop - start, 0))
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= m):
            raise IndexError(f"row index out of range 0..{m - 1}")
        out = np.empty((len(rows), n), dtype=np.uint8)
        # one read per run of consecutive rows (this loops over reads, not over pixels)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            out[first:last] = self._read_run(int(rows[first]), int(last - first))
        return out

    def _read_run(self, start, count):
        n = self.shape[1]
        out = np.empty((count, n), dtype=np.uint8)
        if not out.size:
            return out
        self._file.seek(self.offset + start * n)
        if self._file.readinto(memoryview(out).cast("B")) != count * n:
            raise DataError(f"{self.path}: the feature file is truncated")
        return out

    def close(self):
        self._file.close()


@dataclass
class FeatureFile:
    """A feature file from `logreg flatten` whose X (m x n uint8) stays on disk as FileRows."""

    path: Path
    X: FileRows
    y: np.ndarray
    classes: list
    paths: list
    size: tuple  # (width, height)
    metadata: dict


def open_feature_file(path):
    """Open a feature file: labels, classes, paths and size are read and checked (by
    dataset.load_features), X is left on disk and read through FileRows."""
    from .dataset import feature_matrix_offset, load_features

    def open_rows(npz):  # on the file load_features opened: labels and rows stay together
        offset, shape = feature_matrix_offset(npz, npz.path)
        return FileRows(path, offset, shape, file=npz.fileno_copy())

    data = load_features(path, open_x=open_rows)
    return FeatureFile(Path(path), data.X, data.y, data.classes, data.paths, data.size,
                       data.metadata)


def available_memory():
    """Bytes of memory available to a new allocation (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose_streaming(m, n, forced=None, available=None):
    """(stream?, reason): stream when float32 X would not fit in the available memory."""
    needed = m * n * 4
    text = f"X is {_size_text(needed)} as float32"
    if forced is not None:
        return forced, f"{text}; {'--stream' if forced else '--no-stream'} given"
    available = available_memory() if available is None else available
    if available is None:
        return False, f"{text}; free memory unknown"
    fits = MEMORY_FACTOR * needed + MEMORY_OVERHEAD <= available
    relation = "fits in" if fits else "exceeds"
    return not fits, f"{text}; {relation} the {_size_text(available)} available"


def _size_text(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


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


def class_order(classes, options, init_model):
    """The class order of the model: --init's, or --positive last (binary), else sorted.

    Names are compared as names.class_name() reads them (--positive as typed, an older
    --init model's classes as stored)."""
    from .names import class_name

    positive = None if options.positive is None else class_name(options.positive)
    if init_model is not None:
        init_classes = [class_name(name) for name in init_model.classes]
        if set(init_classes) != set(classes):
            raise DataError(f"--init model has classes {', '.join(init_model.classes)} but the "
                            f"data has {', '.join(classes)}")
        if positive is not None and init_classes[-1] != positive:
            raise LogregError(f"--positive {options.positive!r} differs from the --init model's "
                              f"positive class {init_model.classes[-1]!r}")
        return init_classes
    if positive is None:
        return list(classes)
    if len(classes) != 2:
        raise LogregError(f"--positive applies to two classes; the data has {len(classes)}")
    if positive not in classes:
        raise LogregError(f"--positive {options.positive!r} is not a class; the classes are "
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


def load_init(path, size, options):
    """The --init model, checked against --size and --standardize."""
    from .model import load_model, size_text

    model = load_model(path, history=False)
    if size is not None and tuple(size) != tuple(model.size):
        raise DataError(f"--init model {path} was trained at --size {size_text(model.size)}, "
                        f"not {size_text(size)}")
    if options.standardize and model.feature_mean is None:
        raise LogregError(f"--init model {path} scales pixels by /255; drop --standardize "
                          "or train from scratch")
    return model


def prepare(data, options, load_folder):
    """DATA (class folder or feature file) -> TrainingData.

    load_folder(path, size, classes) decodes a folder of images into a dataset.Dataset
    (the command passes one with a progress bar and skip warnings).
    """
    from .dataset import is_feature_file, path_exists, require_classes, without_empty_classes

    options.validate()
    data = Path(data)
    if not path_exists(data):
        raise DataError(f"{data}: no such file or folder")
    init_model = load_init(options.init, options.size, options) if options.init else None
    size = options.size or (init_model.size if init_model else DEFAULT_SIZE)

    if is_feature_file(data):
        features = open_feature_file(data)
        X_uint8, y, classes, paths = features.X, features.y, features.classes, features.paths
        y, classes, left_out = without_empty_classes(data, y, classes)
        if options.size is not None and tuple(options.size) != tuple(features.size):
            raise DataError(f"{data} holds {features.size[0]}x{features.size[1]} images; "
                            f"--size {options.size[0]}x{options.size[1]} cannot change that")
        size = features.size
        root = features.metadata.get("source", "")
        streamed, note = choose_streaming(*X_uint8.shape, forced=options.stream)
        skipped = 0
    else:
        if options.stream:
            raise LogregError(f"--stream needs a feature file; write one with "
                              f"`logreg flatten {data} -o features.npz`")
        dataset = load_folder(data, size, None)  # a class folder or a labels file
        X_uint8, y, classes, paths = dataset.X, dataset.y, dataset.classes, dataset.paths
        left_out = []  # warned about while loading
        root = str(data.parent if data.is_file() else data)
        streamed, skipped, note = False, len(dataset.skipped), ""
    require_classes(y, classes, data)
    if init_model is not None and tuple(init_model.size) != tuple(size):
        raise DataError(f"--init model {options.init} expects {init_model.n_features} features "
                        f"but {data} has {X_uint8.shape[1]}")
    order = class_order(classes, options, init_model)
    y = remap_labels(y, classes, order)

    train_rows, val_rows = None, None
    if options.val_split is not None:
        if len(paths) != len(y):
            raise DataError(f"{data}: --val-split needs the image paths, which this file lacks")
        mask = validation_mask(paths, y, options.val_split, root)
        train_rows, val_rows = np.flatnonzero(~mask), np.flatnonzero(mask)
        if not len(train_rows):
            raise DataError(f"{data}: --val-split {options.val_split:g} leaves no training images")
        require_classes(y[train_rows], order, data)

    if init_model is not None:
        mean, scale = init_model.feature_mean, init_model.feature_scale
    elif options.standardize:
        mean, scale = core.standardizer(core.RowBlocks(X_uint8, train_rows))
    else:
        mean, scale = None, None

    result = TrainingData(
        X=_features(X_uint8, train_rows, mean, scale, streamed),
        y=y if train_rows is None else y[train_rows],
        classes=order, size=tuple(size), source=str(data), mean=mean, scale=scale,
        streamed=streamed, memory_note=note, skipped=skipped, notes=left_out,
    )
    if init_model is not None:
        result.init = (init_model.weights, init_model.bias)
    if options.class_weight == "balanced":
        result.class_weights = balanced_class_weights(result.y, len(order)).tolist()
        result.sample_weight = np.asarray(result.class_weights)[result.y]
    if val_rows is not None:
        result.validation = _validation(
            _features(X_uint8, val_rows, mean, scale, streamed), y[val_rows], result)
        result.val_source = f"{len(val_rows)} images of {data} (--val-split {options.val_split:g})"
    elif options.val_data is not None:
        result.validation = _load_validation(options.val_data, result, load_folder)
        result.val_source = str(options.val_data)
    del X_uint8
    return result


def _features(X_uint8, rows, mean, scale, streamed):
    """Selected rows of uint8 X (array or FileRows) -> RowBlocks (streamed) or an m x n
    float32 array, built one block at a time so that no second full-size copy exists."""
    blocks = core.RowBlocks(X_uint8, rows, mean, scale)
    if streamed:
        return blocks
    if rows is None and isinstance(X_uint8, np.ndarray):
        return core.scale_pixels(X_uint8, mean, scale)
    out = np.empty(blocks.shape, dtype=np.float32)
    for start, block in blocks.uint8_blocks():
        core.scale_pixels(block, mean, scale, out=out[start : start + len(block)])
    return out


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


# ---------------------------------------------------------------- running, interrupting


class StopFlag:
    """Set by the first SIGINT/SIGTERM; training checks it after every epoch."""

    def __init__(self):
        self.signal_name = None

    def __bool__(self):
        return self.signal_name is not None


@contextmanager
def stop_on_signals(notice=STOP_NOTICE):
    """While active, a first SIGINT or SIGTERM sets the yielded StopFlag (training stops at
    the end of the epoch) and writes "NAME: notice" to stderr; a second one raises
    KeyboardInterrupt at once. A signal ignored since the start stays ignored. Handlers are
    restored on exit. Outside the main thread it does nothing."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handle(number, frame):
        if flag:
            raise KeyboardInterrupt
        flag.signal_name = signal.Signals(number).name
        if notice:
            # os.write, not print: a handler may run in the middle of another write to stderr
            os.write(2, f"\n{flag.signal_name}: {notice}\n".encode())

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS
                if not _ignored(number)}
    try:
        yield flag
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _ignored(number):
    """True for a signal this process was started ignoring (nohup, `cmd &` in a script):
    by convention it keeps ignoring it."""
    return signal.getsignal(number) is signal.SIG_IGN


@contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM during the block (the renames that put a run's outputs in
    place), then deliver them to the handlers of before: a Ctrl-C there acts just after
    the block, so a run's outputs are all old or all new. Outside the main thread it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = {number: signal.signal(number, lambda number, frame: held.append(number))
                for number in STOP_SIGNALS if not _ignored(number)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in held:
            signal.raise_signal(number)


def run(data, config, on_epoch=None):
    """Train on prepared TrainingData; returns (core.Fit, seconds)."""
    started = time.perf_counter()
    extremes = core.feature_extremes(data.X.shape[1], data.mean, data.scale)
    fit = core.train(data.X, data.y, data.n_classes, config, init=data.init,
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


def build_model(data, outcome, config, options, version):
    """The Model record (weights, classes, scaling) with its JSON metadata."""
    from .dataset import class_counts
    from .model import Model, size_text

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
        "options": {
            "size": size_text(data.size), "lr": config.lr, "epochs": config.epochs,
            "decay": config.decay, "decay_rate": config.decay_rate,
            "decay_steps": config.decay_steps, "batch_size": config.batch_size,
            "l2": config.l2, "seed": config.seed,
            "scaling": "unit" if data.mean is None else "standardize",
            "val_split": options.val_split,
            "val": None if options.val_data is None else str(options.val_data),
            "early_stop": config.early_stop, "class_weight": options.class_weight,
            "positive": data.classes[-1] if data.n_classes == 2 else None,
            "init": None if options.init is None else str(options.init),
            "stream": data.streamed,
        },
        "data": {"source": data.source, "images": int(len(data.y)),
                 "class_counts": class_counts(data.y, data.classes),
                 "skipped": data.skipped, "class_weights": data.class_weights},
        "method": fit.method,
        "epochs_run": fit.epochs_run,
        "final_cost": fit.final_cost,
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


def cost_warning(data, outcome, config):
    """'DATA: the cost rose ...; --lr X is likely too large ...' when the training cost went
    up (core.cost_warning), else None."""
    message = core.cost_warning([h.cost for h in outcome.fit.history], config, len(data.y))
    return None if message is None else f"{data.source}: {message}"


def summary(data, outcome, model_path):
    """The lines printed on stderr after training."""
    fit = outcome.fit
    cost = "n/a" if fit.final_cost is None else f"{fit.final_cost:.6f}"
    lines = []
    if outcome.interrupted:
        lines.append(f"interrupted by {outcome.interrupted}: stopped after {fit.epochs_run} epochs "
                     "(the model file records the interruption)")
    elif fit.early_stopped:
        lines.append(f"early stop: no better validation cost for {fit.stopped_at - fit.best_epoch} "
                     f"epochs")
    lines.append(f"trained {fit.epochs_run} epochs in {outcome.seconds:.2f} s ({fit.method}); "
                 f"final cost {cost}")
    lines.append(f"train accuracy {_percent(outcome.train_accuracy)} ({len(data.y)} images)")
    if data.validation is not None:
        best = fit.best
        lines.append(f"validation accuracy {_percent(outcome.val_accuracy)} "
                     f"({len(data.validation.y)} images)")
        if best is not None:
            lines.append(f"kept the weights of epoch {best.epoch}, after {best.epoch} updates "
                         f"(lowest validation cost {best.val_cost:.6f})")
    lines.append(f"model written to {model_path}")
    return lines


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f} %"


def write_history(path, history, with_validation):
    """CSV: epoch, lr, cost (+ val_cost, val_accuracy), one row per epoch, written atomically."""
    from .atomic import write_atomically

    text = io.StringIO()
    text.write("epoch,lr,cost" + (",val_cost,val_accuracy" if with_validation else "") + "\n")
    for stats in history:
        row = f"{stats.epoch},{float(stats.lr)!r},{float(stats.cost)!r}"
        if with_validation:
            row += f",{float(stats.val_cost)!r},{float(stats.val_accuracy)!r}"
        text.write(row + "\n")
    write_atomically(path, lambda file: file.write(text.getvalue().encode()))


def parse_rates(text):
    """'0.01,0.001' -> [0.01, 0.001] (positive numbers), else LogregError."""
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise LogregError(f"--compare-lr must be comma-separated numbers, got {text!r}") from None
    if not rates or not all(np.isfinite(r) and r > 0 for r in rates):
        raise LogregError(f"--compare-lr needs positive learning rates, got {text!r}")
    return rates


def rate_model_path(model_path, rate):
    """model.npz and 0.001 -> model.lr0.001.npz: where --compare-lr writes each rate's model."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.lr{rate:g}{model_path.suffix or '.npz'}")
