"""The public Python API: every `logreg` command is one call of these, plus printing.

    import logreg_cli
    model = logreg_cli.train("images/", epochs=500, lr=0.01)   # -> logreg_cli.Model
    model.save("cats.npz")
    model.predict(["a.jpg", "b.png"])                           # -> ["cat", "non-cat"]
    logreg_cli.evaluate(model, "images/test")["accuracy"]

Nothing here prints, exits, or imports click or tqdm; errors are LogregError subclasses.
Options are those of options.py (the same names, defaults and ranges as the command line),
checked once, here.
"""

from pathlib import Path

from . import __version__
from .errors import DataError, ImageError, OptionError
from .options import DESCENT_OPTIONS, OPTIONS, TRAIN_OPTIONS, check, parse_size

EVALUATE_EMPTY = "holds 0 images, nothing to evaluate"


# ---------------------------------------------------------------- options


def train_settings(options):
    """Keyword options of train -> {name: checked value} for every option of TRAIN_OPTIONS,
    defaults filled in from options.py. Raises OptionError for an unknown name or a value
    out of its declared range, and for combinations that cannot go together."""
    unknown = sorted(set(options) - set(TRAIN_OPTIONS))
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}; train takes "
                          f"{', '.join(TRAIN_OPTIONS)}")
    settings = {name: check(name, options.get(name, OPTIONS[name].default))
                for name in TRAIN_OPTIONS}
    if settings["val_split"] is not None and settings["val"] is not None:
        raise OptionError("--val-split and --val cannot be used together; choose one")
    if settings["early_stop"] is not None and settings["val_split"] is None \
            and settings["val"] is None:
        raise OptionError("--early-stop needs validation data: add --val-split F or --val DATA")
    if settings["optimizer"] == "lbfgs":
        if settings["batch_size"] is not None:
            raise OptionError("--optimizer lbfgs is full batch: it takes no --batch-size")
        if settings["decay"] != "none":
            raise OptionError("--optimizer lbfgs has no learning rate: it takes no --decay")
    return settings


def descent_config(settings):
    """The core.TrainConfig of checked settings (see train_settings)."""
    from .core import TrainConfig

    return TrainConfig(**{name: settings[name] for name in DESCENT_OPTIONS})


# ---------------------------------------------------------------- train


def train(data, *, on_epoch=None, on_warning=None, jobs=None, strict=False, scheduler=None,
          scheduler_file=None, **options):
    """Train a model, as `logreg train DATA` does, and return it (unsaved).

    Parameters
    ----------
    data : str or path-like, or tuple (X, y, classes)
        A folder with one subfolder of images per class, a labels file (CSV/TSV
        ``path,label``), a feature file from `flatten`; or arrays: X (m x n) uint8 pixels
        (rows of H x W x 3 images unrolled row-major, n = H * W * 3 for ``size``) or float
        features already scaled as pixel / 255; y (m ints indexing classes); classes (k
        names).
    **options
        The options of `logreg train`, by their long names with ``_`` for ``-``: size
        ("64x64" or (width, height)), lr (0.005), epochs (2000), decay ("none"), decay_rate,
        decay_steps (1), batch_size, l2 (0.0), seed (0), val_split, val, early_stop,
        class_weight, positive, standardize (False), init, stream. Same defaults and ranges.
    on_epoch : callable, optional
        Called with a core.EpochStats (epoch, lr, cost, val_cost, val_accuracy) after each
        epoch; returning True stops training there (the model records the interruption).
    on_warning : callable, optional
        Called with each skipped file's ImageError (unreadable image, stray file, class left
        out); by default they are skipped silently.
    jobs : int, optional
        Images decoded in parallel, and the most threads training uses (default: all
        cores; small problems train on one thread whatever jobs says).
    strict : bool
        Raise the first skipped file's ImageError instead of skipping it.
    scheduler, scheduler_file : str, optional
        Train on a Dask cluster, as `--scheduler` / `--scheduler-file` do: "local", or
        "tcp://host:8786", or the scheduler's JSON file; data must then be a feature file
        or Zarr store (README, Beyond one machine). Needs the dask extra.

    Returns
    -------
    Model
        weights n x c float32, bias c float32 (c = 1 for two classes), classes, size,
        scaling, and metadata (options, data summary, history) as `logreg train` saves it.

    Raises
    ------
    OptionError
        An option out of range or an unknown one.
    DataError, ImageError, ModelFileError
        Data that cannot be used (missing, one class, a bad file, --init mismatch).
    TrainingDiverged
        The cost or weights stopped being finite (usually: lr too large).

    References
    ----------
    The binary case is the "logistic regression as a neural network" exercise of
    deeplearning.ai's Neural Networks and Deep Learning course (Ng, 2017): z = Xw + b,
    a = sigmoid(z), J = mean cross-entropy, dw = X^T (a - y) / m; its published cost trace
    is reproduced by tests/test_exercise.py. The cost is computed from z with logaddexp
    (as scikit-learn's linear models do), never as the log of a probability.
    """
    settings = train_settings(options)
    if jobs is not None:
        check("jobs", jobs)
    from .distributed import cluster_or_none, place

    with cluster_or_none(scheduler, scheduler_file, jobs, data) as client:
        prepared = prepare(data, settings, folder_loader(jobs, strict, on_warning),
                           on_left_out=skipper(strict, on_warning),
                           keep_on_disk=client is not None)
        prepared.jobs = jobs
        if client is not None:
            place(client, prepared, settings)
        return fit(prepared, settings, on_epoch)


def prepare(data, settings, load_folder, on_left_out=None, keep_on_disk=False):
    """DATA -> training.TrainingData (loaded, split, scaled), for checked settings;
    keep_on_disk leaves a feature file's X unread (for the workers of --scheduler)."""
    from . import training

    return training.prepare(data, settings, load_folder, on_left_out, keep_on_disk)


def fit(prepared, settings, on_epoch=None, interrupted=None):
    """Run gradient descent on prepared data -> Model (with the run's metadata).

    interrupted() -> None or a reason (e.g. "SIGINT") is checked after every epoch: a
    reason stops training and is recorded in the model; on_epoch returning True stops it
    too ("on_epoch" is recorded).
    """
    from . import training

    config = descent_config(settings)
    stopped = {"by": None}

    def each_epoch(stats):
        if on_epoch is not None and on_epoch(stats) and stopped["by"] is None:
            stopped["by"] = "on_epoch"
        reason = interrupted() if interrupted is not None else None
        if reason and stopped["by"] is None:
            stopped["by"] = reason
        return stopped["by"] is not None

    run, seconds = training.run(prepared, config, each_epoch)
    if stopped["by"] is None and interrupted is not None:
        stopped["by"] = interrupted()  # a signal after the last epoch is still recorded
    outcome = training.evaluate_fit(prepared, run, seconds, stopped["by"])
    return training.build_model(prepared, outcome, settings, __version__)


def folder_loader(jobs=None, strict=False, on_warning=None, on_image=None, on_total=None):
    """load(path, size, classes) -> dataset.Dataset of a class folder or labels file, with
    skipped files reported as skipper(strict, on_warning) says."""
    from .dataset import load_data

    def load(path, size, classes=None):
        return load_data(path, size, classes=classes, jobs=jobs,
                         on_error=skipper(strict, on_warning), on_image=on_image,
                         on_total=on_total)

    return load


def skipper(strict, on_warning):
    """on_error(ImageError) for the loaders: raise it when strict, else hand it on."""
    def skip(error):
        if strict:
            raise error.strict() if isinstance(error, ImageError) else error
        if on_warning is not None:
            on_warning(error)

    return skip


# ---------------------------------------------------------------- models


def load_model(path):
    """Read and check a model file, as every command that takes -m does.

    Parameters
    ----------
    path : str or path-like
        A model file written by `logreg train` or Model.save (read without pickle).

    Returns
    -------
    Model
        With its per-epoch history (Model.history).

    Raises
    ------
    ModelFileError
        Naming path and the problem: missing, not a model, another format version,
        inconsistent shapes, weights too large for float32 scores.
    """
    from .model import load_model as read

    return read(path, history=True)


def _model(model):
    return model if not isinstance(model, (str, Path)) else load_model(model)


# ---------------------------------------------------------------- evaluate


def evaluate(model, data, *, misclassified=0, jobs=None, strict=False, on_warning=None):
    """Score a model on labelled data, as `logreg evaluate DATA --format json` does.

    Parameters
    ----------
    model : Model or path
    data : path or tuple (X, y, classes)
        A class folder, labels file or feature file; or X (m x n uint8 pixel rows at the
        model's size), y (m ints indexing classes) and classes (names, each one of the
        model's).
    misclassified : int
        List this many most confidently wrong images (needs paths for names).

    Returns
    -------
    dict
        Exactly the keys of `evaluate --format json`: accuracy, correct, images, log_loss,
        classes, confusion_matrix, per_class (precision, recall, f1, support); binary models
        add positive_class, roc_auc, best_threshold; misclassified when asked.

    Raises
    ------
    DataError, ImageError, ModelFileError
        No images, a class the model does not know, features of another size.

    References
    ----------
    roc_auc is the Mann-Whitney U statistic over the scores z, ties counting one half
    (Hanley and McNeil, Radiology 143, 1982); log_loss is the training cost's formula.
    """
    from .dataset import arrays_dataset

    model = _model(model)
    if isinstance(data, tuple):
        dataset = arrays_dataset(data, model.size, model.classes)
    else:
        dataset = folder_loader(jobs, strict, on_warning)(data, model.size, model.classes)
    return evaluation(model, dataset, data if not isinstance(data, tuple) else "the arrays",
                      misclassified)


def evaluation(model, dataset, source, misclassified=0, scores=None):
    """The evaluate report (dict) of model on a loaded dataset.Dataset from source; scores:
    model.scores(dataset.X) when the caller has them already."""
    from .metrics import report
    from .model import check_features
    from .names import shown

    if not len(dataset.y):
        raise DataError(f"{source}: {EVALUATE_EMPTY}")
    check_features(model, dataset.X.shape[1], source=source)
    if scores is None:
        scores = model.scores(dataset.X)
    return report(dataset.y, scores, model.classes,
                  paths=[shown(path) for path in dataset.paths], misclassified=misclassified)


# ---------------------------------------------------------------- images and features


def load_images(paths, size="64x64", *, jobs=None):
    """Decode image files into uint8 rows, as train and predict do.

    Parameters
    ----------
    paths : iterable of str or path-like
    size : "WIDTHxHEIGHT" or (width, height)

    Returns
    -------
    (X, failures)
        X: m x n uint8 (n = H * W * 3, row i = the i-th readable image unrolled row-major
        H x W x 3); failures: the ImageError of each unreadable file, in path order.

    Raises
    ------
    OptionError
        A malformed or too large size, or jobs below 1.
    """
    from .images import load_images as decode

    failures = []
    X, _ = decode(list(paths), parse_size(size), jobs=check("jobs", jobs),
                  on_error=failures.append)
    return X, failures


def flatten(data, path, *, size="64x64", jobs=None, strict=False, on_warning=None,
            on_image=None, on_total=None, client=None):
    """Load the images of data once and write them as a feature file, as
    `logreg flatten DATA -o PATH` does.

    Parameters
    ----------
    data : str or path-like
        A class folder or a labels file; or a feature file or Zarr store to convert.
    path : str or path-like
        The feature file to write: an uncompressed .npz (written atomically), or a Zarr
        store when it ends in .zarr or is a URL (see zarrstore: X is decoded and written a
        chunk of rows at a time, never all in memory; an existing store is replaced only
        by a complete one).
    size : "WIDTHxHEIGHT" or (width, height)
    jobs, strict, on_warning
        As for train. on_image() after each file, on_total(count) once they are listed.
    client : distributed.Client, optional
        Decode on its workers (a store only): one task per chunk of rows, each writing its
        chunk; warnings still come in path order (cluster.connect gives one).

    Returns
    -------
    dataset.Dataset (an .npz) or zarrstore.Flattened (a store)
        What was written: images, n features, skipped files, classes.

    Raises
    ------
    DataError, ImageError
        Unusable data (missing, no images; with strict, the first unreadable file).
    LogregError
        path cannot be written; zarr is not installed for a store.
    """
    from .zarrstore import is_store_name

    if is_store_name(path):
        return flatten_to_store(data, path, parse_size(size), check("jobs", jobs),
                                skipper(strict, on_warning), on_image, on_total, client)
    if client is not None:
        raise OptionError(f"--scheduler: {path}: decoding on a cluster writes a Zarr store; "
                          "name one with -o NAME.zarr")
    dataset = folder_loader(jobs, strict, on_warning, on_image, on_total)(data,
                                                                          parse_size(size))
    write_features(dataset, path, data)
    return dataset


def flatten_to_store(data, location, size, jobs, on_error, on_image=None, on_total=None,
                     client=None):
    """flatten into the Zarr store at location: images decoded a chunk at a time (on the
    client's workers when given), or a feature file (or store) converted ->
    zarrstore.Flattened."""
    from .dataset import is_feature_file
    from .zarrstore import check_store_output, convert_features, flatten_images, open_zarr

    open_zarr(location)  # a missing extra is said before any work
    check_store_output(location, data)
    if is_feature_file(data):
        if client is not None:
            raise OptionError(f"--scheduler: {data} is a feature file: converting it decodes "
                              "nothing, so it runs here; drop --scheduler")
        return convert_features(data, location, flatten_metadata(data))
    return flatten_images(data, location, size, flatten_metadata(data), jobs, on_error,
                          on_image, on_total, client)


def flatten_metadata(source, skipped=()):
    """The metadata flatten writes into a feature file besides its arrays' summary."""
    import time

    return {
        "logreg_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(source),
        "skipped": [str(error) for error in skipped],
    }


def write_features(dataset, path, source):
    """Write a loaded dataset as a feature file with flatten's metadata; one read from a
    feature file or store (a conversion) keeps that one's metadata, its source above all."""
    from .dataset import COUNTED_METADATA, converted_metadata, is_feature_file, save_features

    metadata = flatten_metadata(source, dataset.skipped)
    if is_feature_file(source):
        converted = converted_metadata(dataset.metadata, source, metadata["created"])
        metadata = {**metadata, **{key: value for key, value in converted.items()
                                   if key not in COUNTED_METADATA}}
    save_features(dataset, path, metadata)


# ---------------------------------------------------------------- explain


def explain(model, image, class_name=None):
    """Each pixel's exact contribution w*x to the model's score z of one image.

    Parameters
    ----------
    model : Model or path
    image : path, binary file object, PIL image or uint8 array H x W x 3
    class_name : str, optional
        The class whose score to explain (default: the predicted one). A binary model's
        negative class has the score -z: its contributions, z and b are negated.

    Returns
    -------
    explaining.Explanation
        contributions (H x W float64, summed over R, G, B), pixels (H x W x 3 uint8), z, b
        (contributions.sum() + b == z), probability, predicted, probabilities (those of
        predict); .as_dict() is `explain --format json`.

    Raises
    ------
    LogregError
        class_name is not one of the model's classes.
    ImageError
        The image cannot be read.
    """
    from .explaining import class_index, explain as explain_row
    from .images import image_rows

    model = _model(model)
    if class_name is not None:
        class_index(model, class_name)  # an unknown class is reported before decoding
    row = image_rows(image, model.size)[0]
    name = image if isinstance(image, (str, Path)) else getattr(image, "name", "<image>")
    return explain_row(model, row, name, class_name)


__all__ = ["train", "evaluate", "load_model", "load_images", "flatten", "explain"]
