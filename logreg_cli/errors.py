"""Our exception types. cli.py turns each into one line on stderr and an exit code."""


class LogregError(Exception):
    """A problem the user can fix: bad input, bad options, a bad file. Exit code 2."""

    exit_code = 2


class DataError(LogregError):
    """The training or evaluation data cannot be used (missing, empty, one class...)."""


class ImageError(LogregError):
    """One image file cannot be read; loaders skip it with a warning unless --strict."""

    def __init__(self, path, cause):
        from .names import shown  # a path of undecodable bytes is printed escaped (\xff)

        super().__init__(f"{shown(str(path))}: {cause}")
        self.path = str(path)
        self.cause = cause


class ModelFileError(LogregError):
    """A model or feature file is missing, corrupt, of another version or inconsistent."""


class TrainingDiverged(LogregError):
    """The cost stopped being finite: the learning rate is too large for this data."""

    def __init__(self, epoch, lr):
        super().__init__(
            f"training diverged at epoch {epoch} (cost is not finite with lr {lr:g}); "
            "try a smaller --lr"
        )
        self.epoch = epoch
        self.lr = lr
