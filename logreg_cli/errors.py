"""Our exception types: every error of the library is a LogregError with a one-line
message. cli.py turns each into one line on stderr and exit code 2."""


class LogregError(Exception):
    """A problem the user can fix: bad input, bad options, a bad file."""


class OptionError(LogregError, ValueError):
    """An option's value is outside what options.py declares (the message names it)."""


class DataError(LogregError):
    """The training or evaluation data cannot be used (missing, empty, one class...)."""


class ImageError(LogregError):
    """One image file cannot be read; loaders skip it with a warning unless --strict.

    consequence: what a run that goes on does about it ("skipped", "class 'x' left out"),
    said after the cause in the warning; strict() says instead that the run stopped.
    """

    def __init__(self, path, cause, consequence=None):
        from .names import shown  # a path of undecodable bytes is printed escaped (\xff)

        text = cause if consequence is None else f"{cause}; {consequence}"
        super().__init__(f"{shown(str(path))}: {text}")
        self.path = str(path)
        self.cause = text
        self.problem = cause
        self.consequence = consequence

    def strict(self):
        """This error as --strict raises it: the run stopped at it, nothing was skipped."""
        if self.consequence is None:
            return self
        message = str(self).removesuffix(f"; {self.consequence}")
        self.args = (f"{message}; --strict stopped the run",)
        return self


class ModelFileError(LogregError):
    """A model or feature file is missing, corrupt, of another version or inconsistent."""


class TrainingDiverged(LogregError):
    """Training went past what a float32 model can hold (its cost or an image's possible
    score is not finite): an option, usually --lr, is too large for this data.

    epoch: the first epoch whose weights (after that many updates) are not usable;
    option: the option and value to blame, e.g. "--lr 50"; advice: what to try.
    """

    def __init__(self, epoch, lr, option=None, advice="try a smaller --lr"):
        option = option or f"--lr {lr:g}"
        super().__init__(
            f"{option}: training diverged at epoch {epoch} (the cost or the weights are no "
            f"longer finite for a float32 model); {advice}"
        )
        self.epoch = epoch
        self.lr = lr


def first_line(error):
    """The first line of an exception's message (its type's name when it has none), for
    one-line messages built from a library's errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
