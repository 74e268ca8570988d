"""The `logreg` command line: thin click commands over dataset, images, model, metrics, core.

stdout carries the product (predictions, reports, JSON); progress, warnings and summaries go
to stderr. Exit codes: 0 success, 1 some inputs failed (named on stderr), 2 usage or input
error, 130 interrupted.
"""

import csv
import io
import json
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import LogregError

MODEL_HELP = "Model file (default model.npz, or $LOGREG_MODEL)."
SCHEDULE_NAMES = ("none", "inverse", "exponential", "sqrt", "linear")


class LogregGroup(click.Group):
    """A click group whose every error is one line on stderr, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LogregError as error:
            raise UserError(str(error)) from None


class UserError(click.ClickException):
    exit_code = 2


def model_option(func):
    return click.option("-m", "--model", "model_path", type=click.Path(dir_okay=False),
                        default="model.npz", envvar="LOGREG_MODEL", show_envvar=True,
                        help=MODEL_HELP)(func)


def jobs_option(func):
    return click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Images decoded in parallel (default: all cores).")(func)


def quiet_option(func):
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar and no summary (errors are still shown).")(func)


def strict_option(func):
    return click.option("--strict", is_flag=True,
                        help="Stop at the first unreadable image (exit 2) instead of skipping it.")(func)


def parse_size(text):
    """'WIDTHxHEIGHT' -> (width, height) of positive ints, else LogregError."""
    parts = text.lower().split("x")
    try:
        width, height = (int(part) for part in parts)
    except ValueError:
        raise LogregError(f"--size must look like WIDTHxHEIGHT, e.g. 64x64; got {text!r}") from None
    if width < 1 or height < 1:
        raise LogregError(f"--size needs a positive width and height, got {text!r}")
    return width, height


def progress_bar(quiet, **options):
    """A tqdm bar on stderr; hidden with --quiet or when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=True if quiet else None, dynamic_ncols=True, **options)


def say(message, quiet=False):
    """A line for a person, on stderr, that does not break a progress bar."""
    if not quiet:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)


def warn(message):
    say(f"Warning: {message}")


def load_dataset(data, size, quiet, strict, jobs, classes=None):
    """Load DATA (class folder or feature file) with a progress bar and skip warnings."""
    from .dataset import load_data

    def on_error(error):
        if strict:
            raise error
        warn(str(error))

    with progress_bar(quiet, desc="loading", unit="img") as bar:
        dataset = load_data(data, size, classes=classes, jobs=jobs, on_error=on_error,
                            on_image=bar.update)
    if dataset.skipped:
        say(f"skipped {len(dataset.skipped)} unreadable file(s) in {data}")
    return dataset


# ---------------------------------------------------------------- the group


@click.group(cls=LogregGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logreg")
def cli():
    """Train a logistic-regression image classifier and use it from the shell.

    \b
    Exit codes: 0 success; 1 some inputs failed (each named on stderr);
    2 usage or input error; 130 interrupted.

    \b
    Example:
        logreg train images/            # images/cat/*.png, images/dog/*.png
        logreg predict photo.jpg        # photo.jpg<TAB>cat<TAB>0.93
    """


def main(args=None, prog_name="logreg"):
    cli.main(args=args, prog_name=prog_name)


# ---------------------------------------------------------------- train


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@model_option
@click.option("--size", default=None,
              help="Image size WIDTHxHEIGHT every image is resized to (default 64x64, or the "
                   "--init model's).")
@click.option("--lr", "--learning-rate", "lr", type=float, default=0.005, show_default=True,
              help="Initial learning rate.")
@click.option("--epochs", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Passes of gradient descent over the training set.")
@click.option("--decay", type=click.Choice(SCHEDULE_NAMES), default="none", show_default=True,
              help="Learning-rate schedule (see README).")
@click.option("--decay-rate", type=float, default=None,
              help="r of the schedule (default 1 for inverse and sqrt, 0.95 for exponential).")
@click.option("--decay-steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="Epochs per decay step (>1 gives a staircase).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Mini-batch size (default: full batch).")
@click.option("--l2", type=float, default=0.0, show_default=True,
              help="L2 penalty l2/(2m)|w|^2 (the bias is not penalised).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of mini-batch shuffling.")
@click.option("--val-split", type=float, default=None,
              help="Hold out this fraction of each class for validation (chosen by a hash of "
                   "each file's path, so a file keeps its side when images are added).")
@click.option("--val", "val_data", type=click.Path(path_type=Path), default=None,
              help="Validation data (class folder or feature file) instead of --val-split.")
@click.option("--early-stop", type=click.IntRange(min=1), default=None,
              help="Stop after N epochs without a lower validation cost (the best epoch's "
                   "weights are kept).")
@click.option("--class-weight", type=click.Choice(["balanced"]), default=None,
              help="Weigh each image by m / (classes * images of its class).")
@click.option("--positive", default=None,
              help="Positive class of a binary model (default: the second in sorted order).")
@click.option("--standardize", is_flag=True,
              help="Scale each feature by the training set's mean and std (stored in the "
                   "model) instead of /255.")
@click.option("--init", "init_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue from this model (same size and classes).")
@click.option("--stream/--no-stream", default=None,
              help="Stream row blocks from a feature file instead of holding X in memory "
                   "(default: decided from the size of X and the free memory).")
@click.option("--history", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write epoch,lr,cost (and val_cost,val_accuracy) per epoch to this CSV file.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the learning curve (cost and validation cost per epoch) to this PNG.")
@click.option("--compare-lr", default=None,
              help="Comma-separated learning rates: train one model per rate (MODEL.lrRATE.npz) "
                   "and draw their cost curves in one plot (--plot, default compare-lr.png).")
@jobs_option
@strict_option
@quiet_option
def train(data, model_path, size, lr, epochs, decay, decay_rate, decay_steps, batch_size, l2,
          seed, val_split, val_data, early_stop, class_weight, positive, standardize, init_path,
          stream, history, plot, compare_lr, jobs, strict, quiet):
    """Train a model on DATA: a folder with one subfolder of images per class, or a
    feature file from `logreg flatten`.

    The cost printed and recorded for an epoch is over the training set before that
    epoch's update, as in the classic exercise. Ctrl-C (or SIGTERM) stops at the end of
    the epoch, saves the model and exits 130; a second Ctrl-C aborts without saving.

    \b
    Example:
        logreg train images/ --lr 0.005 --epochs 2000 --history h.csv -m cats.npz
        logreg train images/ --val-split 0.2 --early-stop 50 --plot curve.png
    """
    from . import core, training
    from .model import save_model

    config = core.TrainConfig(lr=lr, epochs=epochs, decay=decay, decay_rate=decay_rate,
                              decay_steps=decay_steps, batch_size=batch_size, l2=l2, seed=seed,
                              early_stop=early_stop)
    config.validate()
    options = training.TrainOptions(
        size=None if size is None else parse_size(size), val_split=val_split, val_data=val_data,
        class_weight=class_weight, positive=positive, standardize=standardize, init=init_path,
        stream=stream)
    options.validate()
    rates = None if compare_lr is None else training.parse_rates(compare_lr)
    if early_stop is not None and val_split is None and val_data is None:
        raise LogregError("--early-stop needs validation data: add --val-split F or --val DATA")

    def load_folder(path, size, classes):
        return load_dataset(path, size, quiet, strict, jobs, classes=classes)

    prepared = training.prepare(data, options, load_folder)
    if rates is not None:
        return compare_rates(prepared, config, options, rates, model_path, plot, quiet)

    with training.stop_on_signals() as stop:
        announce(prepared, quiet)
        outcome = train_with_bar(prepared, config, quiet, stop)
        model = training.build_model(prepared, outcome, config, options, __version__)
        if history is not None:
            training.write_history(history, outcome.fit.history, prepared.validation is not None)
        if plot is not None:
            draw_learning_curve(plot, outcome.fit.history, str(data))
        save_model(model, model_path)
    for line in training.summary(prepared, outcome, model_path):
        say(line, quiet and not outcome.interrupted)
    return training.EXIT_INTERRUPTED if outcome.interrupted else 0


def announce(prepared, quiet):
    """For a feature file, say whether X is streamed or held in memory, and why."""
    if Path(prepared.source).is_file():
        m, n = prepared.X.shape
        say(f"training on {m} images x {n} features from {prepared.source}, "
            f"{'streaming row blocks' if prepared.streamed else 'in memory'} "
            f"({prepared.memory_note})", quiet)


def train_with_bar(prepared, config, quiet, stop, desc="training"):
    """Run training under a tqdm bar showing cost, lr and validation figures."""
    from . import training

    with progress_bar(quiet, total=config.epochs, desc=desc, unit="epoch") as bar:
        def on_epoch(stats):
            bar.update(1)
            postfix = {"cost": f"{stats.cost:.6f}", "lr": f"{stats.lr:.3g}"}
            if stats.val_cost is not None:
                postfix.update(val_cost=f"{stats.val_cost:.6f}",
                               val_acc=f"{100 * stats.val_accuracy:.1f}%")
            bar.set_postfix(refresh=False, **postfix)
            return bool(stop)

        fit, seconds = training.run(prepared, config, on_epoch)
    return training.evaluate_fit(prepared, fit, seconds, stop.signal_name)


def draw_learning_curve(path, history, title):
    from .plots import learning_curve_png

    series = [("cost", [h.epoch for h in history], [h.cost for h in history])]
    if history and history[0].val_cost is not None:
        series.append(("validation cost", [h.epoch for h in history],
                       [h.val_cost for h in history]))
    learning_curve_png(path, series, title=f"learning curve: {title}")


def compare_rates(prepared, config, options, rates, model_path, plot, quiet):
    """--compare-lr: one model per learning rate, all cost curves in one PNG."""
    from dataclasses import replace

    from . import training
    from .model import save_model
    from .plots import learning_curve_png

    plot = plot or Path("compare-lr.png")
    series = []
    with training.stop_on_signals() as stop:
        announce(prepared, quiet)
        for rate in rates:
            rate_config = replace(config, lr=rate)
            outcome = train_with_bar(prepared, rate_config, quiet, stop, desc=f"lr {rate:g}")
            path = training.rate_model_path(model_path, rate)
            save_model(training.build_model(prepared, outcome, rate_config, options, __version__),
                       path)
            history = outcome.fit.history
            series.append((f"lr {rate:g}", [h.epoch for h in history], [h.cost for h in history]))
            for line in training.summary(prepared, outcome, path):
                say(line, quiet and not outcome.interrupted)
            if outcome.interrupted:
                break
        learning_curve_png(plot, series, title="cost for each learning rate")
    say(f"plot written to {plot}", quiet)
    return training.EXIT_INTERRUPTED if stop else 0


# ---------------------------------------------------------------- predict


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@model_option
@click.option("--format", "output_format", type=click.Choice(["tsv", "csv", "jsonl"]),
              default="tsv", show_default=True, help="Output format (one line per image).")
@jobs_option
def predict(inputs, model_path, output_format, jobs):
    """Classify images: files, folders (walked), or - to read paths from stdin.

    Prints one line per image on stdout: path, label and the probability of that label.
    Unreadable files are named on stderr and the rest go on (exit code 1).

    \b
    Example:
        logreg predict img.png                     # img.png<TAB>cat<TAB>0.93
        find shots -name '*.jpg' | logreg predict - --format jsonl
    """
    from .images import iter_images
    from .model import load_model

    model = load_model(model_path)
    failed = 0
    writer = PredictionWriter(output_format, model.classes)
    for path, row, error in iter_images(expand_inputs(inputs), model.size, jobs):
        if error is not None:
            failed += 1
            click.echo(f"Error: {error}", err=True)
            continue
        proba = model.predict_proba(row[None, :])[0]
        click.echo(writer.line(path, proba), nl=False)
        sys.stdout.flush()
    return 1 if failed else 0


def expand_inputs(inputs):
    """Paths from arguments: files as given, folders walked, '-' = one path per stdin line."""
    from .dataset import image_files

    for item in inputs:
        if item == "-":
            for line in click.get_text_stream("stdin"):
                if line.strip():
                    yield line.rstrip("\r\n")
        elif Path(item).is_dir():
            yield from (str(path) for path in image_files(item))
        else:
            yield item


class PredictionWriter:
    """Formats one prediction per line as tsv, csv (with a header) or jsonl."""

    def __init__(self, output_format, classes):
        self.format = output_format
        self.classes = classes
        self.header_pending = output_format == "csv"

    def line(self, path, proba):
        best = int(proba.argmax())
        label, probability = self.classes[best], float(proba[best])
        if self.format == "jsonl":
            return json.dumps({"path": str(path), "label": label, "probability": probability,
                               "probabilities": dict(zip(self.classes, map(float, proba)))}) + "\n"
        if self.format == "tsv":
            return f"{path}\t{label}\t{probability:.6f}\n"
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if self.header_pending:
            writer.writerow(["path", "label", "probability"])
            self.header_pending = False
        writer.writerow([str(path), label, f"{probability:.6f}"])
        return buffer.getvalue()


# ---------------------------------------------------------------- evaluate


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@model_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
@jobs_option
@strict_option
@quiet_option
def evaluate(data, model_path, output_format, jobs, strict, quiet):
    """Score a model on labelled DATA (class folders or a feature file).

    Reports accuracy, log-loss, the confusion matrix and per-class precision, recall, F1.

    \b
    Example:
        logreg evaluate images/test --format json | jq .accuracy
    """
    from .metrics import report
    from .model import load_model

    model = load_model(model_path)
    dataset = load_dataset(data, model.size, quiet, strict, jobs, classes=model.classes)
    result = report(dataset.y, model.predict_proba(dataset.X), model.classes)
    if output_format == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_report(result))


def format_report(result):
    """The evaluate report as aligned text."""
    classes = result["classes"]
    width = max(len(name) for name in classes + ["class"])
    lines = [
        f"accuracy  {100 * result['accuracy']:.2f} % ({result['correct']}/{result['images']})",
        f"log-loss  {result['log_loss']:.6f}",
        "",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for name in classes:
        row = result["per_class"][name]
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                     f"{row['f1']:5.3f}  {row['support']:7d}")
    cell = max([len(str(v)) for r in result["confusion_matrix"] for v in r] + [len(c) for c in classes])
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * width + "  " + "  ".join(f"{name:>{cell}}" for name in classes)]
    for name, counts in zip(classes, result["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{count:>{cell}}" for count in counts))
    return "\n".join(lines)


# ---------------------------------------------------------------- inspect


@cli.command()
@click.argument("model_path", required=False, type=click.Path(dir_okay=False),
                envvar="LOGREG_MODEL", default="model.npz")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def inspect(model_path, output_format):
    """Show a model's classes, image size, training options and final cost.

    MODEL defaults to model.npz, or $LOGREG_MODEL.

    \b
    Example:
        logreg inspect cats.npz --format json | jq .options
    """
    from .model import FORMAT_VERSION, load_model, size_text

    model = load_model(model_path)
    meta = model.metadata
    summary = {
        "model": str(model_path),
        "format_version": FORMAT_VERSION,
        "classes": model.classes,
        "size": size_text(model.size),
        "features": model.n_features,
        "scaling": model.scaling,
        "options": meta.get("options", {}),
        "data": meta.get("data", {}),
        "method": meta.get("method"),
        "epochs_run": meta.get("epochs_run"),
        "final_cost": meta.get("final_cost"),
        "train_accuracy": meta.get("train_accuracy"),
    }
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    for key in ("model", "format_version", "classes", "size", "features", "scaling", "method",
                "epochs_run", "final_cost", "train_accuracy"):
        value = summary[key]
        if key == "classes":
            value = ", ".join(value)
        click.echo(f"{key:<15} {value}")
    for key, value in summary["options"].items():
        click.echo(f"{'option ' + key:<15} {value}")


# ---------------------------------------------------------------- flatten


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Feature file to write (.npz).")
@click.option("--size", default="64x64", show_default=True,
              help="Image size WIDTHxHEIGHT every image is resized to.")
@jobs_option
@strict_option
@quiet_option
def flatten(data, output, size, jobs, strict, quiet):
    """Load the images of DATA once and write them as a feature file.

    The .npz holds X (uint8, m x n, row i = image i unrolled row-major H x W x 3),
    y (int64), classes, paths, size (H, W) and a JSON metadata string; plain numpy
    loads it with allow_pickle=False, and train/evaluate accept it as DATA.

    \b
    Example:
        logreg flatten images/ -o features.npz --size 32x32
    """
    from .dataset import save_features

    dataset = load_dataset(data, parse_size(size), quiet, strict, jobs)
    save_features(dataset, output, {"logreg_version": __version__, "source": str(data),
                                    "skipped": len(dataset.skipped)})
    if not quiet:
        say(f"wrote {len(dataset.y)} images x {dataset.X.shape[1]} features to {output}")
