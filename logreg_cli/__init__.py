"""logreg: train and use a logistic-regression image classifier from the command line."""

__version__ = "0.1.0"
