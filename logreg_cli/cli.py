"""The `logreg` command line: click commands over the library (api.py), each one call of it
plus parsing, progress bars, signals and the views of views.py.

stdout carries the product (predictions, reports, JSON); progress, warnings and summaries go
to stderr. Exit codes: 0 success, 1 some inputs failed (named on stderr), 2 usage or input
error, 130 interrupted.
"""

import errno
import gc
import io
import math
import sys
from pathlib import Path

import click

from . import __version__
from .errors import LogregError, OptionError
from .options import LARGEST_COUNT, OPTIONS, parse_size

MODEL_HELP = "Model file (default model.npz, or $LOGREG_MODEL)."


class LogregCommand(click.Command):
    """A subcommand for which running out of memory anywhere (loading, decoding workers,
    training) is one line naming its input, exit 2: a MemoryError, or the ENOMEM of a
    fork, a memory mapping or a thread that could not start."""

    def parse_args(self, ctx, args):
        given = list(args)  # click's parser consumes args
        try:
            return super().parse_args(ctx, args)
        except click.UsageError:
            rates = separate_rates(given)
            if len(rates) < 2:
                raise
            raise click.UsageError(f"--compare-lr takes one comma-separated list, not separate "
                                   f"values: --compare-lr {','.join(rates)}", ctx) from None

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
            sys.exit(UserError.exit_code)
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


class SizeType(click.ParamType):
    """WIDTHxHEIGHT -> (width, height), checked by options.parse_size, whose message
    (it names --size and the value) is the error line as it is."""

    name = "WIDTHxHEIGHT"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_size(value)
        except OptionError as error:
            raise UserError(str(error)) from None


class RateList(click.ParamType):
    """--compare-lr: '0.01,0.001' -> [0.01, 0.001], positive finite numbers."""

    name = "RATES"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            rates = [float(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise UserError(f"--compare-lr must be comma-separated numbers, got "
                            f"{value!r}") from None
        if not rates or not all(math.isfinite(rate) and rate > 0 for rate in rates):
            raise UserError(f"--compare-lr needs positive learning rates, got {value!r}")
        return rates


def separate_rates(args):
    """The numbers after --compare-lr, as in --compare-lr 0.01 0.001 (a usage error: the list
    is comma-separated), or [] when it is not there."""
    for index, arg in enumerate(args):
        if arg == "--compare-lr" or arg.startswith("--compare-lr="):
            values = args[index + 1:] if arg == "--compare-lr" else \
                [arg.split("=", 1)[1]] + args[index + 1:]
            rates = []
            for value in values:
                if not _is_number(value):
                    break
                rates.append(value)
            return rates
    return []


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def rate_model_path(model_path, rate, default_suffix=".npz"):
    """model.npz and 0.001 -> model.lr0.001.npz: where --compare-lr writes each rate's model
    (and, from h.csv, each rate's --history h.lr0.001.csv)."""
    model_path = Path(model_path)
    suffix = model_path.suffix or default_suffix
    return model_path.with_name(f"{model_path.stem}.lr{rate:g}{suffix}")


def click_type(option):
    """The click type that parses and range-checks an options.Option."""
    if option.kind == "count":
        return count(option.low)
    if option.kind == "float":
        return FiniteFloatRange(min=option.low, max=option.high, min_open=option.low_open,
                                max_open=option.high_open)
    if option.kind == "choice":
        return click.Choice(option.choices)
    if option.kind == "size":
        return SizeType()
    if option.kind == "path":
        return click.Path(path_type=Path)
    return None


def declared(name, **overrides):
    """A click.option built from the declaration of option name in options.py."""
    option = OPTIONS[name]
    settings = dict(default=option.default, help=option.help,
                    show_default=option.show_default and option.default is not None)
    if option.kind == "flag" and "/" not in option.flag:
        settings["is_flag"] = True
    elif option.kind != "flag":
        settings["type"] = click_type(option)
    if option.kind == "size":
        settings["metavar"] = "WIDTHxHEIGHT"
    settings.update(overrides)
    return click.option(*option.flags, name, **settings)


def model_option(func):
    return click.option("-m", "--model", "model_path", type=click.Path(dir_okay=False),
                        default="model.npz", envvar="LOGREG_MODEL", show_envvar=True,
                        help=MODEL_HELP)(func)


def jobs_option(func):
    return declared("jobs")(func)


def quiet_option(func):
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar and no summary (errors are still shown).")(func)


def strict_option(func):
    return click.option("--strict", is_flag=True,
                        help="Stop at the first unreadable image (exit 2) instead of skipping it.")(func)


class _NoBar:
    """Stands in for a hidden tqdm bar."""

    total = None

    def update(self, n=1):
        pass

    def refresh(self):
        pass

    def set_postfix(self, **values):
        pass

    def set_postfix_str(self, text, refresh=True):
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
    from .api import folder_loader

    with progress_bar(quiet, desc="loading", unit="img") as bar:
        load = folder_loader(jobs, strict, on_warning=warn_error, on_image=bar.update,
                             on_total=lambda total: set_total(bar, total))
        dataset = load(data, size, classes)
    if dataset.skipped:
        say(f"skipped {len(dataset.skipped)} unreadable file(s) in {data}")
    return dataset


def warn_error(error):
    warn(str(error))


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
@declared("size")
@declared("optimizer")
@declared("lr")
@declared("epochs")
@declared("decay")
@declared("decay_rate")
@declared("decay_steps")
@declared("batch_size")
@declared("l2")
@declared("seed")
@declared("val_split")
@declared("val")
@declared("early_stop")
@declared("class_weight")
@declared("positive")
@declared("standardize")
@declared("init", type=click.Path(dir_okay=False, path_type=Path))
@declared("stream")
@declared("tol")
@declared("scheduler")
@declared("scheduler_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--history", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write epoch,lr,cost (and val_cost,val_accuracy) per epoch to this CSV file.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the learning curve (cost and validation cost per epoch) to this PNG.")
@click.option("--compare-lr", "rates", type=RateList(), default=None,
              help="Comma-separated learning rates: train one model per rate (MODEL.lrRATE.npz) "
                   "and draw their cost curves in one plot (--plot, default compare-lr.png).")
@jobs_option
@strict_option
@quiet_option
def train(data, model_path, history, plot, rates, jobs, strict, quiet, **options):
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
    from . import api
    from .atomic import check_outputs
    from .distributed import cluster_or_none

    if rates is not None and _is_number(str(data)) and not data.exists():
        # train --compare-lr 0.01 0.001: the second rate was taken as DATA
        listed = ",".join(f"{rate:g}" for rate in rates) + f",{data}"
        raise click.UsageError(f"--compare-lr takes one comma-separated list, not separate "
                               f"values: --compare-lr {listed}")

    models = [("--model", model_path), ("--history", history)]
    if rates is not None:
        models = [(f"--compare-lr {rate:g}", rate_model_path(model_path, rate))
                  for rate in rates_with_lr(rates)]
        models += [("--history", rate_model_path(history, rate, ".csv"))
                   for rate in rates if history is not None]
    check_outputs(  # before the data is loaded, not after training
        [*models,
         ("--plot", plot if plot or rates is None else Path("compare-lr.png"))],
        [("DATA", data), ("--val", options["val"]), ("--init", options["init"])],
        updates=[("--init", "--model")])
    picture_format(plot, "--plot")
    scheduler, scheduler_file = options.pop("scheduler"), options.pop("scheduler_file")
    settings = api.train_settings(options)  # the library's one check of the options
    with cluster_or_none(scheduler, scheduler_file, jobs, data) as client:
        return train_prepared(data, settings, client, model_path, history, plot, rates, jobs,
                              strict, quiet)


def train_prepared(data, settings, client, model_path, history, plot, rates, jobs, strict,
                   quiet):
    """The rest of `logreg train`, once the options are checked: load, train (on the Dask
    client's workers when client is not None), save."""
    from . import api, interrupts
    from .atomic import written_together
    from .distributed import place

    def load_folder(path, size, classes):
        return load_dataset(path, size, quiet, strict, jobs, classes=classes)

    prepared = api.prepare(data, settings, load_folder, on_left_out=api.skipper(strict, warn_error),
                           keep_on_disk=client is not None)
    prepared.jobs = jobs
    if client is not None:
        place(client, prepared, settings)
    if rates is not None:
        return compare_rates(prepared, settings, rates, model_path, plot, quiet, history)

    with interrupts.stop_on_signals() as stop:
        announce(prepared, quiet)
        model = train_with_bar(prepared, settings, quiet, stop)
        with written_together() as outputs:  # a second Ctrl-C before commit: all old files
            if history is not None:
                write_history(history, model.history)
            if plot is not None:
                draw_learning_curve(plot, model, str(data))
            model.save(model_path)
            with interrupts.signals_held():
                outputs.commit()
    finish(model, settings, model_path, quiet)
    return interrupts.EXIT_INTERRUPTED if model.metadata["interrupted"] or stop else 0


def finish(model, settings, model_path, quiet):
    """After a model is saved: a warning (shown even with --quiet) when its training cost
    went up (--lr or --l2), then the summary lines."""
    from . import api, training
    from .views import train_summary

    message = training.cost_warning(model, api.descent_config(settings))
    if message is not None:
        warn(message)
    for line in train_summary(model.metadata, model_path):
        say(line, quiet and not model.metadata["interrupted"])


def announce(prepared, quiet):
    """For a feature file, say whether X is streamed or held in memory, and why."""
    from .dataset import is_feature_file

    if is_feature_file(prepared.source):
        m, n = prepared.X.shape
        say(f"training on {m} images x {n} features from {prepared.source}, "
            f"{'streaming row blocks' if prepared.streamed else 'in memory'} "
            f"({prepared.memory_note})", quiet)


def train_with_bar(prepared, settings, quiet, stop, desc="training"):
    """api.fit under a tqdm bar showing cost, lr and validation figures; the first Ctrl-C
    (stop) ends training at the end of the epoch and is recorded in the model."""
    from . import api
    from .views import EPOCH_BAR_FORMAT, epoch_postfix

    decaying = settings.get("decay") not in (None, "none")
    with progress_bar(quiet, total=settings["epochs"], desc=desc, unit="epoch",
                      bar_format=EPOCH_BAR_FORMAT) as bar:
        def on_epoch(stats):
            if isinstance(bar, _NoBar):  # no bar on screen: skip formatting 2000 postfixes
                return False
            bar.update(1)
            bar.set_postfix_str(epoch_postfix(stats, decaying), refresh=False)
            return False

        return api.fit(prepared, settings, on_epoch, interrupted=lambda: stop.signal_name)


def picture_format(path, option):
    """The Pillow format a picture option writes, from its file name's extension: curve.jpg
    is a JPEG; a name whose extension is no picture format's (none, .out, a FIFO's .fifo) a
    PNG. Raises UserError naming the option for a format Pillow reads but cannot write
    (.psd): never PNG bytes under another format's name."""
    if path is None or not Path(path).suffix:
        return "PNG"
    from PIL import Image

    suffix = Path(path).suffix.lower()
    found = Image.registered_extensions().get(suffix)
    if found is None:
        return "PNG"
    if found not in Image.SAVE:
        raise UserError(f"{option} {path}: Pillow reads {suffix} pictures but cannot write "
                        "them (name it .png, .jpg, .webp, .bmp, .tif or .gif)")
    return found


def save_picture(picture, path, option):
    """Write a PIL image atomically in the format of path's extension (picture_format);
    returns its (width, height)."""
    from .atomic import write_atomically

    image_format = picture_format(path, option)
    if image_format == "JPEG" and picture.mode != "RGB":  # JPEG has no alpha or palette
        picture = picture.convert("RGB")
    write_atomically(path, lambda file: picture.save(file, image_format))
    return picture.size


def write_history(path, history):
    """--history: the CSV of views.history_csv, written atomically."""
    from .atomic import write_atomically
    from .views import history_csv

    text = history_csv(history).encode()
    write_atomically(path, lambda file: file.write(text))


def draw_learning_curve(path, model, title):
    from .plots import model_learning_curve

    save_picture(model_learning_curve(model, f"learning curve: {title}"), path, "--plot")


def rates_with_lr(rates):
    """--compare-lr's rates, refusing an --lr given beside them (each rate is the lr)."""
    source = click.get_current_context().get_parameter_source("lr")
    if source not in (None, click.core.ParameterSource.DEFAULT):
        raise UserError("--lr cannot be combined with --compare-lr (each listed rate is the "
                        "learning rate of one model)")
    return rates


def compare_rates(prepared, settings, rates, model_path, plot, quiet, history=None):
    """--compare-lr: one model per learning rate (and with --history one CSV per rate), all
    cost curves (and validation costs) in one picture."""
    from . import interrupts
    from .plots import learning_curve_image

    plot = plot or Path("compare-lr.png")
    series = []
    with interrupts.stop_on_signals() as stop:
        announce(prepared, quiet)
        for rate in rates:
            rate_settings = dict(settings, lr=rate)
            model = train_with_bar(prepared, rate_settings, quiet, stop, desc=f"lr {rate:g}")
            path = rate_model_path(model_path, rate)
            model.save(path)
            if history is not None:
                write_history(rate_model_path(history, rate, ".csv"), model.history)
            series.append((f"lr {rate:g}", model.history["epoch"], model.history["cost"]))
            if "val_cost" in model.history:
                series.append((f"lr {rate:g} validation", model.history["epoch"],
                               model.history["val_cost"]))
            finish(model, rate_settings, path, quiet)
            if model.metadata["interrupted"]:
                break
        save_picture(learning_curve_image(series, title="cost for each learning rate"), plot,
                     "--plot")
    say(f"plot written to {plot}", quiet)
    return interrupts.EXIT_INTERRUPTED if stop else 0


# ---------------------------------------------------------------- predict


@cli.command()
@click.argument("inputs", nargs=-1)
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
@quiet_option
def predict(inputs, model_path, nul_separated, output_format, top_k, threshold, min_confidence,
            no_path, all_probabilities, verbose, jobs, quiet):
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
    from .model import check_features, load_model
    from .predicting import (check_threshold, decide, decode_in_order,
                             expand_inputs, size_note)
    from .views import PredictionWriter

    check_predict_inputs(inputs)
    model = load_model(model_path, history=False)
    check_threshold(threshold, model.classes, top_k)
    writer = PredictionWriter(output_format, model.classes, top_k=top_k, with_path=not no_path,
                              all_probabilities=all_probabilities)
    stdout = sys.stdout.buffer
    items = expand_inputs(inputs, sys.stdin.buffer, nul_separated,
                          check_width=lambda width, path: check_features(model, width, path))
    failed = 0
    try:
        stdout.write(writer.start().encode())
        for decoded in decode_in_order(items, model.size, jobs or default_jobs(),
                                       on_wait=stdout.flush):
            if decoded.error is not None:
                failed += 1
                stdout.flush()
                click.echo(f"Error: {decoded.error}", err=True)
                continue
            note = size_note(decoded.original_size, model.size) if verbose and not quiet else None
            if note:
                click.echo(f"Note: {decoded.name}: {note}", err=True)
            proba = model.predict_proba(decoded.row[None, :])[0]
            decision = decide(proba, model.classes, threshold, min_confidence, top_k)
            stdout.write(writer.line(decoded.name, proba, decision).encode("utf-8", "surrogateescape"))
        stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
    return 1 if failed else 0


def check_predict_inputs(inputs):
    """Usage errors that say what to type: no INPUTS (with paths piped in: give -), or a
    model file given as an input (give it with -m)."""
    from .model import is_model_file

    if not inputs:
        hint = "" if sys.stdin is None or sys.stdin.isatty() else \
            "; to read the paths (or the image) piped in, give - as INPUTS"
        raise click.UsageError(f"Missing argument 'INPUTS...'{hint}")
    if is_model_file(inputs[0]):
        raise UserError(f"{inputs[0]}: is a model, not an image or feature file; give it with "
                        f"-m (logreg predict -m {inputs[0]} {' '.join(inputs[1:]) or 'IMAGE'})")


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
    from .api import evaluation
    from .model import load_model
    from .views import as_json, evaluate_text

    model = load_model(model_path, history=False)
    dataset = load_dataset(data, model.size, quiet, strict, jobs, classes=model.classes)
    result = evaluation(model, dataset, data, misclassified)
    click.echo(as_json(result) if output_format == "json" else evaluate_text(result))


# ---------------------------------------------------------------- inspect


@cli.command()
@click.argument("model_argument", metavar="[MODEL]", required=False,
                type=click.Path(dir_okay=False))
@model_option
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.option("--weights-png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw each class's weights as an H x W x 3 picture in this PNG.")
@click.pass_context
def inspect(ctx, model_argument, model_path, output_format, weights_png):
    """Show a model's classes, image size, scaling, training options, epochs, final and
    best costs, validation figures and file format version.

    MODEL (or -m MODEL, as in every other command) defaults to model.npz, or
    $LOGREG_MODEL. --weights-png draws what the linear
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
    from .explaining import model_summary, weight_captions
    from .model import load_model
    from .views import as_json, inspect_text

    model_path = one_model_path(ctx, model_argument, model_path)
    check_outputs([("--weights-png", weights_png)], [("MODEL", model_path)])
    picture_format(weights_png, "--weights-png")
    model = load_model(model_path, history=False)
    summary = model_summary(model, model_path)
    click.echo(as_json(summary) if output_format == "json" else inspect_text(summary))
    if weights_png is not None:
        from .plots import weights_picture

        picture = weights_picture(model.weights, weight_captions(model), model.size)
        width, height = save_picture(picture, weights_png, "--weights-png")
        tiles = model.weights.shape[1]
        what = ("1 tile: the positive class's weights" if tiles == 1
                else f"{tiles} tiles, one per class")
        say(f"wrote {weights_png} ({width}x{height} px, {what})")


def one_model_path(ctx, argument, option):
    """inspect's model: MODEL or -m MODEL (the same file when both are given)."""
    if argument is None:
        return option
    given = ctx.get_parameter_source("model_path") is click.core.ParameterSource.COMMANDLINE
    if given and argument != option:
        raise click.UsageError(f"MODEL {argument} and --model {option} differ; give one",
                               ctx)
    return argument


# ---------------------------------------------------------------- explain


@cli.command()
@click.argument("image")
@model_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the heat map of contributions over the image to this PNG.")
@click.option("--class", "class_name", default=None,
              help="Class whose score to explain (default: the predicted one; a binary "
                   "model's negative class has the score -z).")
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
    from . import api
    from .atomic import check_outputs
    from .model import load_model
    from .views import as_json, explain_text

    check_outputs([("--output", output)],
                  [("--model", model_path), ("IMAGE", None if image == "-" else image)])
    picture_format(output, "--output")
    model = load_model(model_path, history=False)
    source = image
    if image == "-":
        from .predicting import chunk_reader, read_image_bytes

        source = read_image_bytes(b"", chunk_reader(sys.stdin.buffer))
    result = api.explain(model, source, class_name)
    facts = result.as_dict()
    click.echo(as_json(facts) if output_format == "json" else explain_text(facts))
    if output is not None:
        from .plots import explanation_picture

        caption = [f"{result.explained_class}: z = {result.z:.4f}, b = {result.bias:.4f}, "
                   f"P = {result.probability:.4f}",
                   f"predicted: {result.predicted} "
                   f"(P = {result.probabilities[result.predicted]:.4f})"]
        width, height = save_picture(explanation_picture(result.pixels, result.contributions,
                                                         caption), output, "--output")
        say(f"wrote {output} ({width}x{height} px)")


# ---------------------------------------------------------------- report


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@model_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML file to write (one self-contained page).")
@click.option("--misclassified", type=count(0), default=12, show_default=True, metavar="N",
              help="Show the N most confidently wrong images with their heat maps.")
@jobs_option
@strict_option
@quiet_option
def report(data, model_path, output, misclassified, jobs, strict, quiet):
    """Write the model and its evaluation on labelled DATA as one HTML page.

    The page holds the model's facts, its learning curve, accuracy, log-loss, per-class
    precision, recall and F1, the confusion matrix, the ROC curve (binary models), the
    weights as pictures and the most confidently wrong images with their explanations.
    Every picture is inlined: the file can be mailed, read offline and printed.

    \b
    Example:
        logreg report images/test -m cats.npz -o report.html
    """
    from .api import evaluation
    from .atomic import check_outputs, write_atomically
    from .model import check_features, load_model
    from .report import build_report

    check_outputs([("--output", output)], [("--model", model_path), ("DATA", data)])
    model = load_model(model_path, history=True)
    dataset = load_dataset(data, model.size, quiet, strict, jobs, classes=model.classes)
    if len(dataset.y):  # else evaluation refuses the data, by name
        check_features(model, dataset.X.shape[1], source=data)
    scores = model.scores(dataset.X) if len(dataset.y) else None
    result = evaluation(model, dataset, data, scores=scores)
    page = build_report(model, dataset, data, model_path, result, misclassified,
                        scores=scores).encode()
    write_atomically(output, lambda file: file.write(page))
    say(f"wrote {output} ({len(page) // 1024} KB; accuracy {result['accuracy']:.1%})", quiet)


# ---------------------------------------------------------------- flatten


@cli.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Feature file to write: .npz, or a Zarr store (.zarr or a URL).")
@declared("size", default="64x64", show_default=True,
          help="Image size WIDTHxHEIGHT every image is resized to.")
@declared("scheduler")
@declared("scheduler_file", type=click.Path(dir_okay=False, path_type=Path))
@jobs_option
@strict_option
@quiet_option
def flatten(data, output, size, jobs, strict, quiet, scheduler, scheduler_file):
    """Load the images of DATA (a folder of class subfolders or a labels file) once and
    write them as a feature file.

    The .npz holds X (uint8, m x n, row i = image i unrolled row-major H x W x 3),
    y (int64), classes, paths, size (H, W) and a JSON metadata string; plain numpy
    loads it with allow_pickle=False, and train/evaluate accept it as DATA. It is stored
    uncompressed, so X can be memory-mapped from it.

    -o NAME.zarr (or a URL: file://, s3://...) writes a Zarr v3 store instead (needs the
    dask extra), decoding a chunk of rows at a time; DATA may also be a feature file or
    store to convert. With --scheduler (or --scheduler-file) the workers of a Dask cluster
    decode the images, one task per chunk, each writing its chunk into the store; they
    must see DATA and the store at the same paths (shared disk) or URL.

    \b
    Example:
        logreg flatten images/ -o features.npz --size 32x32
        logreg flatten images/ -o features.zarr
        logreg flatten images/ -o /shared/features.zarr --scheduler tcp://head:8786
    """
    from .api import write_features
    from .atomic import check_outputs
    from .zarrstore import is_store_name, local_path

    if is_store_name(output):
        if local_path(output) is not None:
            check_outputs([("--output", local_path(output))])
        return flatten_store(data, output, size, jobs, strict, quiet, scheduler,
                             scheduler_file)
    from .cluster import wanted

    if wanted(scheduler, scheduler_file):
        option = "--scheduler" if scheduler is not None else "--scheduler-file"
        raise click.UsageError(f"{option}: {output}: decoding on a cluster writes a Zarr "
                               "store; name one with -o NAME.zarr")
    check_outputs([("--output", output)], [("DATA", data)])
    if output.is_dir():
        raise click.BadParameter(f"{output}: is a folder (a Zarr store is named NAME.zarr)",
                                 param_hint="'-o' / '--output'")
    dataset = load_dataset(data, size, quiet, strict, jobs)
    write_features(dataset, output, data)
    say(f"wrote {len(dataset.y)} images x {dataset.X.shape[1]} features to {output}", quiet)


def flatten_store(data, output, size, jobs, strict, quiet, scheduler, scheduler_file):
    """flatten -o a Zarr store (decoded on a Dask cluster with --scheduler), with
    load_dataset's progress bar, warnings and counts."""
    from . import api
    from .dataset import path_exists
    from .distributed import cluster_or_none
    from .errors import DataError
    from .zarrstore import store_location

    if not path_exists(data):  # said before a cluster is started or joined
        raise DataError(f"{data}: no such file or folder")
    with cluster_or_none(scheduler, scheduler_file, jobs) as client, \
            progress_bar(quiet, desc="loading", unit="img") as bar:
        written = api.flatten(data, store_location(output), size=size, jobs=jobs,
                              strict=strict, on_warning=warn_error, on_image=bar.update,
                              on_total=lambda total: set_total(bar, total), client=client)
    if written.skipped:
        say(f"skipped {len(written.skipped)} unreadable file(s) in {data}")
    say(f"wrote {written.images} images x {written.n} features to {store_location(output)}",
        quiet)


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
    from .check import audit, scan
    from .views import as_json, check_text

    def scanned(source):
        with progress_bar(quiet, desc=f"checking {source}", unit="img") as bar:
            return scan(source, jobs=jobs, on_total=lambda total: set_total(bar, total),
                        on_image=bar.update)

    report = audit(scanned(data), scanned(other) if other is not None else None, max_imbalance)
    if output_format == "json":
        click.echo(as_json(report))
    else:
        click.echo(check_text(report))
    return 1 if report["problems"] else 0
