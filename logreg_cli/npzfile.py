"""Read .npz archives from files nobody vouches for: plain arrays only, never a pickle, and
never more memory than the file's own bytes can honestly expand to.

np.load(allow_pickle=False) already refuses pickles, but on a damaged or hostile archive it
can raise tokenize.TokenError, SyntaxError, AttributeError (a member that is not an array
comes back as bytes) or MemoryError (a header claiming a terabyte), and it allocates what a
header claims before reading anything. This reader checks each member first.

The file is opened once (NpzFile): every header, array and memory map comes from that one
open file, so a writer renaming a new version over the path while we read cannot mix two
versions. The zip directory and each member's .npy header can be read without reading any
array, so callers check every claim (names, shapes, sizes) before anything large is read.
"""

import math
import os
import stat
import tokenize
import warnings
import zipfile
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from .errors import ModelFileError

ZIP_MAGIC = b"PK\x03\x04"
# Deflate expands at most about 1032 to 1: a member claiming more is lying about its size.
MAX_DEFLATE_RATIO = 1032
ZIP_LOCAL_HEADER_SIZE = 30  # the fixed part of a zip local file header
# logreg writes stored (uncompressed) members, which cost no more memory than the file's own
# bytes; compressed ones (np.savez_compressed) may expand to this much in all, per file.
MAX_INFLATED_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ArrayHeader:
    """What a member's .npy header claims: shape, dtype, order and the data's byte count."""

    shape: tuple
    dtype: np.dtype
    fortran_order: bool
    n_bytes: int

    @property
    def ndim(self):
        return len(self.shape)


@contextmanager
def reading():
    """Turn the exceptions a damaged archive raises into ModelFileError(cause only)."""
    try:
        yield
    except MemoryError:
        raise ModelFileError("too large for memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError, KeyError) as error:  # NotImplementedError, RuntimeError: a
        raise ModelFileError(_reason(error)) from None  # compression or encryption zipfile lacks


def _reason(error):
    if isinstance(error, zipfile.BadZipFile):
        return f"damaged archive: {error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# What a path that is not a regular file is: an archive must be read with seeks, and a
# labels file must end, so such a path is refused unread (a FIFO without a writer would make
# open() wait forever, /dev/zero never ends).
SPECIAL_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device (like /dev/zero)"),
    (stat.S_ISBLK, "a block device (a disk)"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)
OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
              | getattr(os, "O_CLOEXEC", 0))


def open_regular_file(path, error=ModelFileError, expected="an .npz file"):
    """path opened for reading, without blocking, as a binary file object; raises
    error("<what it is>, not <expected>") unless it is a regular file (OSError when it
    cannot be opened).

    Checked by its stat before it is opened (opening some devices has effects), then by
    the descriptor's, in case it was replaced meanwhile; everything after asks that one
    descriptor (a file deleted after the check is read whole).
    """
    _refuse_special(os.stat(path).st_mode, error, expected)
    descriptor = os.open(path, OPEN_FLAGS)
    try:
        _refuse_special(os.fstat(descriptor).st_mode, error, expected)
        os.set_blocking(descriptor, True)
        return open(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _refuse_special(mode, error, expected):
    if not stat.S_ISREG(mode):
        kind = next((kind for is_kind, kind in SPECIAL_FILE_KINDS if is_kind(mode)),
                    "not a regular file")
        raise error(f"{kind}, not {expected}")


class NpzFile:
    """One open .npz archive. Use as a context manager; ModelFileError carries the cause
    only (the caller names the file).

    names: the member names without .npy. header(name) reads only the .npy header;
    read(name) the whole array; memmap(name) maps a stored (uncompressed) member from the
    same open file.
    """

    def __init__(self, path):
        self.path = path
        self._file = None
        with reading():
            self._file = open_regular_file(path)
            try:
                self._open_archive()
            except BaseException:
                self._file.close()
                raise

    def _open_archive(self):
        if self._file.read(4) != ZIP_MAGIC:
            raise ModelFileError("not an .npz archive")
        self.file_size = os.fstat(self._file.fileno()).st_size
        self._file.seek(0)
        self._archive = zipfile.ZipFile(self._file)
        infos = self._archive.infolist()
        repeated = [name for name, count in Counter(i.filename for i in infos).items() if count > 1]
        if repeated:
            raise ModelFileError(f"{repeated[0]} is listed more than once in the archive")
        self._infos = {_array_name(info.filename): info for info in infos}
        self._check_extents(infos)
        self._headers = {}
        self._inflated = 0  # bytes of compressed members read so far

    def _check_extents(self, infos):
        """Each member must fit, without overlap, between its local header and the next
        member (or the zip directory): no member may claim bytes the file does not hold."""
        ordered = sorted(infos, key=lambda info: info.header_offset)
        ends = [info.header_offset for info in ordered[1:]]
        ends.append(min(getattr(self._archive, "start_dir", self.file_size), self.file_size))
        for info, end in zip(ordered, ends):
            start = info.header_offset + ZIP_LOCAL_HEADER_SIZE + len(info.orig_filename)
            if start + info.compress_size > end or info.compress_size > self.file_size:
                raise ModelFileError(f"{info.filename} claims more bytes than the file holds")
            stored = info.compress_type == zipfile.ZIP_STORED
            if (info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1)
                    or (stored and info.file_size != info.compress_size)):
                raise ModelFileError(f"{info.filename} claims more bytes than the file holds")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._file is not None:
            self._file.close()

    @property
    def names(self):
        return set(self._infos)

    def is_stored(self, name):
        return self._infos[name].compress_type == zipfile.ZIP_STORED

    def header(self, name):
        """ArrayHeader of member name, reading (decompressing) only its first bytes."""
        if name not in self._headers:
            with reading(), self._archive.open(self._infos[name]) as member:
                self._headers[name] = self._read_header(member, name)[0]
        return self._headers[name]

    def _read_header(self, member, name):
        info = self._infos[name]
        try:
            version = np.lib.format.read_magic(member)
        except ValueError:
            raise ModelFileError(f"{info.filename} is not a numpy array") from None
        shape, fortran_order, dtype = read_npy_header(member, version, info.filename)
        if dtype.hasobject:
            raise ModelFileError(f"{info.filename} holds Python objects, which logreg never loads")
        n_bytes = math.prod(shape) * dtype.itemsize
        if n_bytes > info.file_size:
            raise ModelFileError(f"{info.filename} declares shape {shape}, more than it holds")
        return ArrayHeader(tuple(shape), dtype, fortran_order, n_bytes), member.tell()

    def read(self, name):
        """The whole array of member name (the header is checked before any allocation)."""
        info = self._infos[name]
        with reading(), self._archive.open(info) as member:
            header, _ = self._read_header(member, name)
            self._headers[name] = header
            self._count_inflated(info, header.n_bytes)
            data = _read_exactly(member, header.n_bytes)
        if data is None:
            raise ModelFileError(f"{info.filename} is truncated")
        if not header.n_bytes:
            return np.zeros(header.shape, dtype=header.dtype)
        order = "F" if header.fortran_order else "C"
        return np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)

    def _count_inflated(self, info, n_bytes):
        """Refuse, before decompressing, compressed members beyond MAX_INFLATED_BYTES in all."""
        if info.compress_type == zipfile.ZIP_STORED:
            return
        self._inflated += n_bytes
        if self._inflated > MAX_INFLATED_BYTES:
            raise ModelFileError(
                f"{info.filename} is compressed and would expand to {n_bytes / 2**20:.0f} MB; "
                f"logreg expands at most {MAX_INFLATED_BYTES // 2**20} MB of compressed "
                "arrays per file (it writes them uncompressed)")

    def data_offset(self, name):
        """(byte offset of the array data in the file, ArrayHeader) of a stored member."""
        info = self._infos[name]
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{info.filename} is compressed")
        with reading():
            self._file.seek(info.header_offset)
            local = self._file.read(ZIP_LOCAL_HEADER_SIZE)
            if len(local) != ZIP_LOCAL_HEADER_SIZE or local[:4] != ZIP_MAGIC:
                raise ModelFileError(f"damaged zip archive (no local header for {info.filename})")
            name_length = int.from_bytes(local[26:28], "little")
            extra_length = int.from_bytes(local[28:30], "little")
            member_start = info.header_offset + ZIP_LOCAL_HEADER_SIZE + name_length + extra_length
            with self._archive.open(info) as member:
                header, header_length = self._read_header(member, name)
        self._headers[name] = header
        if header_length + header.n_bytes != info.file_size:
            raise ModelFileError(f"{info.filename} is {info.file_size} bytes, not the "
                                 f"{' x '.join(map(str, header.shape))} it claims")
        data_start = member_start + header_length
        if data_start + header.n_bytes > self.file_size:
            raise ModelFileError(f"{info.filename} claims more bytes than the file holds")
        return data_start, header

    def memmap(self, name):
        """A read-only np.memmap of a stored member, mapped from this open file."""
        data_start, header = self.data_offset(name)
        if not header.n_bytes:
            return np.zeros(header.shape, dtype=header.dtype)  # mmap cannot map zero bytes
        order = "F" if header.fortran_order else "C"
        with reading():
            return np.memmap(self._file, dtype=header.dtype, mode="r", offset=data_start,
                             shape=header.shape, order=order)

    def fileno_copy(self):
        """A new file object on the same open file (it stays valid after close())."""
        return os.fdopen(os.dup(self._file.fileno()), "rb")


def _array_name(filename):
    return filename[:-4] if filename.endswith(".npy") else filename


def _read_exactly(member, n_bytes):
    """n_bytes from member into a writable buffer (no copy later), or None if it ends early."""
    data = bytearray(n_bytes)
    view = memoryview(data)
    done = 0
    while done < n_bytes:
        got = member.readinto(view[done:])
        if not got:
            return None
        done += got
    return data


def read_npy_header(member, version, name):
    """(shape, fortran_order, dtype) of a .npy header, or ModelFileError.

    numpy parses the header as a Python literal: a damaged one can raise SyntaxError or
    tokenize.TokenError as well as ValueError.
    """
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ModelFileError(f"{name} is a .npy of version {version[0]}.{version[1]}")
    try:
        with warnings.catch_warnings():  # an escape such as '\\ ' in a hostile header warns
            warnings.simplefilter("error", SyntaxWarning)  # (SyntaxWarning from Python 3.12)
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)  # numpy: "created on Python 2"
            return readers[version](member)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError, SyntaxWarning,
            DeprecationWarning) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(f"{name} has a damaged array header: {first_line}") from None
