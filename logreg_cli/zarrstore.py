"""Zarr v3 feature stores: what `logreg flatten DATA -o features.zarr` writes, read by
train/evaluate/predict like an .npz feature file and by each Dask worker for its shard.

The store is a Zarr v3 group (a folder, or a URL where zarr supports one):
    X        uint8 m x n, uncompressed, chunks of rows_per_chunk(n) whole rows (16-32 MB)
    y        int64 m, the label of each row (indexes classes; -1 on a row that is not
             valid); chunked like X's rows
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

import os
import re
from pathlib import Path

import numpy as np

from .errors import LogregError, ModelFileError, first_line

STORE_FORMAT = "logreg-features"
STORE_FORMAT_VERSION = 1
CHUNK_BYTES = 24 << 20  # X's chunks hold this many bytes of whole rows (at least one row)
COMPLETE = "complete"
NO_LABEL = -1  # y of a row that is not valid (its image could not be read)
ROW_ARRAYS = ("X", "y", "valid", "paths")  # one entry per row
ARRAY_NAMES = ROW_ARRAYS + ("classes", "size")
# a scheme of two letters or more (C:/ is a drive), then one slash or more
URL_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")


def rows_per_chunk(n):
    """Rows of X per chunk for n features: max(1, 24 MB // n)."""
    return max(1, CHUNK_BYTES // max(int(n), 1))


def is_url(location):
    """True when location (str or Path) is a URL such as file:///data/x.zarr or s3://b/x.zarr,
    also as click's Path leaves one (file:/data/x.zarr: pathlib folds the slashes)."""
    text = str(location)
    return bool(URL_PATTERN.match(text)) and not os.path.lexists(text)


def store_location(location):
    """location as zarr opens it: a path as given, a URL with its '//' put back."""
    text = str(location)
    if not is_url(text):
        return text
    match = URL_PATTERN.match(text)
    scheme, rest = match.group(1), text[match.end():].lstrip("/")
    return f"file:///{rest}" if scheme.lower() == "file" else f"{scheme}://{rest}"


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
    text = store_location(location)
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
        for name, array in self._arrays.items():
            _check_every_chunk_stored(self.location, name, array)
        self.classes = self._strings("classes")
        self.metadata = dict(group.attrs.get("metadata") or {})
        self._y = self._valid = self._paths = None
        self._cached_chunk = None

    def _error(self, cause):
        return ModelFileError(f"{self.location}: {cause}")

    def _read(self, name, selection=slice(None)):
        try:
            return self._arrays[name][selection]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise self._error(f"damaged store ({name}: {first_line(error)})") from None

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
            labels = y[self.valid]
            if len(y) and (y.min() < NO_LABEL or y.max() >= len(self.classes)
                           or (len(labels) and labels.min() < 0)):
                raise self._error(f"y must index the {len(self.classes)} classes "
                                  f"({NO_LABEL} only on rows that are not valid)")
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
        """Rows start..stop of X (all rows, valid or not): a (stop - start) x n uint8 array.

        zarr reads a whole chunk to give any of its rows (24 MB for one row of 12 KB), so
        the chunk last read is kept: streaming a few MB at a time, or gathering sorted rows,
        reads each chunk once, not once per block.
        """
        if not 0 <= start <= stop <= self.m:
            raise IndexError(f"rows {start}..{stop} outside 0..{self.m}")
        out = np.empty((stop - start, self.n), dtype=np.uint8)
        step = self.chunk_rows
        for first in range(start - start % step, stop, step):
            chunk = self._chunk(first // step)
            low, high = max(start, first), min(stop, first + step)
            out[low - start : high - start] = chunk[low - first : high - first]
        return out

    def _chunk(self, index):
        """Chunk index of X (its rows, uint8), read once and kept until another is asked for."""
        cached = self._cached_chunk  # (index, rows); replaced whole, so safe across threads
        if cached is None or cached[0] != index:
            step = self.chunk_rows
            rows = self._read("X", slice(index * step, min((index + 1) * step, self.m)))
            cached = self._cached_chunk = (index, np.asarray(rows, dtype=np.uint8))
        return cached[1]

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


class StoreRows:
    """The valid rows of a store's X, read on demand: looks like a read-only m x n uint8
    array (shape, dtype, len, iteration, indexing by an int, a slice or sorted row indices)
    to RowBlocks, the model and the evaluation, as features.FileRows does for an .npz.
    Positions count valid rows only (what train sees); a Dask worker reading its shard
    makes StoreRows(open_store(location)) too, so positions mean the same there."""

    dtype = np.dtype(np.uint8)
    ndim = 2

    def __init__(self, store):
        self.store = store
        valid = store.valid
        self.index = None if valid.all() else np.flatnonzero(valid)  # store row of each row
        self.shape = (store.m if self.index is None else len(self.index), store.n)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            position = range(len(self))[key]
            return self[position : position + 1][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("StoreRows reads contiguous slices only")
            if self.index is None:
                return self.store.rows(start, max(start, stop))
            return self.store.take(self.index[start:stop])
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        return self.store.take(rows if self.index is None else self.index[rows])

    def __iter__(self):
        """Row after row, read a chunk at a time."""
        step = self.store.chunk_rows
        for start in range(0, len(self), step):
            yield from self[start : start + step]

    def __array__(self, dtype=None, copy=None):
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)


def open_store(location):
    """Open the feature store at location (a folder or URL) -> FeatureStore.

    Raises LogregError when zarr is not installed (or the Python is too old for it), and
    ModelFileError naming location when it is not a Zarr group, has no completion marker
    ("incomplete store"), or lacks an array or has one of the wrong dtype or shape.
    """
    zarr = open_zarr(location)
    where = store_location(location)
    reading = _reading_store(zarr, where)
    try:
        group = open_group(zarr, reading, "r")
    except (FileNotFoundError, zarr.errors.NodeTypeValidationError) as error:
        raise ModelFileError(f"{where}: not a Zarr v3 feature store "
                             f"({_cause(error, reading, where)})") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{where}: not a readable Zarr store "
                             f"({_cause(error, reading, where)})") from None
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


def _reading_store(zarr, where):
    """What zarr reads the store at where through: for a local folder, a StrictLocalStore
    pinned to the folder itself (/proc/self/fd/N on Linux), so that a store renamed over it
    meanwhile (`logreg flatten -o` again) is not mixed into the rows being read, and a chunk
    file gone (deleted, or the old store removed) is an error, not rows of zeros; a URL as
    it is (zarr's fsspec store)."""
    folder = local_path(where)
    if folder is None:
        return where
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return where  # not a folder, or unreadable: open_group says which, by name
    pinned = Path(f"/proc/self/fd/{descriptor}")
    if not pinned.is_dir():  # no /proc: read by name
        os.close(descriptor)
        pinned, descriptor = folder, None
    store = _strict_store_class(zarr)(pinned, read_only=True)
    store.descriptor = descriptor  # closed with the store (weakref.finalize)
    if descriptor is not None:
        import weakref

        weakref.finalize(store, os.close, descriptor)
    return store


def _cause(error, reading, where):
    """zarr's message for a store it could not open, naming the store as the user did (not
    the pinned /proc/self/fd/N folder); a Zarr v2 store is said to be one."""
    text = first_line(error)
    if not isinstance(reading, str):
        text = text.replace(repr(reading), repr(where)).replace(f"file://{reading.root}", where)
    folder = local_path(where)
    if folder is not None and (folder / ".zgroup").is_file():
        return "a Zarr v2 store: logreg reads the Zarr v3 stores `logreg flatten` writes"
    return text


_STRICT_STORE = []  # the class, made once zarr is imported


def _strict_store_class(zarr):
    """zarr's LocalStore, but a chunk file that is not there raises FileNotFoundError:
    zarr reads a missing chunk as its fill value (zeros, labels 0, rows not valid)."""
    if not _STRICT_STORE:
        class StrictLocalStore(zarr.storage.LocalStore):
            async def get(self, key, prototype=None, byte_range=None):
                value = await super().get(key, prototype, byte_range)
                if value is None and "/c/" in f"/{key}" and not key.endswith("zarr.json"):
                    raise FileNotFoundError(f"chunk file {key} missing (the store was "
                                            "deleted or replaced while being read)")
                return value

        _STRICT_STORE.append(StrictLocalStore)
    return _STRICT_STORE[0]


def open_group(zarr, where, mode):
    """zarr.open_group(where, mode) in Zarr v3; a URL whose fsspec backend is not installed
    (s3:// without s3fs) raises LogregError in one line saying what to install."""
    try:
        return zarr.open_group(where, mode=mode, zarr_format=3)
    except ImportError as error:
        raise _missing_backend(where, error) from None


def _check_backend(url):
    """Raise LogregError now, before any work, when the fsspec backend of url is missing."""
    where = store_location(url)
    try:
        import fsspec

        fsspec.get_filesystem_class(URL_PATTERN.match(where).group(1))
    except ImportError as error:
        raise _missing_backend(where, error) from None
    except ValueError as error:  # a protocol fsspec does not know
        raise ModelFileError(f"{where}: not a writable Zarr store ({first_line(error)})") \
            from None


def _missing_backend(where, error):
    return LogregError(f"{where}: cannot open this URL ({first_line(error)}); its fsspec "
                       "backend is yours to install (e.g. pip install s3fs for s3://)")


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
    members, missing = {}, []
    for name in ARRAY_NAMES:
        try:
            members[name] = group[name]
        except KeyError:
            missing.append(name)
        except (OSError, ValueError, TypeError) as error:  # its zarr.json is damaged
            raise ModelFileError(f"{where}: damaged store ({name}: {first_line(error)})") \
                from None
    if missing:
        raise ModelFileError(f"{where}: damaged store (missing {', '.join(missing)})")
    arrays = {}
    for name in ARRAY_NAMES:
        array = members[name]
        kinds, what = EXPECTED[name]
        if not hasattr(array, "dtype"):
            raise ModelFileError(f"{where}: damaged store ({name} is a group, not an array)")
        dtype = _numpy_dtype(array)
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


def _check_every_chunk_stored(where, name, array):
    """Refuse an array with a chunk file missing: zarr reads a missing chunk as its fill
    value, so a lost or deleted chunk of X would train silently on rows of zeros (and one of
    valid or y would drop or relabel rows). The writers store every chunk, empty or not."""
    try:
        stored = array.nchunks_initialized
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{where}: damaged store ({name}: {first_line(error)})") from None
    if stored < array.nchunks:
        raise ModelFileError(f"{where}: damaged store ({name}: {array.nchunks - stored} of its "
                             f"{array.nchunks} chunk files missing); write it again with "
                             "`logreg flatten`")


def _numpy_dtype(array):
    try:
        return np.dtype(array.dtype)
    except TypeError:  # a zarr data type numpy has no name for
        return np.dtype(object)


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

    def __init__(self, location, m, n):
        self.zarr = open_zarr(location)
        self.location = store_location(location)
        self.m, self.n = int(m), int(n)
        self.chunk_rows = rows_per_chunk(n)
        final = local_path(location)
        self.final = final
        self.target = self.location if final is None else str(_temporary_beside(final))
        try:
            self.group = create_group(self.zarr, self.target, self.m, self.n)
        except OSError as error:
            self.discard()
            raise cannot_write(self.location, error) from None

    def write_rows(self, start, X, y, valid):
        """Write rows start..start+len(X): X (uint8 rows x n), y (ints), valid (bools)."""
        try:
            write_chunk(self.group, start, X, y, valid)
        except OSError as error:
            raise cannot_write(self.location, error) from None

    def finish(self, classes, paths, size, metadata, y=None):
        """Write the small arrays, then the metadata and the completion marker LAST, then
        (for a local store) rename it into place. y, if given, replaces all the labels."""
        try:
            finish_group(self.group, classes, paths, size, metadata, y)
            if self.final is not None:
                _replace_folder(Path(self.target), self.final)
        except OSError as error:
            raise cannot_write(self.location, error) from None

    def discard(self):
        """Remove the temporary store (a local one; a URL's is left, refused as incomplete)."""
        if self.final is not None:
            import shutil

            shutil.rmtree(self.target, ignore_errors=True)


def cannot_write(location, error):
    """LogregError naming the store for an OSError while writing it (no permission, disk
    full, the folder gone): one line, the store's own name (not its temporary folder's)."""
    return LogregError(f"{location}: cannot write ({error.strerror or first_line(error)})")


def create_group(zarr, target, m, n):
    """A new Zarr v3 group at target with X, y and valid created (empty) for m x n rows."""
    chunk_rows = rows_per_chunk(n)
    group = open_group(zarr, target, "w")
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
    _every_chunk(group, "X")[start:stop] = np.asarray(X, dtype=np.uint8)
    _every_chunk(group, "y")[start:stop] = np.asarray(y, dtype=np.int64)
    _every_chunk(group, "valid")[start:stop] = np.asarray(valid, dtype=bool)


# zarr skips a chunk equal to the fill value (all zeros, labels all 0, valid all False), and
# reads a missing chunk as that value: the writers store every chunk, so that a reader can
# tell a chunk file lost or deleted from a chunk of zeros (_check_every_chunk_stored).
WRITE_EVERY_CHUNK = {"write_empty_chunks": True}


def _every_chunk(group, name):
    """The array name of group, set to store every chunk it is given."""
    return group[name].with_config(WRITE_EVERY_CHUNK)


def finish_group(group, classes, paths, size, metadata, y=None):
    """The small arrays, the metadata, and the completion marker last."""
    width, height = size
    if y is not None:
        _every_chunk(group, "y")[:] = np.asarray(y, dtype=np.int64)
    group.create_array("paths", data=_string_array(paths), compressors=None,
                       config=WRITE_EVERY_CHUNK)
    group.create_array("classes", data=_string_array(classes), compressors=None,
                       config=WRITE_EVERY_CHUNK)
    group.create_array("size", data=np.array([height, width], dtype=np.int64), compressors=None,
                       config=WRITE_EVERY_CHUNK)
    info = {"format": STORE_FORMAT, "format_version": STORE_FORMAT_VERSION, **metadata}
    group.attrs.update({"metadata": info})
    group.attrs.update({COMPLETE: True})


def _string_array(values):
    """values as numpy's variable-length strings (zarr's stable v3 string type)."""
    return np.array([str(value) for value in values], dtype=np.dtypes.StringDType())


def _temporary_beside(final):
    return final.parent / f".{final.name}.{os.urandom(4).hex()}.tmp"


def _replace_folder(new, final):
    """Put the complete store new at final: a plain rename when final does not exist, else
    the old one is renamed aside first and removed after (readers that opened it keep it)."""
    if final.exists() or final.is_symlink():
        if not final.is_dir() or final.is_symlink():
            raise ModelFileError(f"{final}: exists and is not a feature store; not replaced")
        old = final.parent / f".{final.name}.{os.urandom(4).hex()}.old"
        final.rename(old)
        new.rename(final)
        import shutil

        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(final)


# ---------------------------------------------------------------- flatten into a store


def is_store_name(location):
    """True when an output location names a Zarr store: a URL or a name ending in .zarr."""
    return is_url(location) or Path(str(location)).suffix.lower() == ".zarr"


def check_store_output(location, data):
    """Refuse, before any work, a store output that must not be written: an existing folder
    or file at location that is not a Zarr store (it would be deleted), or DATA itself."""
    path = local_path(location)
    if path is None:
        _check_backend(location)
        return
    if path.is_symlink() or (path.exists()
                             and not (path.is_dir() and (path / "zarr.json").is_file())):
        what = ("a symlink" if path.is_symlink() else
                "a folder, not a Zarr store" if path.is_dir() else "a file, not a Zarr store")
        raise ModelFileError(f"{location}: exists and is {what}; not replaced (remove it or "
                             "write elsewhere)")
    source = local_path(data) if is_url(data) else Path(str(data))
    if source is not None and path.exists() and os.path.realpath(source) == os.path.realpath(path):
        raise ModelFileError(f"{location}: --output would replace the DATA this command "
                             "reads; write to another store")


def decode_chunk(paths, size, jobs=None, on_error=None, on_image=None):
    """Decode one chunk of image files -> (X len(paths) x n uint8, valid bools): the row of
    a file that cannot be read is zeros and not valid (on_error(ImageError) is told, in path
    order)."""
    from .images import load_images

    decoded, kept = load_images(paths, size, jobs=jobs, on_error=on_error, on_image=on_image)
    valid = np.zeros(len(paths), dtype=bool)
    valid[kept] = True
    if valid.all():
        return decoded, valid  # no second chunk-sized buffer when every image was read
    X = np.zeros((len(paths), size[0] * size[1] * 3), dtype=np.uint8)
    X[kept] = decoded
    return X, valid


class Flattened:
    """What a flatten into a store wrote: m rows (images read = valid rows), n features,
    skipped (the ImageErrors of files not read, strays included), classes."""

    def __init__(self, images, n, skipped, classes):
        self.images, self.n, self.skipped, self.classes = images, n, skipped, classes


def flatten_images(data, location, size, metadata, jobs=None, on_error=None, on_image=None,
                   on_total=None, client=None):
    """Decode the images of data (a class folder or labels file) into a new store at
    location, one chunk of rows at a time (never all of X in memory) -> Flattened.

    Rows follow the listed files; a file that cannot be read keeps its row, not valid.
    on_error(ImageError) may raise (--strict): the unfinished store is then removed. Classes
    none of whose images could be read are left out (told to on_error), as flatten to .npz
    does. metadata: flatten's own (source, logreg_version, created), completed here.
    client: a distributed.Client whose workers decode one chunk per task and write it into
    the store themselves (they must reach the images and the store at the same paths); the
    failures still reach on_error here in path order. Raises DataError when no image could
    be read.
    """
    from .dataset import (ClassLeftOut, LinkSkipped, _leave_out_unread_classes, class_counts,
                          list_data)
    from .errors import DataError

    paths, labels, classes, strays = list_data(data)
    for stray in strays:
        if on_error is not None:
            on_error(stray)
    # skipped counts files; a class left out or a link not followed is no file
    skipped = [error for error in strays if not isinstance(error, (ClassLeftOut, LinkSkipped))]

    def skip(error):
        skipped.append(error)
        if on_error is not None:
            on_error(error)

    if on_total is not None:
        on_total(len(paths))
    writer = StoreWriter(location, len(paths), size[0] * size[1] * 3)
    try:
        bounds = [(start, min(start + writer.chunk_rows, len(paths)))
                  for start in range(0, len(paths), writer.chunk_rows)]
        if client is None:
            chunks = _decode_here(writer, paths, labels, size, bounds, jobs, skip, on_image)
        else:
            chunks = _decode_on_workers(client, writer, paths, labels, size, bounds, skip,
                                        on_image)
        valid = np.concatenate(list(chunks)) if bounds else np.zeros(0, dtype=bool)
        if not valid.any():
            raise DataError(f"{data}: none of the {len(paths)} image files could be read")
        y, kept_classes, unread = _leave_out_unread_classes(Path(data), paths, labels,
                                                            labels[valid], classes)
        for error in unread:
            if on_error is not None:
                on_error(error)
        all_y = np.full(len(paths), NO_LABEL, dtype=np.int64)
        all_y[valid] = y
        width, height = size
        info = {"images": int(valid.sum()), "size": f"{width}x{height}",
                "class_counts": class_counts(y, kept_classes), **metadata,
                "skipped": [str(error) for error in skipped]}
        writer.finish(kept_classes, [str(path) for path in paths], size, info,
                      y=all_y if unread else None)  # y re-indexed when classes were left out
    except BaseException:
        writer.discard()
        raise
    return Flattened(int(valid.sum()), size[0] * size[1] * 3, skipped, kept_classes)


def _decode_here(writer, paths, labels, size, bounds, jobs, on_error, on_image):
    """Yield each chunk's valid flags, in order, having decoded and written it here."""
    for start, stop in bounds:
        X, valid = decode_chunk(paths[start:stop], size, jobs, on_error, on_image)
        writer.write_rows(start, X, _labels_of(labels[start:stop], valid), valid)
        yield valid


def _labels_of(labels, valid):
    """y of a chunk: the label of each row, NO_LABEL where its image could not be read."""
    return np.where(valid, labels, NO_LABEL)


def _decode_on_workers(client, writer, paths, labels, size, bounds, on_error, on_image):
    """Yield each chunk's valid flags, in order, decoded and written by a worker (one task
    per chunk); each chunk's failures go to on_error in path order as its turn comes.

    The store goes to the workers by its absolute path (they need not share this cwd).
    No worker (none joined, or all lost) or a lost scheduler is a LogregError in one line
    after cluster.CONNECT_TIMEOUT seconds, never a hang; a chunk that fails on its workers
    is one too. When this stops early (--strict, Ctrl-C, an error), the tasks not yet
    started are told to do nothing (a Dask Event) and the running ones are waited for, so
    that none writes into the store after the caller has removed it (a cancelled Dask task
    still runs to its end).
    """
    import distributed

    from .distributed import worker_addresses
    from .errors import ImageError

    worker_addresses(client)
    target = writer.target if writer.final is None else os.path.abspath(writer.target)
    abort = distributed.Event(f"logreg-flatten-abort-{os.urandom(8).hex()}", client=client)
    futures = [client.submit(decode_into_store, target, start,
                             [os.path.abspath(path) for path in paths[start:stop]],
                             labels[start:stop], size, abort.name, pure=False)
               for start, stop in bounds]
    finished = False
    try:
        for (start, stop), future in zip(bounds, futures):
            valid, failures = _chunk_result(client, future, paths[start], paths[stop - 1],
                                            writer.location)
            for offset, problem in failures:
                on_error(ImageError(paths[start + offset], problem))
            if on_image is not None:
                for _ in range(stop - start):
                    on_image()
            yield valid
        finished = True
    finally:
        if not finished:
            _stop_chunks(client, abort, futures)


def _chunk_result(client, future, first_path, last_path, location):
    """A decode_into_store task's result, waited for while the scheduler and at least one
    worker are there; LogregError in one line when they are not, when the worker could not
    write the store at location (cannot_write), or when the task failed on its workers (the
    LogregErrors it raised itself pass through)."""
    from concurrent.futures import CancelledError

    from distributed import TimeoutError
    from distributed.scheduler import KilledWorker

    from .cluster import CONNECT_TIMEOUT
    from .distributed import check_scheduler, worker_addresses

    while True:
        try:
            return future.result(timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            worker_addresses(client)  # raises when the scheduler or every worker is gone
        except LogregError:
            raise
        except (OSError, RuntimeError, KilledWorker, CancelledError) as error:
            check_scheduler(client)
            if isinstance(error, OSError) and error.strerror:  # the worker could not write
                raise cannot_write(location, error) from None
            raise LogregError(f"--scheduler: the images {first_path} .. {last_path} could "
                              f"not be decoded into the store on a worker "
                              f"({first_line(error)})") from None


def _stop_chunks(client, abort, futures):
    """Tell the chunks not started to do nothing and wait for the running ones while a
    worker is there to run them; then drop them all. A scheduler or workers gone leave
    nothing running that could still write."""
    import distributed

    from .cluster import CONNECT_TIMEOUT
    from .distributed import worker_addresses

    try:
        abort.set()
        while True:
            try:
                distributed.wait(futures, timeout=CONNECT_TIMEOUT)
                break
            except distributed.TimeoutError:
                worker_addresses(client)
        client.cancel(futures)
        abort.clear()
    except (OSError, LogregError):
        pass


def decode_into_store(target, start, paths, labels, size, abort_event=None):
    """On a worker: decode one chunk of image files and write rows start.. of X, y and valid
    into the store at target -> (valid flags, [(offset in the chunk, cause)] of failures);
    None, untouched, when the Dask Event named abort_event is set (the flatten stopped)."""
    if abort_event is not None:
        import distributed

        if distributed.Event(abort_event).is_set():
            return None
    problems = []  # in path order: the i-th is that of the i-th row not valid
    X, valid = decode_chunk(paths, size, jobs=1,
                            on_error=lambda error: problems.append(error.problem))
    group = open_group(open_zarr(target), target, "r+")
    write_chunk(group, start, X, _labels_of(labels, valid), valid)
    return valid, list(zip(np.flatnonzero(~valid).tolist(), problems))


def convert_features(data, location, metadata):
    """Copy a feature file or store (its valid rows) into a new store at location, a chunk
    of rows at a time -> Flattened. Its own metadata is kept (source included, so that
    --val-split draws the same rows), with converted_from and the new created added."""
    from .dataset import converted_metadata
    from .features import open_feature_file

    features = open_feature_file(data)
    m, n = features.X.shape
    writer = StoreWriter(location, m, n)
    try:
        for start in range(0, m, writer.chunk_rows):
            stop = min(start + writer.chunk_rows, m)
            writer.write_rows(start, features.X[start:stop], features.y[start:stop],
                              np.ones(stop - start, dtype=bool))
        info = {**converted_metadata(features.metadata, data, metadata.get("created")),
                "images": m}
        writer.finish(features.classes, features.paths, features.size, info)
    except BaseException:
        writer.discard()
        raise
    return Flattened(m, n, [], features.classes)
