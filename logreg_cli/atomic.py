"""Write a file so that readers see the old version or the complete new one, never half.

The new content goes to a temporary file `.{name}.XXXXXXXX.tmp` beside the target (same
folder, so same file system and the rename is atomic), is flushed and fsynced, then renamed
over the target, and the folder is fsynced so the rename itself survives a power cut.

A process killed mid-write (SIGKILL, power cut) leaves its temporary file behind. While it
writes, a writer holds an exclusive lock (flock) on its temporary file; the lock dies with the
process. So after each successful save, temporaries of the same target whose lock can be
taken belong to dead writers and are removed, while a live concurrent writer's are left alone.
A temporary is created before it can be locked: a cleaner that got its lock in between
removes it while still holding the lock, and the writer, once it holds the lock, sees that
its name is gone and starts again with a new temporary. So no save is lost to a cleaner.

Only regular files are replaced. A symlink's final target is the file replaced (the link
stays); a device or FIFO (/dev/null, /dev/full, a named pipe) is written into directly.
check_outputs refuses, before a command's work, outputs that would replace its inputs.
"""

import io
import os
import stat
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
    try:
        folder = output_target(path).parent  # a symlink's target is what gets written
        folder_exists = folder.is_dir()
    except OSError as error:  # cannot be looked up: a name over 255 bytes
        raise _cannot_write(path, error) from None
    if not folder_exists:
        raise LogregError(f"{path}: cannot write there, folder {folder} does not exist")
    if not is_special_file(output_target(path)) and not _temporary_name_fits(path):
        raise LogregError(f"{path}: cannot write (File name too long for the temporary "
                          "file beside it)")


def _temporary_name_fits(path):
    """False when the temporary beside path would have a name over the folder's NAME_MAX
    (a target name of 242+ bytes): the save would fail only after all the work."""
    target = output_target(path)
    try:
        name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX, or no such limit
        return True
    temp_name = temp_prefix(target) + "X" * TEMP_RANDOM_LENGTH + TEMP_SUFFIX
    return len(os.fsencode(temp_name)) <= name_max


def check_outputs(outputs, inputs=(), updates=()):
    """Refuse, before any long work, outputs that must not be written.

    outputs: (option, path or None) pairs, e.g. ("--model", "model.npz"); inputs: (what,
    path or None) pairs of the files the command reads, e.g. ("DATA", "feat.npz");
    updates: (what, option) pairs where that output may name that input, because the
    command reads the input whole before it starts and replacing it is the point
    (`train --init model.npz -m model.npz` continues a model in place). Raises
    LogregError for an empty path, a missing folder, two outputs naming one file, or an
    output naming one of the inputs (it would replace what the command reads). Special
    files (/dev/null, a FIFO) are written to, never replaced, so they may be shared.
    """
    written = {}
    for option, path in outputs:
        if path is None:
            continue
        if str(path) in ("", "."):  # click turns an empty path into Path("") == Path(".")
            raise LogregError(f"{option}: the path is empty")
        check_folder(path)
        key = _file_key(path)
        if key is None:
            continue
        if key in written:
            raise LogregError(f"{path}: given to both {written[key]} and {option}; "
                              "each output needs a file of its own")
        written[key] = option
    for what, path in inputs:
        if path is None or not os.path.exists(path):
            continue
        input_key = _file_key(path)
        for key, option in written.items():
            if key == input_key and (what, option) not in updates:
                raise LogregError(f"{path}: {option} would replace the {what} this command "
                                  "reads; write to another file")
            if _holds(path, key):
                raise LogregError(f"{key}: {option} would replace a file of the {what} "
                                  "folder this command reads; write to another file")


def _holds(folder, key):
    """True when the existing file key lies inside folder (an input read file by file)."""
    if not os.path.isdir(folder) or not os.path.isfile(key):
        return False
    return os.path.realpath(key).startswith(os.path.join(os.path.realpath(folder), ""))


def _file_key(path):
    """What identifies the regular file a save of path replaces (its real path), or None
    for a special file (a device or FIFO, written to, never replaced)."""
    target = os.path.realpath(path)
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return target  # a new file
    return target if stat.S_ISREG(mode) else None


def output_target(path):
    """The file a save of path writes: path itself or, for a symlink, its final target."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def is_special_file(path):
    """True for an existing file that is not a regular file or folder: a device, a FIFO."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def write_atomically(path, write):
    """Call write(file) on a temporary file beside path, fsync it, rename it over path.

    On any failure the temporary file is removed and the old file at path is left as it
    was; an OSError (missing folder, no permission, disk full) becomes a LogregError naming
    path. The new file gets the old file's permissions, or the umask's for a new file (not
    mkstemp's 0600). After success, temporaries left by killed writers of path are removed.
    A symlink is kept: its final target is the file replaced. A special file (/dev/null,
    /dev/full, a FIFO) is written to directly, since it cannot be replaced by a file.
    """
    shown = Path(path)
    try:
        path = output_target(shown)
    except OSError as error:
        raise _cannot_write(shown, error) from None
    if is_special_file(path):
        _write_directly(shown, path, write)
        return
    folder = path.parent
    handle, temp_name = _locked_temporary(path)
    try:
        with os.fdopen(handle, "wb") as file:
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
            raise _cannot_write(shown, error) from None
        raise
    _fsync_folder(folder)
    remove_stale_temporaries(path)


def _write_directly(shown, path, write):
    """write(file) straight into a device or FIFO (a FIFO waits here for its reader)."""
    try:
        with open(path, "wb") as file:
            write(_StreamOnly(file))
            file.flush()
    except OSError as error:
        raise _cannot_write(shown, error) from None


class _StreamOnly(io.RawIOBase):
    """A device or FIFO shown to writers as a pipe: no seek, no tell. /dev/null seeks and
    tells 0 without complaint, which would make zipfile (np.savez) write a broken archive;
    a file that cannot tell makes it stream (data descriptors) instead."""

    def __init__(self, file):
        super().__init__()
        self._file = file

    def writable(self):
        return True

    def write(self, data):
        return self._file.write(data)

    def flush(self):
        if not self._file.closed:  # also called when this wrapper is collected
            self._file.flush()


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
        if is_temporary_of(entry.name, path):
            removed += _remove_if_abandoned(entry.path)
    return removed


def _locked_temporary(path, attempts=100):
    """(fd, name) of a new temporary beside path that this process holds locked.

    Between mkstemp and flock another writer's remove_stale_temporaries may find the new
    file unlocked and remove it (holding the lock while it does): wait for the lock, then
    make sure the name still leads to this file, else take another name.
    """
    for _ in range(attempts):
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=TEMP_SUFFIX,
                                        dir=path.parent)
        except OSError as error:
            raise _cannot_write(path, error) from None
        _lock(fd)
        if _names_this_file(name, fd):
            return fd, name
        os.close(fd)
    raise LogregError(f"{path}: cannot write (its temporary files keep being removed)")


def _lock(fd):
    """Wait for an exclusive lock (a cleaner holds one only while it checks and removes).

    Best effort: where locks are unsupported (some network file systems), other writers
    cannot take the lock either, so they never take this temporary for a stale one."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass


def _names_this_file(name, fd):
    """True when the path name still leads to the open file fd (it was not removed)."""
    try:
        named, opened = os.stat(name), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _set_mode(fd, mode):
    """Best effort: some file systems (FAT on a USB stick) have no permission bits."""
    try:
        os.fchmod(fd, mode)
    except OSError:
        pass


def _remove_if_abandoned(temp_path):
    """Remove a temporary nobody is writing; 1 if removed. Its lock can be taken (or,
    without locks, it is old); it is removed while the lock is held, so that a writer that
    created it a moment ago and is waiting for the lock sees it gone and starts again."""
    if fcntl is None:
        try:
            old = time.time() - os.stat(temp_path).st_mtime > UNLOCKED_STALE_SECONDS
        except OSError:
            return 0
        return _remove(temp_path) if old else 0
    try:
        fd = os.open(temp_path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return 0  # a live writer holds it
    try:
        # renamed over the target meanwhile, the name may now lead elsewhere: leave it
        return _remove(temp_path) if _names_this_file(temp_path, fd) else 0
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
