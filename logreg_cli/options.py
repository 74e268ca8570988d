"""Every option of logreg, declared once: its names, default, range and help.

The click commands (cli.py) build their options and click types from these declarations;
the library (api.py) takes the same names as keywords, fills in the same defaults and checks
each value with check() at its entry, once; the model records the options by these names.
No click and no numpy here: this module is imported by `logreg --help` and by the library.
"""

import math

from .errors import OptionError

SCHEDULES = ("none", "inverse", "exponential", "sqrt", "linear")
OPTIMIZERS = ("gd", "momentum", "adam", "lbfgs")
DEFAULT_SIZE = (64, 64)
# Images are resized to --size; 4096x4096 is 50 million features, far past any sensible
# linear model, and it keeps a typo (--size 64000x64000) from exhausting memory.
MAX_SIZE_PIXELS = 4096 * 4096
# Counts and seeds end up in numpy int64 arithmetic (epoch // decay_steps, ...).
LARGEST_COUNT = 2**63 - 1


class Option:
    """One option: `name` is the keyword (TrainConfig field, api keyword, metadata key),
    flags the command-line spellings (the first is the one messages use).

    kind: "count" (int >= low), "float" (finite, in [low, high], ends open when *_open),
    "choice" (one of choices), "size" (WIDTHxHEIGHT), "flag" (bool), "path", "text".
    A plain class, not a dataclass: `logreg --help` reads this module, and building
    dataclasses costs it milliseconds.
    """

    __slots__ = ("name", "flags", "kind", "default", "help", "low", "high", "low_open",
                 "high_open", "choices", "show_default")

    def __init__(self, name, flags, kind, default=None, help="", low=None, high=None,
                 low_open=False, high_open=False, choices=(), show_default=True):
        self.name, self.flags, self.kind, self.default, self.help = name, flags, kind, default, help
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.choices, self.show_default = choices, show_default

    @property
    def flag(self):
        return self.flags[0]


def _declare(*options):
    return {option.name: option for option in options}


OPTIONS = _declare(
    Option("size", ("--size",), "size", None, show_default=False,
           help="Image size WIDTHxHEIGHT every image is resized to (default 64x64, or the "
                "--init model's)."),
    Option("lr", ("--lr", "--learning-rate"), "float", 0.005, low=0.0, low_open=True,
           help="Initial learning rate."),
    Option("epochs", ("--epochs",), "count", 2000, low=0,
           help="Passes of gradient descent over the training set."),
    Option("decay", ("--decay",), "choice", "none", choices=SCHEDULES,
           help="Learning-rate schedule (see README)."),
    Option("decay_rate", ("--decay-rate",), "float", None, low=0.0, low_open=True,
           help="r of the schedule (default 1 for inverse and sqrt, 0.95 for exponential)."),
    Option("decay_steps", ("--decay-steps",), "count", 1, low=1,
           help="Epochs per decay step (>1 gives a staircase)."),
    Option("optimizer", ("--optimizer",), "choice", "gd", choices=OPTIMIZERS,
           help="gd (gradient descent), momentum (beta 0.9), adam (beta1 0.9, beta2 "
                "0.999, eps 1e-8) or lbfgs (full batch, no learning rate); see README."),
    Option("tol", ("--tol",), "float", 1e-6, low=0.0,
           help="lbfgs: stop when no partial derivative of the cost exceeds this, or "
                "when the cost fell by at most this fraction over the last 10 iterations."),
    Option("batch_size", ("--batch-size",), "count", None, low=1,
           help="Mini-batch size (default: full batch)."),
    Option("l2", ("--l2",), "float", 0.0, low=0.0,
           help="L2 penalty l2/(2m)|w|^2 (the bias is not penalised)."),
    Option("seed", ("--seed",), "count", 0, low=0, help="Seed of mini-batch shuffling."),
    Option("val_split", ("--val-split",), "float", None, low=0.0, high=1.0, low_open=True,
           high_open=True,
           help="Hold out this fraction of each class for validation (chosen by a hash of "
                "each file's path, so a file keeps its side when images are added)."),
    Option("val", ("--val",), "path", None,
           help="Validation data (class folder or feature file) instead of --val-split."),
    Option("early_stop", ("--early-stop",), "count", None, low=1,
           help="Stop after N epochs without a lower validation cost (the best epoch's "
                "weights are kept)."),
    Option("class_weight", ("--class-weight",), "choice", None, choices=("balanced",),
           help="Weigh each image by m / (classes * images of its class)."),
    Option("positive", ("--positive",), "text", None,
           help="Positive class of a binary model (default: the second in sorted order)."),
    Option("standardize", ("--standardize",), "flag", False,
           help="Scale each feature by the training set's mean and std (stored in the "
                "model) instead of /255."),
    Option("init", ("--init",), "path", None,
           help="Continue from this model (same size and classes)."),
    Option("stream", ("--stream/--no-stream",), "flag", None, show_default=False,
           help="Stream row blocks from a feature file instead of holding X in memory "
                "(default: decided from the size of X and the free memory)."),
    Option("jobs", ("--jobs", "-j"), "count", None, low=1,
           help="Images decoded in parallel (default: all cores)."),
    Option("scheduler", ("--scheduler",), "text", None,
           help="Run on a Dask cluster: tcp://host:8786 (an existing scheduler) or local "
                "(a LocalCluster of --jobs one-thread worker processes); needs the dask "
                "extra (see README, Beyond one machine)."),
    Option("scheduler_file", ("--scheduler-file",), "path", None,
           help="Run on the Dask cluster whose scheduler wrote this file (dask-jobqueue, "
                "dask-mpi, `dask scheduler --scheduler-file`)."),
)

# The options of `logreg train` (and of logreg_cli.train) that shape the model, in the
# order the model's metadata records them (standardize is recorded as "scaling").
TRAIN_OPTIONS = ("size", "optimizer", "lr", "epochs", "decay", "decay_rate", "decay_steps",
                 "batch_size",
                 "l2", "seed", "standardize", "val_split", "val", "early_stop", "class_weight",
                 "positive", "init", "stream", "tol")
# The gradient-descent settings among them (core.TrainConfig's fields).
DESCENT_OPTIONS = ("optimizer", "lr", "epochs", "decay", "decay_rate", "decay_steps",
                   "batch_size", "l2",
                   "seed", "early_stop", "tol")


def default(name):
    """The declared default of option name."""
    return OPTIONS[name].default


def problem(option, value):
    """Why value is not acceptable for option, in words, or None when it is."""
    import numbers  # here, not at the top: `logreg --help` imports this module

    if value is None:
        return None if option.default is None else "needs a value, got None"
    if option.kind == "count":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return f"must be a whole number, got {value!r}"
        if value < option.low:
            return f"must be {option.low} or more, got {value}"
        if value > LARGEST_COUNT:
            return f"is too large (at most {LARGEST_COUNT}), got {value}"
    elif option.kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        return _range_problem(option, value)
    elif option.kind == "choice":
        if value not in option.choices:
            return f"must be one of {', '.join(option.choices)}, got {value!r}"
    elif option.kind == "flag":
        if not isinstance(value, bool):
            return f"must be True or False, got {value!r}"
    elif option.kind == "size":
        try:
            parse_size(value)
        except OptionError as error:
            return str(error).removeprefix(f"{option.flag} ")
    return None


def _range_problem(option, value):
    low, high = option.low, option.high
    too_low = low is not None and (value <= low if option.low_open else value < low)
    too_high = high is not None and (value >= high if option.high_open else value > high)
    if not (too_low or too_high):
        return None
    if high is None:
        return (f"must be a positive number, got {value:g}" if option.low_open and low == 0
                else f"must be {low:g} or more, got {value:g}")
    return f"must be between {low:g} and {high:g}, got {value:g}"


def check(name, value):
    """Raise OptionError (a LogregError and ValueError) naming option `name` when value is
    not one it accepts; return value, with a size as a (width, height) tuple."""
    option = OPTIONS[name]
    why = problem(option, value)
    if why is not None:
        raise OptionError(f"{option.flag} {why}")
    if option.kind == "size" and value is not None:
        return parse_size(value)
    return value


def parse_size(size):
    """'WIDTHxHEIGHT' (or a (width, height) pair) -> (width, height) of positive ints.

    Raises OptionError naming --size when it is malformed, not positive or larger than
    MAX_SIZE_PIXELS pixels.
    """
    text = size if isinstance(size, str) else "x".join(map(str, size)) \
        if isinstance(size, (tuple, list)) else repr(size)
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise OptionError(f"--size must look like WIDTHxHEIGHT, e.g. 64x64; got "
                               f"{text!r}") from None
    if width < 1 or height < 1:
        raise OptionError(f"--size needs a positive width and height, got {text!r}")
    if width * height > MAX_SIZE_PIXELS:
        raise OptionError(f"--size {text} is too large: at most {MAX_SIZE_PIXELS} pixels "
                               "(e.g. 4096x4096) per image")
    return width, height
