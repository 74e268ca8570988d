"""Write a file so that readers see the old version or the complete new one, never half.

The new content goes to a temporary file `.{name}.XXXXXXXX.tmp` beside the target (same
folder, so same file system and the rename is atomic), is flushed and fsynced, then renamed
over the target, and the folder is fsynced so the rename itself survives a power cut.

A process killed mid-write (SIGKILL, power cut) leaves its temporary file behind. While it
writes, a writer holds an exclusive lock (flock) on its temporary file; the lock dies with the
process. So after each successful save, temporaries of the same target whose lock can be
taken belong to dead writers and are removed, while a live concurrent writer's are left alone.
"""

import os
import string
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import LogregError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, stale temporaries are recognised by age instead
    fcntl = None

TEMP_SUFFIX = ".tmp"
# mkstemp's random part: 8 characters from this alphabet (CPython's tempfile._RandomNameSequence).
TEMP_RANDOM_LENGTH = 8
TEMP_RANDOM_CHARS = frozenset(string.ascii_lowercase + string.digits + "_")
UNLOCKED_STALE_SECONDS = 3600


def check_folder(path):
    """Raise LogregError now, before any long work, when the folder path goes into does
    not exist (write_atomically would find out only at the end)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise LogregError(f"{path}: cannot write there, folder {folder} does not exist")


def write_atomically(path, write):
    """Call write(file) on a temporary file beside path, fsync it, rename it over path.

    On any failure the temporary file is removed and the old file at path is left as it
    was; an OSError (missing folder, no permission, disk full) becomes a LogregError naming
    path. The new file gets the old file's permissions, or the umask's for a new file (not
    mkstemp's 0600). After success, temporaries left by killed writers of path are removed.
    """
    path = Path(path)
    folder = path.parent
    try:
        handle, temp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX,
                                             dir=folder)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(handle, "wb") as file:
            _lock(file.fileno())
            _set_mode(file.fileno(), _mode_for(path))
            write(file)
            file.flush()
            os.fsync(file.fileno())
            if _join_batch(file, temp_name, path):
                return  # renamed with the other files of the batch, by commit()
            if fcntl is not None:
                os.replace(temp_name, path)  # still locked: no other writer may take it as stale
        if fcntl is None:
            os.replace(temp_name, path)  # where files cannot be renamed while open
    except BaseException as error:
        _remove(temp_name)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise
    _fsync_folder(folder)
    remove_stale_temporaries(path)


class _Batch:
    """Files written by write_atomically inside written_together(), waiting for commit()."""

    def __init__(self):
        self.pending = []  # (descriptor keeping the temporary's lock, temporary, target)

    def commit(self):
        """Rename every temporary over its target, in the order they were written; on an
        error the temporaries not yet renamed are left for written_together to remove."""
        done = []
        while self.pending:
            fd, temp_name, path = self.pending[0]
            if fcntl is None:  # where files cannot be renamed while open
                self.pending[0] = (None, temp_name, path)
                _close(fd)
            try:
                os.replace(temp_name, path)
            except OSError as error:
                raise _cannot_write(path, error) from None
            self.pending.pop(0)
            _close(fd)
            done.append(path)
        for folder in {Path(path).parent for path in done}:
            _fsync_folder(folder)
        for path in done:
            remove_stale_temporaries(path)

    def discard(self):
        for fd, temp_name, _ in self.pending:
            _remove(temp_name)
            _close(fd)
        self.pending = []


_batches = threading.local()


@contextmanager
def written_together():
    """Write several files as one: inside the block, write_atomically leaves each new file
    as its complete, fsynced and still locked temporary; the yielded batch's commit() then
    renames them all over their targets. Leaving the block without commit() (an error, a
    Ctrl-C) removes the temporaries: every target keeps its old content.
    """
    batch = _Batch()
    _batches.current = batch
    try:
        yield batch
    finally:
        _batches.current = None
        batch.discard()


def _join_batch(file, temp_name, path):
    """Hand a written temporary to the active batch (keeping its lock); False when none."""
    batch = getattr(_batches, "current", None)
    if batch is None:
        return False
    batch.pending.append((os.dup(file.fileno()), temp_name, path))
    return True


def _close(fd):
    if fd is None:
        return
    try:
        os.close(fd)
    except OSError:
        pass


def temp_prefix(path):
    return f".{Path(path).name}."


def is_temporary_of(name, path):
    """True when the file name is one write_atomically makes for path."""
    prefix = temp_prefix(path)
    if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
        return False
    random_part = name[len(prefix) : -len(TEMP_SUFFIX)]
    return len(random_part) == TEMP_RANDOM_LENGTH and set(random_part) <= TEMP_RANDOM_CHARS


def remove_stale_temporaries(path):
    """Remove the temporaries of path left by writers that died; returns how many."""
    path = Path(path)
    removed = 0
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return 0
    for entry in entries:
        if is_temporary_of(entry.name, path) and _is_abandoned(entry.path):
            removed += _remove(entry.path)
    return removed


def _lock(fd):
    """Best effort: where locks are unsupported (some network file systems), other writers
    cannot take the lock either, so they never take this temporary for a stale one."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass


def _set_mode(fd, mode):
    """Best effort: some file systems (FAT on a USB stick) have no permission bits."""
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass


def _is_abandoned(temp_path):
    """A temporary nobody is writing: its lock can be taken (or, without locks, it is old)."""
    if fcntl is None:
        try:
            return time.time() - os.stat(temp_path).st_mtime > UNLOCKED_STALE_SECONDS
        except OSError:
            return False
    try:
        fd = os.open(temp_path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)


def _mode_for(path):
    """The permission bits the new file should have: the old file's, else 0666 less umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove(name):
    try:
        os.unlink(name)
        return 1
    except OSError:
        return 0


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
