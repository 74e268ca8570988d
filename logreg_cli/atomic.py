"""Write a file so that readers see the old version or the complete new one, never half."""

import os
import tempfile
from pathlib import Path

from .errors import LogregError


def write_atomically(path, write):
    """Call write(file) on a temporary file beside path, fsync it, rename it over path.

    The folder entry is fsynced too, so the rename survives a crash. On any failure the
    temporary file is removed and the old file at path is left as it was; an OSError
    (missing folder, no permission, disk full) becomes a LogregError naming path.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException as error:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise
    _fsync_folder(folder)


def _cannot_write(path, error):
    return LogregError(f"{path}: cannot write ({error.strerror or error})")


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a folder; the rename itself already happened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
