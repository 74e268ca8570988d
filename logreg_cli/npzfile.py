"""Read .npz archives from files nobody vouches for: plain arrays only, never a pickle, and
never more memory than the file's own bytes can honestly expand to.

np.load(allow_pickle=False) already refuses pickles, but on a damaged or hostile archive it
can raise tokenize.TokenError, SyntaxError, AttributeError (a member that is not an array
comes back as bytes) or MemoryError (a header claiming a terabyte), and it allocates what a
header claims before reading anything. This reader checks each member first.
"""

import math
import tokenize
import zipfile
import zlib

import numpy as np

from .errors import ModelFileError

ZIP_MAGIC = b"PK\x03\x04"
# Deflate expands at most about 1032 to 1: a member claiming more is lying about its size.
MAX_DEFLATE_RATIO = 1032


def read_arrays(path, keys):
    """(arrays, names): the arrays of the .npz at path whose names (without .npy) are in
    keys, and the names of all its members.

    Raises ModelFileError whose message is the cause only (the caller names the file).
    """
    try:
        return _read_arrays(path, keys)
    except MemoryError:
        raise ModelFileError("too large for memory") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as error:  # the last two: a compression or encryption zipfile lacks
        raise ModelFileError(_reason(error)) from None


def _reason(error):
    if isinstance(error, zipfile.BadZipFile):
        return f"damaged archive: {error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _read_arrays(path, keys):
    with open(path, "rb") as file:
        if file.read(4) != ZIP_MAGIC:
            raise ModelFileError("not an .npz archive")
        file.seek(0, 2)
        file_size = file.tell()
    arrays, names = {}, set()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            names.add(name)
            if name in keys:
                arrays[name] = _read_member(archive, info, file_size)
    return arrays, names


def _read_member(archive, info, file_size):
    """One .npy member -> array, checking its claims before allocating anything."""
    if info.compress_size > file_size or info.file_size > MAX_DEFLATE_RATIO * info.compress_size:
        raise ModelFileError(f"{info.filename} claims more bytes than the file holds")
    with archive.open(info) as member:
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
        data = _read_exactly(member, n_bytes)
    if data is None:
        raise ModelFileError(f"{info.filename} is truncated")
    if not n_bytes:
        return np.zeros(shape, dtype=dtype)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")


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
        return readers[version](member)
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(f"{name} has a damaged array header: {first_line}") from None
