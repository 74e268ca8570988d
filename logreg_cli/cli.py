"""The `logreg` command line: thin click commands over dataset, images, model, metrics, core.

stdout carries the product (predictions, reports, JSON); progress, warnings and summaries go
to stderr. Exit codes: 0 success, 1 some inputs failed (named on stderr), 2 usage or input
error, 130 interrupted.
"""

import errno
import gc
import io
import json
import math
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import LogregError

MODEL_HELP = "Model file (default model.npz, or $LOGREG_MODEL)."
SCHEDULE_NAMES = ("none", "inverse", "exponential", "sqrt", "linear")
# Images are resized to --size; 4096x4096 is 50 million features, far past any sensible
# linear model, and it keeps a typo (--size 64000x64000) from exhausting memory.
MAX_SIZE_PIXELS = 4096 * 4096


class LogregCommand(click.Command):
    """A subcommand for which running out of memory anywhere (loading, decoding workers,
    training) is one line naming its input, exit 2: a MemoryError, or the ENOMEM of a
    fork, a memory mapping or a thread that could not start."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MemoryError:
            raise out_of_memory(ctx) from None
        except OSError as error:
            if error.errno != errno.ENOMEM:
                raise
            raise out_of_memory(ctx) from None
        except RuntimeError as error:
            if "can't start new thread" not in str(error):
                raise
            raise out_of_memory(ctx) from None
        except ImportError as error:  # numpy or Pillow imported by the command itself
            if not any(words in str(error).lower() for words in LOADER_OUT_OF_MEMORY):
                raise
            raise out_of_memory(ctx) from None


# How the dynamic loader (glibc) says that a library could not be mapped for lack of
# memory; Python raises it as an ImportError without an errno.
LOADER_OUT_OF_MEMORY = ("failed to map segment from shared object", "cannot allocate memory")


def out_of_memory(ctx):
    """The UserError for a command that ran out of memory, naming its main input."""
    subject = ctx.command_path
    for name in ("data", "inputs", "image", "model_path"):
        value = ctx.params.get(name)
        if value:
            subject = value[0] if isinstance(value, tuple) else value
            break
    return UserError(f"{subject}: not enough memory (try a smaller --size, fewer images "
                     "or --jobs 1)")


class LogregGroup(click.Group):
    """A click group whose every error is one line on stderr, never a traceback."""

    command_class = LogregCommand

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        silence_pillow()
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            sys.stdout.flush()  # a full stdout is reported here, not at the interpreter's exit
        except NO_ARGS_IS_HELP as error:  # plain `logreg`: the help, not an "Error: Usage..."
            click.echo(error.ctx.get_help(), err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            hint = ""
            if isinstance(error, click.UsageError) and error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} -h')"
            click.echo(f"Error: {error.format_message()}{hint}", err=True)
            sys.exit(error.exit_code)
        except LogregError as error:  # stdout failed while printing --help or --version
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)
        except BrokenPipeError:
            quiet_broken_pipe()
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




# click 8.2+ raises this for a bare `logreg`; click 8.1 prints the help and exits 0 itself.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def silence_pillow():
    """Keep Pillow's own warnings and log lines about damaged files off stderr.

    The loader names every file it refuses in one line of ours (bombs included: it checks
    the pixel count itself), so Pillow's extra lines would only break that contract.
    """
    import logging
    import warnings

    warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    pillow_log = logging.getLogger("PIL")
    if not pillow_log.handlers:  # once per process, however often main() runs (tests)
        pillow_log.addHandler(logging.NullHandler())
    pillow_log.propagate = False


class UserError(click.ClickException):
    exit_code = 2


# Counts and seeds end up in numpy int64 arithmetic (epoch // decay_steps, ...).
LARGEST_COUNT = 2**63 - 1


class Count(click.IntRange):
    """click.IntRange from a minimum up to LARGEST_COUNT (checked here, so that --help
    reads "x>=1" rather than a 19-digit range)."""

    def __init__(self, minimum):
        super().__init__(min=minimum)

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number > LARGEST_COUNT:
            self.fail(f"{number} is too large (at most {LARGEST_COUNT}).", param, ctx)
        return number


def count(minimum):
    """The click type of an integer option (a count or a seed) of at least minimum."""
    return Count(minimum)


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinity: NaN compares false with every
    bound, and infinity passes a bound on one side only, so FloatRange lets them in."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def positive_float():
    return FiniteFloatRange(min=0.0, min_open=True)


def model_option(func):
    return click.option("-m", "--model", "model_path", type=click.Path(dir_okay=False),
                        default="model.npz", envvar="LOGREG_MODEL", show_envvar=True,
                        help=MODEL_HELP)(func)


def jobs_option(func):
    return click.option("--jobs", "-j", type=count(1), default=None,
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
    if width * height > MAX_SIZE_PIXELS:
        raise LogregError(f"--size {text} is too large: at most {MAX_SIZE_PIXELS} pixels "
                          "(e.g. 4096x4096) per image")
    return width, height


class _NoBar:
    """Stands in for a hidden tqdm bar."""

    total = None

    def update(self, n=1):
        pass

    def refresh(self):
        pass

    def set_postfix(self, **values):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def progress_bar(quiet, **options):
    """A tqdm bar on stderr; hidden with --quiet or when stderr is not a terminal.

    This is tqdm's disable=None rule, checked before importing tqdm (about 20 ms of start-up
    that a script calling logreg in a loop should not pay).
    """
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **options)


def say(message, quiet=False):
    """A line for a person, on stderr, written above any progress bar on screen."""
    if quiet:
        return
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.write(message, file=sys.stderr)
    else:
        click.echo(message, err=True)


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


@click.group(name="logreg", cls=LogregGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    """The `logreg` program.

    When it is done, everything still alive is frozen out of the garbage collector: the
    interpreter's last collection would otherwise walk the ~25,000 objects of numpy, click
    and Pillow once more before exiting, about 15 ms of every run (files are all closed
    by then; nothing is left for a collection to finish)."""
    from .streams import guard_standard_streams

    guard_standard_streams()
    try:
        cli.main(args=args, prog_name=prog_name)
    finally:
        gc.freeze()


# ---------------------------------------------------------------- train


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@model_option
@click.option("--size", default=None,
              help="Image size WIDTHxHEIGHT every image is resized to (default 64x64, or the "
                   "--init model's).")
@click.option("--lr", "--learning-rate", "lr", type=positive_float(), default=0.005,
              show_default=True, help="Initial learning rate.")
@click.option("--epochs", type=count(0), default=2000, show_default=True,
              help="Passes of gradient descent over the training set.")
@click.option("--decay", type=click.Choice(SCHEDULE_NAMES), default="none", show_default=True,
              help="Learning-rate schedule (see README).")
@click.option("--decay-rate", type=positive_float(), default=None,
              help="r of the schedule (default 1 for inverse and sqrt, 0.95 for exponential).")
@click.option("--decay-steps", type=count(1), default=1, show_default=True,
              help="Epochs per decay step (>1 gives a staircase).")
@click.option("--batch-size", type=count(1), default=None,
              help="Mini-batch size (default: full batch).")
@click.option("--l2", type=FiniteFloatRange(min=0.0), default=0.0, show_default=True,
              help="L2 penalty l2/(2m)|w|^2 (the bias is not penalised).")
@click.option("--seed", type=count(0), default=0, show_default=True,
              help="Seed of mini-batch shuffling.")
@click.option("--val-split", type=FiniteFloatRange(0.0, 1.0, min_open=True, max_open=True),
              default=None,
              help="Hold out this fraction of each class for validation (chosen by a hash of "
                   "each file's path, so a file keeps its side when images are added).")
@click.option("--val", "val_data", type=click.Path(path_type=Path), default=None,
              help="Validation data (class folder or feature file) instead of --val-split.")
@click.option("--early-stop", type=count(1), default=None,
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
    from .atomic import check_outputs, written_together
    from .model import save_model

    rates = None if compare_lr is None else training.parse_rates(compare_lr)
    models = ([("--model", model_path)] if rates is None else
              [(f"--compare-lr {rate:g}", training.rate_model_path(model_path, rate))
               for rate in rates])
    check_outputs(  # before the data is loaded, not after training
        [*models, ("--history", history),
         ("--plot", plot if plot or rates is None else Path("compare-lr.png"))],
        [("DATA", data), ("--val", val_data), ("--init", init_path)],
        updates=[("--init", "--model")])
    config = core.TrainConfig(lr=lr, epochs=epochs, decay=decay, decay_rate=decay_rate,
                              decay_steps=decay_steps, batch_size=batch_size, l2=l2, seed=seed,
                              early_stop=early_stop)
    config.validate()
    options = training.TrainOptions(
        size=None if size is None else parse_size(size), val_split=val_split, val_data=val_data,
        class_weight=class_weight, positive=positive, standardize=standardize, init=init_path,
        stream=stream)
    options.validate()
    if early_stop is not None and val_split is None and val_data is None:
        raise LogregError("--early-stop needs validation data: add --val-split F or --val DATA")

    def load_folder(path, size, classes):
        return load_dataset(path, size, quiet, strict, jobs, classes=classes)

    prepared = training.prepare(data, options, load_folder)
    for problem in prepared.notes:  # a feature file's classes without images, left out
        if strict:
            raise problem
        warn(str(problem))
    if rates is not None:
        return compare_rates(prepared, config, options, rates, model_path, plot, quiet)

    with training.stop_on_signals() as stop:
        announce(prepared, quiet)
        outcome = train_with_bar(prepared, config, quiet, stop)
        model = training.build_model(prepared, outcome, config, options, __version__)
        with written_together() as outputs:  # a second Ctrl-C before commit: all old files
            if history is not None:
                training.write_history(history, outcome.fit.history,
                                       prepared.validation is not None)
            if plot is not None:
                draw_learning_curve(plot, outcome.fit.history, str(data))
            save_model(model, model_path)
            with training.signals_held():
                outputs.commit()
    warn_if_cost_rose(prepared, outcome, config)
    for line in training.summary(prepared, outcome, model_path):
        say(line, quiet and not outcome.interrupted)
    return training.EXIT_INTERRUPTED if outcome.interrupted or stop else 0


def warn_if_cost_rose(prepared, outcome, config):
    """A warning (shown even with --quiet) when the training cost went up: --lr or --l2."""
    from . import training

    message = training.cost_warning(prepared, outcome, config)
    if message is not None:
        warn(message)


def announce(prepared, quiet):
    """For a feature file, say whether X is streamed or held in memory, and why."""
    from .dataset import is_feature_file

    if is_feature_file(prepared.source):
        m, n = prepared.X.shape
        say(f"training on {m} images x {n} features from {prepared.source}, "
            f"{'streaming row blocks' if prepared.streamed else 'in memory'} "
            f"({prepared.memory_note})", quiet)


def train_with_bar(prepared, config, quiet, stop, desc="training"):
    """Run training under a tqdm bar showing cost, lr and validation figures."""
    from . import training

    with progress_bar(quiet, total=config.epochs, desc=desc, unit="epoch") as bar:
        def on_epoch(stats):
            if isinstance(bar, _NoBar):  # no bar on screen: skip formatting 2000 postfixes
                return bool(stop)
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
            warn_if_cost_rose(prepared, outcome, rate_config)
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
@click.option("-0", "--null", "nul_separated", is_flag=True,
              help="Paths on stdin are NUL-separated (find -print0), not one per line.")
@click.option("--format", "output_format", type=click.Choice(["tsv", "csv", "jsonl"]),
              default="tsv", show_default=True, help="Output format (one line per image).")
@click.option("--top-k", type=count(1), default=1, show_default=True,
              help="Print the K most probable classes (label, probability pairs).")
@click.option("--threshold", type=FiniteFloatRange(0, 1), default=None,
              help="Binary models: the positive (second) class when its probability >= T.")
@click.option("--min-confidence", type=FiniteFloatRange(0, 1), default=None,
              help="Print 'unknown' as the label when its probability is below P.")
@click.option("--no-path", is_flag=True, help="Leave the path out (handy for one image).")
@click.option("--all-probabilities", is_flag=True,
              help="tsv/csv: add every class's probability (columns p_<class>).")
@click.option("-v", "--verbose", is_flag=True,
              help="Note on stderr images whose size or aspect is far from the model's.")
@jobs_option
def predict(inputs, model_path, nul_separated, output_format, top_k, threshold, min_confidence,
            no_path, all_probabilities, verbose, jobs):
    """Classify images: files, folders (walked), feature files, or - for stdin.

    On stdin, - reads one image's bytes (curl ... | logreg predict -) or else paths, one
    per line (-0: NUL-separated). Prints one line per image on stdout as soon as it is
    known, in input order: path, label and the probability of that label. Unreadable
    files are named on stderr and the rest go on (exit code 1).

    \b
    Example:
        logreg predict img.png                     # img.png<TAB>cat<TAB>0.930000
        find shots -name '*.jpg' -print0 | logreg predict -0 - --format jsonl
    """
    from .images import default_jobs
    from .model import load_model
    from .predicting import (PredictionWriter, check_feature_size, check_threshold, decide,
                             decode_in_order, expand_inputs, size_note)

    model = load_model(model_path, history=False)
    check_threshold(threshold, model.classes, top_k)
    writer = PredictionWriter(output_format, model.classes, top_k=top_k, with_path=not no_path,
                              all_probabilities=all_probabilities)
    stdout = sys.stdout.buffer
    items = expand_inputs(inputs, sys.stdin.buffer, nul_separated)
    failed = 0
    try:
        stdout.write(writer.start().encode())
        for decoded in decode_in_order(items, model.size, jobs or default_jobs(),
                                       on_wait=stdout.flush):
            decoded = check_feature_size(decoded, model)
            if decoded.error is not None:
                failed += 1
                stdout.flush()
                click.echo(f"Error: {decoded.error}", err=True)
                continue
            note = size_note(decoded.original_size, model.size) if verbose else None
            if note:
                click.echo(f"Note: {decoded.name}: {note}", err=True)
            proba = model.predict_proba(decoded.row[None, :])[0]
            decision = decide(proba, model.classes, threshold, min_confidence, top_k)
            stdout.write(writer.line(decoded.name, proba, decision).encode("utf-8", "surrogateescape"))
        stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    return 1 if failed else 0


def quiet_broken_pipe():
    """The reader of stdout went away (| head -1): end quietly, as the Python docs advise.

    stdout is pointed at /dev/null so that the flush at exit does not raise again.
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
    sys.exit(1)


# ---------------------------------------------------------------- evaluate


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@model_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format (the JSON keys are listed in the README).")
@click.option("--misclassified", type=count(0), default=0, metavar="N",
              help="List the N most confidently wrong images (path, true, predicted, probability).")
@jobs_option
@strict_option
@quiet_option
def evaluate(data, model_path, output_format, misclassified, jobs, strict, quiet):
    """Score a model on labelled DATA (class folders or a feature file).

    Reports accuracy, log-loss, per-class precision, recall, F1 and support, and the
    confusion matrix; for a binary model also ROC AUC and the threshold on the positive
    class's probability that maximises F1 on this data (use it with predict --threshold).

    \b
    Example:
        logreg evaluate images/test --format json | jq .accuracy
        logreg evaluate images/test --misclassified 5
    """
    from .metrics import report
    from .model import check_features, load_model
    from .names import shown

    model = load_model(model_path, history=False)
    dataset = load_dataset(data, model.size, quiet, strict, jobs, classes=model.classes)
    if not len(dataset.y):
        raise LogregError(f"{data}: holds 0 images, nothing to evaluate")
    check_features(model, dataset.X.shape[1], source=data)
    result = report(dataset.y, model.scores(dataset.X), model.classes,
                    paths=[shown(path) for path in dataset.paths], misclassified=misclassified)
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
    ]
    if "roc_auc" in result:
        lines += format_binary_figures(result)
    lines += ["", f"{'class':<{width}}  precision  recall     f1  support"]
    for name in classes:
        row = result["per_class"][name]
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                     f"{row['f1']:5.3f}  {row['support']:7d}")
    cell = max([len(str(v)) for r in result["confusion_matrix"] for v in r] + [len(c) for c in classes])
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * width + "  " + "  ".join(f"{name:>{cell}}" for name in classes)]
    for name, counts in zip(classes, result["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{count:>{cell}}" for count in counts))
    if "misclassified" in result:
        lines += ["", f"most confidently wrong ({len(result['misclassified'])})",
                  "path\ttrue\tpredicted\tprobability"]
        lines += [f"{m['path']}\t{m['true']}\t{m['predicted']}\t{m['probability']:.6f}"
                  for m in result["misclassified"]]
    return "\n".join(lines)


def format_binary_figures(result):
    """ROC AUC and the best-F1 threshold lines of a binary model's report."""
    auc, best = result["roc_auc"], result["best_threshold"]
    positive = result["positive_class"]
    lines = [f"ROC AUC   {'n/a (needs both classes)' if auc is None else f'{auc:.6f}'}"
             f"  (positive class: {positive})"]
    if best is not None:
        lines.append(f"best F1   {best['f1']:.6f} at threshold {best['threshold']:.6f} "
                     f"(P({positive}) >= threshold; precision {best['precision']:.3f}, "
                     f"recall {best['recall']:.3f})")
    return lines


# ---------------------------------------------------------------- inspect


@cli.command()
@click.argument("model_path", required=False, type=click.Path(dir_okay=False),
                envvar="LOGREG_MODEL", default="model.npz")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--weights-png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw each class's weights as an H x W x 3 picture in this PNG.")
def inspect(model_path, output_format, weights_png):
    """Show a model's classes, image size, scaling, training options, epochs, final and
    best costs, validation figures and file format version.

    MODEL defaults to model.npz, or $LOGREG_MODEL. --weights-png draws what the linear
    model "looks for": one tile per class (a binary model has one weight vector, that of
    its positive class; the other class's is its negative), the weights as RGB with grey
    = 0 above, and their sum over R, G, B on a red (+) / blue (-) scale below, with the
    class names under the tiles.

    \b
    Example:
        logreg inspect cats.npz --format json | jq .options
        logreg inspect cats.npz --weights-png weights.png
    """
    from .atomic import check_outputs
    from .explaining import model_summary, summary_lines, weight_captions
    from .model import load_model

    check_outputs([("--weights-png", weights_png)], [("MODEL", model_path)])
    model = load_model(model_path, history=False)
    summary = model_summary(model, model_path)
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo("\n".join(summary_lines(summary)))
    if weights_png is not None:
        from .plots import save_png, weights_picture

        picture = weights_picture(model.weights, weight_captions(model), model.size)
        width, height = save_png(picture, weights_png)
        tiles = model.weights.shape[1]
        what = ("1 tile: the positive class's weights" if tiles == 1
                else f"{tiles} tiles, one per class")
        say(f"wrote {weights_png} ({width}x{height} px, {what})")


# ---------------------------------------------------------------- explain


@cli.command()
@click.argument("image")
@model_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the heat map of contributions over the image to this PNG.")
@click.option("--class", "class_name", default=None,
              help="Class whose score to explain (multiclass; default: the predicted one).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def explain(image, model_path, output, class_name, output_format):
    """Show how each pixel of IMAGE moves the model's score z.

    For a logistic regression this explanation is exact, not an estimate: z = w.x + b,
    so each pixel's contribution is w*x summed over its R, G, B channels (x as the model
    sees it: pixel/255, or standardized), and the contributions plus b add up to z.
    Prints z, b, the sum of the contributions, the probability and the strongest pixels;
    -o draws the contributions as a heat map over the image (red raises z, blue lowers
    it). A binary model has one score, that of its positive class. IMAGE may be - for
    image bytes on stdin.

    \b
    Example:
        logreg explain photo.jpg -o heat.png
    """
    from .explaining import explain as explain_image, explanation_lines, output_column
    from .atomic import check_outputs
    from .images import load_image
    from .model import load_model

    check_outputs([("--output", output)],
                  [("--model", model_path), ("IMAGE", None if image == "-" else image)])
    model = load_model(model_path, history=False)
    if class_name is not None:
        output_column(model, class_name)  # an unknown class is reported before any decoding
    source = image
    if image == "-":
        from .predicting import chunk_reader, read_image_bytes

        source = read_image_bytes(b"", chunk_reader(sys.stdin.buffer))
    result = explain_image(model, load_image(source, model.size), image, class_name)
    if output_format == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo("\n".join(explanation_lines(result)))
    if output is not None:
        from .plots import explanation_picture, save_png

        caption = [f"{result.explained_class}: z = {result.z:.4f}, b = {result.bias:.4f}, "
                   f"P = {result.probability:.4f}"]
        width, height = save_png(explanation_picture(result.pixels, result.contributions,
                                                     caption), output)
        say(f"wrote {output} ({width}x{height} px)")


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
    from .atomic import check_outputs
    from .dataset import save_features

    check_outputs([("--output", output)], [("DATA", data)])
    dataset = load_dataset(data, parse_size(size), quiet, strict, jobs)
    save_features(dataset, output, {
        "logreg_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(data),
        "skipped": [str(error) for error in dataset.skipped],
    })
    say(f"wrote {len(dataset.y)} images x {dataset.X.shape[1]} features to {output}", quiet)


# ---------------------------------------------------------------- check


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--against", "other", type=click.Path(path_type=Path), default=None,
              help="A second data set (e.g. the test set): report images found in both.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
@click.option("--max-imbalance", type=FiniteFloatRange(min=1.0), default=3.0, show_default=True,
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
