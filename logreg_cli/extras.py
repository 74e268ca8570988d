"""The optional extras, imported only when a command needs them.

`logreg --help`, `logreg predict` and the rest never import dask or zarr: only the
functions here do, when --scheduler or a .zarr store asks for them.
"""

import importlib
import sys

from .errors import LogregError

INSTALL_DASK = "pip install 'logreg-cli[dask]'"


def require(module, needed_for):
    """Import and return `module` (e.g. "zarr", "distributed") of the dask extra.

    needed_for: what asked for it, for the message (e.g. "--scheduler", "features.zarr").
    Raises LogregError in one line when the Python is older than the extra needs or the
    module is not installed, saying how to install it.
    """
    if sys.version_info < (3, 11):
        raise LogregError(
            f"{needed_for}: the dask extra (dask, distributed, zarr 3) needs Python 3.11 or "
            f"newer, this is Python {sys.version_info.major}.{sys.version_info.minor}")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise LogregError(
            f"{needed_for}: needs the dask extra ({error.name or module} is not installed): "
            f"{INSTALL_DASK}") from None
