"""logreg: train and use a logistic-regression image classifier from the command line."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import logreg_cli` (and so `logreg --help`) must not import numpy.
    if name == "LogisticRegressionGD":
        from .estimator import LogisticRegressionGD

        return LogisticRegressionGD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
