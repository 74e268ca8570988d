"""A .npy header is parsed by numpy as a Python literal: an invalid escape in a hostile header
made Python warn (DeprecationWarning, a SyntaxWarning printed on stderr from Python 3.12)."""

import io
import warnings

import numpy as np
import pytest

from logreg_cli.errors import ModelFileError
from logreg_cli.npzfile import read_npy_header


def npy_with_header(text):
    text = text + " " * (127 - 10 - len(text)) + "\n"
    return io.BytesIO(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode())


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': '\\ '}",
    "{'descr': '<f\\4', 'fortran_order': False, 'shape': (2,), }",
])
def test_an_invalid_escape_in_a_header_is_refused_without_a_warning(header):
    member = npy_with_header(header)
    np.lib.format.read_magic(member)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ModelFileError, match="w.npy has a damaged array header"):
            read_npy_header(member, (1, 0), "w.npy")
    assert [str(warning.message) for warning in caught] == []


def test_a_python_2_style_header_is_read_without_numpys_warning():
    """numpy re-parses a header with `2L` in it and warns ("created on Python 2") on stderr."""
    member = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }")
    np.lib.format.read_magic(member)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shape, _, dtype = read_npy_header(member, (1, 0), "w.npy")
    assert (shape, dtype) == ((2,), np.dtype("<f4"))
    assert [str(warning.message) for warning in caught] == []
