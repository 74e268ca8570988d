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
    """Load DATA (class folder, labels file or feature file) with a progress bar (images/s)
    and one warning line per unreadable file, then their count."""
    from .dataset import load_data

    def on_error(error):
        if strict:
            raise error
        warn(str(error))

    with progress_bar(quiet, desc="loading", unit="img") as bar:
        dataset = load_data(data, size, classes=classes, jobs=jobs, on_error=on_error,
                            on_image=bar.update, on_total=lambda total: set_total(bar, total))
    if dataset.skipped:
        say(f"skipped {len(dataset.skipped)} unreadable file(s) in {data}")
    return dataset


def set_total(bar, total):
    bar.total = total
    bar.refresh()


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
@click.option("--size", default="64x64", show_default=True,
              help="Image size WIDTHxHEIGHT every image is resized to.")
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
@click.option("--history", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write epoch,lr,cost per epoch to this CSV file.")
@jobs_option
@strict_option
@quiet_option
def train(data, model_path, size, lr, epochs, decay, decay_rate, decay_steps, batch_size, l2,
          seed, history, jobs, strict, quiet):
    """Train a model on DATA: a folder with one subfolder of images per class, or a
    feature file from `logreg flatten`.

    The cost printed and recorded for an epoch is over the training set before that
    epoch's update, as in the classic exercise.

    \b
    Example:
        logreg train images/ --lr 0.005 --epochs 2000 --history h.csv -m cats.npz
    """
    from . import core
    from .dataset import require_classes
    from .model import Model, save_model

    size = parse_size(size)
    config = core.TrainConfig(lr=lr, epochs=epochs, decay=decay, decay_rate=decay_rate,
                              decay_steps=decay_steps, batch_size=batch_size, l2=l2, seed=seed)
    config.validate()
    dataset = load_dataset(data, size, quiet, strict, jobs)
    require_classes(dataset, data)
    size = dataset.size
    X = core.scale_pixels(dataset.X)

    started = time.perf_counter()
    with progress_bar(quiet, total=epochs, desc="training", unit="epoch") as bar:
        def on_epoch(stats):
            bar.update(1)
            bar.set_postfix(cost=f"{stats.cost:.6f}", lr=f"{stats.lr:.3g}", refresh=False)

        fit = core.train(X, dataset.y, len(dataset.classes), config, on_epoch=on_epoch)
    seconds = time.perf_counter() - started

    predicted = core.predict_proba(X, fit.weights, fit.bias).argmax(axis=1)
    correct = int((predicted == dataset.y).sum())
    model = Model(fit.weights, fit.bias, dataset.classes, size, metadata={
        "logreg_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {"size": f"{size[0]}x{size[1]}", "lr": lr, "epochs": epochs, "decay": decay,
                    "decay_rate": decay_rate, "decay_steps": decay_steps,
                    "batch_size": batch_size, "l2": l2, "seed": seed, "scaling": "unit"},
        "data": {"source": str(data), "images": len(dataset.y),
                 "class_counts": dataset.class_counts(), "skipped": len(dataset.skipped)},
        "method": fit.method,
        "epochs_run": len(fit.history),
        "final_cost": fit.final_cost,
        "train_accuracy": correct / len(dataset.y),
        "seconds": round(seconds, 3),
        "history": {"epoch": [h.epoch for h in fit.history], "lr": [h.lr for h in fit.history],
                    "cost": [h.cost for h in fit.history]},
    })
    if history is not None:
        write_history(history, fit.history)
    save_model(model, model_path)
    if not quiet:
        cost = "n/a" if fit.final_cost is None else f"{fit.final_cost:.6f}"
        say(f"trained {len(fit.history)} epochs in {seconds:.2f} s ({fit.method}); "
            f"final cost {cost}; train accuracy {100 * correct / len(dataset.y):.2f} % "
            f"({correct}/{len(dataset.y)}); model written to {model_path}")


def write_history(path, history):
    from .atomic import write_atomically

    text = io.StringIO()
    text.write("epoch,lr,cost\n")
    for stats in history:
        text.write(f"{stats.epoch},{stats.lr!r},{stats.cost!r}\n")
    write_atomically(path, lambda file: file.write(text.getvalue().encode()))


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
    """Load the images of DATA (a folder of class subfolders or a labels file) once and
    write them as a feature file.

    The .npz holds X (uint8, m x n, row i = image i unrolled row-major H x W x 3),
    y (int64), classes, paths, size (H, W) and a JSON metadata string; plain numpy
    loads it with allow_pickle=False, and train/evaluate accept it as DATA. It is stored
    uncompressed, so X can be memory-mapped from it.

    \b
    Example:
        logreg flatten images/ -o features.npz --size 32x32
    """
    from .dataset import save_features

    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():  # checked before the images are decoded, not after
        raise LogregError(f"{output}: cannot write there, folder {folder} does not exist")
    dataset = load_dataset(data, parse_size(size), quiet, strict, jobs)
    save_features(dataset, output, {
        "logreg_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(data),
        "skipped": [str(error) for error in dataset.skipped],
    })
    if not quiet:
        say(f"wrote {len(dataset.y)} images x {dataset.X.shape[1]} features to {output}")


# ---------------------------------------------------------------- check


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--against", "other", type=click.Path(path_type=Path), default=None,
              help="A second data set (e.g. the test set): report images found in both.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
@click.option("--max-imbalance", type=click.FloatRange(min=1.0), default=3.0, show_default=True,
              help="Largest/smallest class size ratio above which imbalance is a problem.")
@jobs_option
@quiet_option
def check(data, other, output_format, max_imbalance, jobs, quiet):
    """Audit DATA before training: images per class, sizes and modes, unreadable files,
    identical images (same decoded pixels) within DATA and shared with --against OTHER
    (a train/test leak), and class imbalance.

    Exit code 0 when no problem was found, 1 when one was (each listed in the report).

    \b
    Example:
        logreg check images/train --against images/test
        logreg check images/train --format json | jq .problems
    """
    from .check import audit, format_text, scan

    def scanned(source):
        with progress_bar(quiet, desc=f"checking {source}", unit="img") as bar:
            return scan(source, jobs=jobs, on_total=lambda total: set_total(bar, total),
                        on_image=bar.update)

    report = audit(scanned(data), scanned(other) if other is not None else None, max_imbalance)
    if output_format == "json":
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(format_text(report))
    return 1 if report["problems"] else 0
