"""The standard streams of the `logreg` program: closed, full or broken, never a traceback.

- A file descriptor 0, 1 or 2 closed at start (`<&-`, `>&-`) is reopened on /dev/null, so
  that no file the command opens takes its number (a model file opened as fd 1 would receive
  the output). The stream itself still behaves as closed: reading stdin raises StreamError
  (only `-` reads it), and so does writing to stdout.
- Any other failure to write stdout (a full disk, /dev/full, an I/O error) raises
  StreamError too: one line `Error: stdout: cannot write (cause)`, exit 2. Output after
  that is dropped, so the interpreter's flush at exit cannot fail a second time.
- Nothing written to stderr can fail: what a full or broken stderr cannot take is dropped.
- A broken pipe (`logreg ... | head -1`) stays a BrokenPipeError: by convention the command
  then ends quietly (exit 1), as click and `predict` already do.

Only the program's entry point calls guard_standard_streams(); the library and the click
commands (and so CliRunner tests) see ordinary streams.
"""

import io
import os
import sys

from .errors import LogregError
from .names import SHOWN_ERRORS


class StreamError(LogregError):
    """stdin cannot be read or stdout cannot be written; one line, exit 2."""


CLOSED = "it is closed"


def guard_standard_streams():
    """Reopen closed fds 0-2 on /dev/null and put checked streams in sys.stdin/stdout/stderr.

    Returns the set of descriptors that were closed at start.
    """
    closed = {fd for fd in (0, 1, 2) if not _is_open(fd)}
    for fd in sorted(closed):
        _reopen_on_devnull(fd)
    if 0 in closed:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_ClosedInput()), encoding="utf-8")
    if 2 in closed:  # nobody will read it; writes go to /dev/null rather than fail
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", write_through=True)
    else:  # a name that was not UTF-8 shows its bytes as \xNN in every message (README)
        sys.stderr = io.TextIOWrapper(
            _ForgivingOutput(2), encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
            errors=SHOWN_ERRORS, write_through=True)
    original = sys.stdout
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_CheckedOutput(1, closed=1 in closed)),
        encoding=getattr(original, "encoding", None) or "utf-8",
        errors=getattr(original, "errors", None) or "strict",
        line_buffering=bool(getattr(original, "line_buffering", False)))
    return closed


def _is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _reopen_on_devnull(fd):
    opened = os.open(os.devnull, os.O_RDWR)
    if opened != fd:
        os.dup2(opened, fd)
        os.close(opened)


class _CheckedOutput(io.RawIOBase):
    """fd 1 as a raw stream whose write errors (but a broken pipe) are StreamErrors.

    After the first failure, writes are dropped: the error has been reported once.
    """

    def __init__(self, fd, closed=False):
        super().__init__()
        self._fd = fd
        self._closed_at_start = closed
        self._failed = False

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return not self._closed_at_start and os.isatty(self._fd)

    def write(self, data):
        if self._failed:
            return len(data)
        if self._closed_at_start:
            self._failed = True
            raise StreamError(f"stdout: cannot write ({CLOSED})")
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            self._failed = True
            raise
        except OSError as error:
            self._failed = True
            raise StreamError(f"stdout: cannot write ({error.strerror or error})") from None


class _ForgivingOutput(io.RawIOBase):
    """fd 2 as a raw stream that drops what it cannot write: a full or failing stderr
    (`2>/dev/full`, a log on a full disk) must not stop the command or change its exit
    code; its messages are lost, as nobody could read them."""

    def __init__(self, fd):
        super().__init__()
        self._fd = fd

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return os.isatty(self._fd)

    def write(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            pass
        return len(data)


class _ClosedInput(io.RawIOBase):
    """Stands for a stdin that was closed at start: reading it is a StreamError."""

    def readable(self):
        return True

    def fileno(self):  # fd 0 is /dev/null now: readers must not go around this object
        raise io.UnsupportedOperation("stdin was closed at start")

    def readinto(self, buffer):
        raise StreamError(f"stdin: cannot read ({CLOSED})")
