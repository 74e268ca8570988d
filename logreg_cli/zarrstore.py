"""Zarr v3 feature stores: what `logreg flatten DATA -o features.zarr` writes, read by
train/evaluate/predict like an .npz feature file and by each Dask worker for its shard.

The store is a Zarr v3 group (a folder, or a URL where zarr supports one):
    X        uint8 m x n, uncompressed, chunks of rows_per_chunk(n) whole rows (16-32 MB)
    y        int64 m, the label of each row (indexes classes); chunked like X's rows
    valid    bool m, False for a row whose image could not be decoded (its X row is zeros
             and it is never trained on); chunked like X's rows
    paths    string m, the source file of each row
    classes  string k, the class names
    size     int64 [H, W]
and group attributes: "metadata", the same JSON object an .npz feature file carries
(format, format_version, images, size, class_counts, source, ...), and "complete", written
LAST, once every array is whole: a store without it is refused as incomplete.

zarr is imported only inside the functions that need it (`logreg --help` and predict on
images never import it); a missing zarr is one line naming the store and the extra to install.
"""

import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from .errors import ModelFileError

STORE_FORMAT = "logreg-features"
STORE_FORMAT_VERSION = 1
CHUNK_BYTES = 24 << 20  # X's chunks hold this many bytes of whole rows (at least one row)
COMPLETE = "complete"
ROW_ARRAYS = ("X", "y", "valid", "paths")  # one entry per row
ARRAY_NAMES = ROW_ARRAYS + ("classes", "size")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def rows_per_chunk(n):
    """Rows of X per chunk for n features: max(1, 24 MB // n)."""
    return max(1, CHUNK_BYTES // max(int(n), 1))


def is_url(location):
    """True when location (str or Path) is a URL such as file:///data/x.zarr or s3://b/x.zarr."""
    return bool(URL_PATTERN.match(str(location)))


def is_store(location):
    """True when location names a Zarr store rather than a file or an image folder: a URL,
    or a folder holding zarr.json or named *.zarr (so that a damaged one is refused as a
    store, by name). Looks at names and the file system only; never imports zarr."""
    text = str(location)
    if is_url(text):
        return True
    path = Path(text)
    try:
        return path.is_dir() and (path.suffix.lower() == ".zarr" or (path / "zarr.json").is_file())
    except OSError:
        return False


def local_path(location):
    """The local folder of location (a plain path or a file:// URL), or None for other URLs."""
    text = str(location)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    return None if is_url(text) else Path(text)


def open_zarr(location):
    """The zarr module, or LogregError naming location and how to install the extra."""
    from . import extras

    return extras.require("zarr", str(location))


class FeatureStore:
    """A complete, checked feature store opened for reading.

    m, n: rows and features; classes (list of str), size (width, height), metadata (dict);
    y (m int64), valid (m bool) and paths (list of m str) are read when first asked for.
    rows(start, stop) reads rows of X straight from the chunks. Every problem raises
    ModelFileError in one line naming the store.
    """

    def __init__(self, location, group):
        self.location = str(location)
        self._group = group
        self._arrays = _checked_arrays(self.location, group)
        self.X = self._arrays["X"]
        self.m, self.n = self.X.shape
        self.chunk_rows = self.X.chunks[0]
        height, width = self._size()
        self.size = (width, height)
        self.classes = self._strings("classes")
        self.metadata = dict(group.attrs.get("metadata") or {})
        self._y = self._valid = self._paths = None

    def _error(self, cause):
        return ModelFileError(f"{self.location}: {cause}")

    def _read(self, name, selection=slice(None)):
        try:
            return self._arrays[name][selection]
        except (OSError, ValueError, KeyError, TypeError) as error:
            cause = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise self._error(f"damaged store ({name}: {cause})") from None

    def _size(self):
        size = self._read("size")
        if size.dtype.kind not in "iu" or size.shape != (2,) or size.min() < 1:
            raise self._error("size must be two positive integers (H, W)")
        height, width = (int(value) for value in size)
        if self.n != height * width * 3:
            raise self._error(f"X must be m x {height * width * 3} uint8 (size {width}x{height}), "
                              f"got {self.m} x {self.n}")
        return height, width

    def _strings(self, name):
        return [str(value) for value in self._read(name).tolist()]

    @property
    def y(self):
        if self._y is None:
            y = self._read("y").astype(np.int64)
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise self._error(f"y must index the {len(self.classes)} classes")
            self._y = y
        return self._y

    @property
    def valid(self):
        if self._valid is None:
            self._valid = np.asarray(self._read("valid"), dtype=bool)
        return self._valid

    @property
    def paths(self):
        if self._paths is None:
            self._paths = self._strings("paths")
        return self._paths

    def rows(self, start, stop):
        """Rows start..stop of X (all rows, valid or not): a (stop - start) x n uint8 array."""
        if not 0 <= start <= stop <= self.m:
            raise IndexError(f"rows {start}..{stop} outside 0..{self.m}")
        return np.ascontiguousarray(self._read("X", slice(start, stop)), dtype=np.uint8)

    def take(self, rows):
        """Rows of X at the given sorted indices: len(rows) x n uint8."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if not len(rows):
            return np.empty((0, self.n), dtype=np.uint8)
        if rows.min() < 0 or rows.max() >= self.m:
            raise IndexError(f"row index out of range 0..{self.m - 1}")
        # one read per run of consecutive rows (a loop over reads, not over pixels)
        out = np.empty((len(rows), self.n), dtype=np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            start = int(rows[first])
            out[first:last] = self.rows(start, start + int(last - first))
        return out


def open_store(location):
    """Open the feature store at location (a folder or URL) -> FeatureStore.

    Raises LogregError when zarr is not installed (or the Python is too old for it), and
    ModelFileError naming location when it is not a Zarr group, has no completion marker
    ("incomplete store"), or lacks an array or has one of the wrong dtype or shape.
    """
    zarr = open_zarr(location)
    where = str(location)
    try:
        group = zarr.open_group(where, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.NodeTypeValidationError) as error:
        raise ModelFileError(f"{where}: not a Zarr v3 feature store ({_first_line(error)})") \
            from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{where}: not a readable Zarr store ({_first_line(error)})") \
            from None
    attributes = group.attrs
    if attributes.get(COMPLETE) is not True:
        have = sorted(name for name in ARRAY_NAMES if name in _members(group))
        raise ModelFileError(f"{where}: incomplete store (no completion marker: its writing did "
                             f"not finish; arrays present: {', '.join(have) or 'none'}); "
                             "write it again with `logreg flatten`")
    metadata = attributes.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != STORE_FORMAT:
        raise ModelFileError(f"{where}: not a logreg feature store (its metadata does not say "
                             f"format {STORE_FORMAT!r})")
    return FeatureStore(where, group)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _members(group):
    try:
        return {name for name, _ in group.members()}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


EXPECTED = {  # name -> (numpy kinds allowed, what it must be)
    "X": ("u", "m x n uint8"),
    "y": ("iu", "m integer labels"),
    "valid": ("b", "m booleans"),
    "paths": ("TUO", "m strings"),
    "classes": ("TUO", "k strings"),
    "size": ("iu", "two integers (H, W)"),
}


def _checked_arrays(where, group):
    """name -> zarr array for ARRAY_NAMES, each of the dtype and shape the format says."""
    members = dict(group.members())
    missing = [name for name in ARRAY_NAMES if name not in members]
    if missing:
        raise ModelFileError(f"{where}: damaged store (missing {', '.join(missing)})")
    arrays = {}
    for name in ARRAY_NAMES:
        array = members[name]
        kinds, what = EXPECTED[name]
        dtype = _numpy_dtype(array)
        if not hasattr(array, "shape") or not hasattr(array, "dtype") or dtype is None:
            raise ModelFileError(f"{where}: damaged store ({name} is a group, not an array)")
        ndim = 2 if name == "X" else 1
        if dtype.kind not in kinds or len(array.shape) != ndim or (name == "X" and dtype != np.uint8):
            raise ModelFileError(f"{where}: {name} must be {what}, got {dtype} "
                                 f"{tuple(array.shape)}")
        arrays[name] = array
    m = arrays["X"].shape[0]
    for name in ROW_ARRAYS[1:]:
        if arrays[name].shape != (m,):
            raise ModelFileError(f"{where}: {name} must have one entry per row of X ({m}), "
                                 f"got shape {tuple(arrays[name].shape)}")
    return arrays


def _numpy_dtype(array):
    try:
        return np.dtype(array.dtype)
    except TypeError:
        return None


# ---------------------------------------------------------------- writing


class StoreWriter:
    """Writes a feature store of m rows of n features; the store is complete (readable)
    only after finish().

    location: the final folder or URL. A local store (a path or file:// URL) is written in a
    temporary folder beside it, `.{name}.{random}.tmp`, and renamed into place by finish(),
    so an existing store at location is replaced only by a complete one; a store at another
    URL is written in place (there is no rename on object storage), its completion marker
    last. write_rows(start, X, y, valid) writes rows start.. (whole chunks, except the last).
    """

    def __init__(self, location, m, n, zarr=None):
        self.zarr = zarr or open_zarr(location)
        self.location = str(location)
        self.m, self.n = int(m), int(n)
        self.chunk_rows = rows_per_chunk(n)
        final = local_path(location)
        self.final = final
        self.target = self.location if final is None else str(_temporary_beside(final))
        self.group = create_group(self.zarr, self.target, self.m, self.n)

    def write_rows(self, start, X, y, valid):
        """Write rows start..start+len(X): X (uint8 rows x n), y (ints), valid (bools)."""
        write_chunk(self.group, start, X, y, valid)

    def finish(self, classes, paths, size, metadata, y=None):
        """Write the small arrays, then the metadata and the completion marker LAST, then
        (for a local store) rename it into place. y, if given, replaces all the labels."""
        finish_group(self.group, classes, paths, size, metadata, y)
        if self.final is not None:
            _replace_folder(Path(self.target), self.final)

    def discard(self):
        """Remove the temporary store (a local one; a URL's is left, refused as incomplete)."""
        if self.final is not None:
            shutil.rmtree(self.target, ignore_errors=True)


def create_group(zarr, target, m, n):
    """A new Zarr v3 group at target with X, y and valid created (empty) for m x n rows."""
    chunk_rows = rows_per_chunk(n)
    group = zarr.open_group(target, mode="w", zarr_format=3)
    group.create_array("X", shape=(m, n), chunks=(chunk_rows, n), dtype="uint8",
                       compressors=None, fill_value=0)
    group.create_array("y", shape=(m,), chunks=(chunk_rows,), dtype="int64", compressors=None,
                       fill_value=0)
    group.create_array("valid", shape=(m,), chunks=(chunk_rows,), dtype="bool",
                       compressors=None, fill_value=False)
    return group


def write_chunk(group, start, X, y, valid):
    """Rows start.. of X, y and valid written into an open group (a worker's own chunk)."""
    stop = start + len(X)
    group["X"][start:stop] = np.asarray(X, dtype=np.uint8)
    group["y"][start:stop] = np.asarray(y, dtype=np.int64)
    group["valid"][start:stop] = np.asarray(valid, dtype=bool)


def finish_group(group, classes, paths, size, metadata, y=None):
    """The small arrays, the metadata, and the completion marker last."""
    width, height = size
    if y is not None:
        group["y"][:] = np.asarray(y, dtype=np.int64)
    group.create_array("paths", data=_string_array(paths), compressors=None)
    group.create_array("classes", data=_string_array(classes), compressors=None)
    group.create_array("size", data=np.array([height, width], dtype=np.int64), compressors=None)
    info = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, **metadata}
    group.attrs.update({"metadata": info})
    group.attrs.update({COMPLETE: True})


def _string_array(values):
    """values as numpy's variable-length strings (zarr's stable v3 string type)."""
    return np.array([str(value) for value in values], dtype=np.dtypes.StringDType())


def _temporary_beside(final):
    return final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"


def _replace_folder(new, final):
    """Put the complete store new at final: a plain rename when final does not exist, else
    the old one is renamed aside first and removed after (readers that opened it keep it)."""
    if final.exists() or final.is_symlink():
        if not final.is_dir() or final.is_symlink():
            raise ModelFileError(f"{final}: exists and is not a feature store; not replaced")
        old = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.old"
        final.rename(old)
        new.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(final)
