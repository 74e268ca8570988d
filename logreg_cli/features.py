"""Pixels -> the float32 features the core reads, next to the data they come from.

Rows of uint8 pixels (X m x n, n = H * W * 3) become features x = pixel / 255, or
(pixel - mean) / scale per feature (--standardize). A feature file's X stays on disk
(FileRows) and is read in row blocks (RowBlocks) when it does not fit in memory.
numpy only; no click, no printing.
"""

import os
import resource
import weakref
from pathlib import Path

import numpy as np

from .core import KERNEL_BYTES
from .errors import DataError

# In memory when uint8 X (times this, plus the overhead below) fits in the memory the
# process may use; the fused kernel never makes a float32 copy of X.
MEMORY_FACTOR = 1.1
MEMORY_OVERHEAD = 150 << 20


# ---------------------------------------------------------------- scaling


def scale_pixels(X_uint8, mean=None, scale=None, out=None):
    """uint8 pixels (m x n) -> float32 features, /255 or (x - mean) / scale per feature.

    Converts without a float64 or second full-size copy: numpy casts in small buffers.
    """
    if out is None:
        out = np.empty(X_uint8.shape, dtype=np.float32)
    if mean is None:
        np.divide(X_uint8, np.float32(255.0), out=out, dtype=np.float32)
    else:
        np.subtract(X_uint8, mean.astype(np.float32), out=out, dtype=np.float32)
        out /= scale.astype(np.float32)
    return out


def standardizer(X_uint8, block_rows=4096):
    """Per-feature mean and scale (std, 1 where a feature never varies) of m x n uint8 rows
    (an array, or a RowBlocks whose uint8 rows are read block by block)."""
    m, n = X_uint8.shape
    total = np.zeros(n)
    total_sq = np.zeros(n)
    if isinstance(X_uint8, RowBlocks):
        uint8_blocks = (block for _, block in X_uint8.uint8_blocks())
    else:
        uint8_blocks = (X_uint8[start : start + block_rows] for start in range(0, m, block_rows))
    for block in uint8_blocks:
        block = block.astype(np.float32)
        total += block.sum(axis=0, dtype=np.float64)
        total_sq += np.square(block).sum(axis=0, dtype=np.float64)
    mean = total / m
    var = np.maximum(total_sq / m - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def feature_extremes(n, mean=None, scale=None):
    """Largest |x_j| (n float64) that feature j of any uint8 image can take: 1 for /255
    (mean None or empty, as a model file stores it), else the larger of
    |(0 - mean_j) / scale_j| and |(255 - mean_j) / scale_j|, computed in float32 as
    scale_pixels does (inf where that overflows)."""
    if mean is None or not np.size(mean):
        return np.ones(n)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ends = scale_pixels(np.full((2, n), [[0], [255]], dtype=np.uint8), mean, scale)
    return np.abs(ends).max(axis=0).astype(np.float64)


# ---------------------------------------------------------------- rows streamed in blocks


class RowBlocks:
    """Float32 features of rows of a uint8 matrix, converted a block at a time.

    source: m_all x n uint8, in memory or on disk (FileRows); rows: sorted indices of the
    rows used (None: all), so a training set and a validation set can share one source;
    mean/scale as in scale_pixels. Rows are converted one block (about block_bytes of
    float32) at a time. in_memory: the source is an array in memory (X kept as uint8, 4x
    smaller than float32) rather than rows streamed from disk. release(), if given, is
    called after each block so the owner of a file can drop the pages already read (keeps
    the RSS bounded).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, source, rows=None, mean=None, scale=None, block_bytes=KERNEL_BYTES,
                 release=None, in_memory=False):
        self.source = source
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.mean = mean
        self.scale = scale
        self.in_memory = in_memory
        self.release = release or (lambda: None)
        n = source.shape[1]
        self.block_rows = max(1, block_bytes // (4 * max(n, 1)))
        self._touched = 0
        self._buffer = None

    @property
    def shape(self):
        m = self.source.shape[0] if self.rows is None else len(self.rows)
        return (m, self.source.shape[1])

    def uint8_block(self, start, stop):
        if self.rows is None:
            return self.source[start:stop]
        return self.source[self.rows[start:stop]]

    def uint8_blocks(self):
        """Yield (start, uint8 block) over the rows in order, releasing pages after each."""
        m = self.shape[0]
        for start in range(0, m, self.block_rows):
            yield start, self.uint8_block(start, min(start + self.block_rows, m))
            self.release()

    def blocks(self, reuse=False):
        """Yield (start, float32 block of about block_bytes) over the rows in order.

        reuse=True converts every block into one buffer kept by this object (no allocation
        per block): each block is then only valid until the next one is asked for.
        """
        for start, block in self.uint8_blocks():
            out = None
            if reuse:
                if self._buffer is None:
                    self._buffer = np.empty((self.block_rows, self.shape[1]), np.float32)
                out = self._buffer[: len(block)]
            yield start, scale_pixels(block, self.mean, self.scale, out=out)

    def convert(self, start, stop, out):
        """Rows start..stop (local positions) as float32 features written into out (at least
        stop - start rows); returns that part of out. For blocks in several threads."""
        return scale_pixels(self.uint8_block(start, stop), self.mean, self.scale,
                            out=out[: stop - start])

    def to_array(self):
        """All the rows as one m x n float32 array (for the Gram space, which needs X whole)."""
        out = np.empty(self.shape, dtype=np.float32)
        for start, block in self.uint8_blocks():
            scale_pixels(block, self.mean, self.scale, out=out[start : start + len(block)])
        return out

    def take(self, local_rows):
        """Float32 features of the given (sorted) row positions, e.g. one mini-batch."""
        local_rows = np.asarray(local_rows)
        picked = local_rows if self.rows is None else self.rows[local_rows]
        block = scale_pixels(self.source[picked], self.mean, self.scale)
        self._touched += len(picked)
        if self._touched >= self.block_rows:
            self._touched = 0
            self.release()
        return block


# ---------------------------------------------------------------- feature files, X left on disk


class FileRows:
    """Rows of a C-ordered m x n uint8 array stored at `offset` in a file, read on demand.

    Looks like a read-only uint8 array to RowBlocks: shape, dtype, len and indexing by
    a slice or by sorted row indices. Rows are read with plain file reads into a fresh
    buffer, so only the rows asked for are ever resident. (A memory map would do for
    sequential blocks, but gathering random rows through one maps far more than the rows:
    on Linux with large page-cache folios, ~0.7 MB per 12 KB row was measured.)
    """

    dtype = np.dtype(np.uint8)
    ndim = 2

    def __init__(self, path, offset, shape, file=None):
        self.path = Path(path)
        self.offset = offset
        self.shape = tuple(shape)
        self._file = open(path, "rb") if file is None else file  # file: already open on path
        weakref.finalize(self, self._file.close)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        m, n = self.shape
        if isinstance(key, slice):
            start, stop, step = key.indices(m)
            if step != 1:
                raise IndexError("FileRows reads contiguous slices only")
            return self._read_run(start, max(stop - start, 0))
        rows = np.asarray(key, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= m):
            raise IndexError(f"row index out of range 0..{m - 1}")
        out = np.empty((len(rows), n), dtype=np.uint8)
        # one read per run of consecutive rows (this loops over reads, not over pixels)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            out[first:last] = self._read_run(int(rows[first]), int(last - first))
        return out

    def _read_run(self, start, count):
        n = self.shape[1]
        out = np.empty((count, n), dtype=np.uint8)
        if not out.size:
            return out
        self._file.seek(self.offset + start * n)
        if self._file.readinto(memoryview(out).cast("B")) != count * n:
            raise DataError(f"{self.path}: the feature file is truncated")
        return out

    def close(self):
        self._file.close()


class FeatureFile:
    """A feature file from `logreg flatten` whose X (m x n uint8) stays on disk as FileRows:
    path, X, y (m ints), classes, paths, size (width, height), metadata (dict).
    (A plain class: predict imports this module, and a dataclass costs it start-up time.)"""

    __slots__ = ("path", "X", "y", "classes", "paths", "size", "metadata")

    def __init__(self, path, X, y, classes, paths, size, metadata):
        self.path, self.X, self.y, self.classes = path, X, y, classes
        self.paths, self.size, self.metadata = paths, size, metadata


def open_feature_file(path):
    """Open a feature file: labels, classes, paths and size are read and checked (by
    dataset.load_features), X is left on disk and read through FileRows."""
    from .dataset import feature_matrix_offset, load_features

    def open_rows(npz):  # on the file load_features opened: labels and rows stay together
        offset, shape = feature_matrix_offset(npz, npz.path)
        return FileRows(path, offset, shape, file=npz.fileno_copy())

    data = load_features(path, open_x=open_rows)
    return FeatureFile(Path(path), data.X, data.y, data.classes, data.paths, data.size,
                       data.metadata)


def available_memory(meminfo="/proc/meminfo", cgroup_root="/sys/fs/cgroup",
                     self_cgroup="/proc/self/cgroup", self_status="/proc/self/status"):
    """Bytes this process may still allocate, or None if unknown: the least of the free
    memory (MemAvailable), the room left under its cgroup's memory limit (v2 memory.max,
    v1 memory.limit_in_bytes) and the room left under RLIMIT_AS (address space). The paths
    are parameters so that tests can fake each source."""
    rooms = [_mem_available(meminfo), _cgroup_room(cgroup_root, self_cgroup),
             _address_space_room(self_status)]
    known = [room for room in rooms if room is not None]
    return max(0, min(known)) if known else None


def _mem_available(meminfo):
    try:
        with open(meminfo) as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_number(path):
    """The integer in a one-line file, None if absent, unreadable or "max" (no limit)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room(root, self_cgroup):
    """Limit minus usage of the process's memory cgroup (v2, else v1), or None if none."""
    places = {}  # controller -> the process's cgroup path, from /proc/self/cgroup
    try:
        for line in Path(self_cgroup).read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                places[controller] = where.lstrip("/")
    except (OSError, ValueError):
        pass
    candidates = [  # (limit file, usage file); the process's own cgroup first
        (Path(root, places.get("", ""), "memory.max"), Path(root, places.get("", ""),
                                                             "memory.current")),
        (Path(root, "memory.max"), Path(root, "memory.current")),
        (Path(root, "memory", places.get("memory", ""), "memory.limit_in_bytes"),
         Path(root, "memory", places.get("memory", ""), "memory.usage_in_bytes")),
        (Path(root, "memory", "memory.limit_in_bytes"),
         Path(root, "memory", "memory.usage_in_bytes")),
    ]
    for limit_file, usage_file in candidates:
        limit = _read_number(limit_file)
        if limit is not None and limit < 1 << 60:  # v1 says "no limit" with a huge number
            return limit - (_read_number(usage_file) or 0)
    return None


def _address_space_room(self_status):
    """RLIMIT_AS minus the address space already mapped (VmSize), or None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    try:
        with open(self_status) as file:
            for line in file:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return soft - used


def choose_streaming(m, n, forced=None, available=None):
    """(stream?, reason): stream when uint8 X (times MEMORY_FACTOR, plus MEMORY_OVERHEAD)
    would not fit in the memory this process may use (available_memory)."""
    needed = m * n
    text = f"X is {_size_text(needed)} as uint8"
    if forced is not None:
        return forced, f"{text}; {'--stream' if forced else '--no-stream'} given"
    available = available_memory() if available is None else available
    if available is None:
        return False, f"{text}; free memory unknown"
    fits = MEMORY_FACTOR * needed + MEMORY_OVERHEAD <= available
    relation = "fits in" if fits else "exceeds"
    return not fits, f"{text}; {relation} the {_size_text(available)} available"


def _size_text(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
