"""logreg: train and use a logistic-regression image classifier, from the shell or Python.

    import logreg_cli
    model = logreg_cli.train("images/", epochs=500)     # what `logreg train images/` does
    model.save("model.npz")
    model.predict(["photo.jpg"])                        # ["cat"]

The public names are imported on first use (module __getattr__), so `import logreg_cli`
and `logreg --help` do not pay for numpy and Pillow.
"""

__version__ = "0.1.0"

# public name -> the module (in this package) that defines it
_EXPORTS = {
    "train": "api", "evaluate": "api", "flatten": "api", "load_images": "api",
    "explain": "api", "load_model": "api",
    "Model": "model",
    "LogisticRegressionGD": "estimator",
    "LogregError": "errors", "OptionError": "errors", "DataError": "errors",
    "ImageError": "errors", "ModelFileError": "errors", "TrainingDiverged": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
