"""Write a file so that readers see the old version or the complete new one, never half."""

import os
import tempfile
from pathlib import Path


def write_atomically(path, write):
    """Call write(file) on a temporary file beside path, fsync it, rename it over path.

    The folder entry is fsynced too, so the rename survives a crash. On any failure the
    temporary file is removed and the old file at path is left as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


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
