"""Training on a Dask cluster (`logreg train DATA --scheduler ...`): shards stay in the
workers' memory, one task per worker per epoch.

X (m x n uint8, in a feature file or a Zarr store) is cut into one contiguous range of rows
per worker. Each worker reads its own rows from the store, once, as uint8 (the driver, the
`logreg train` process, sends only where they are: a path or URL and row numbers; it never
reads X nor ships it). Each epoch the driver sends W (n x c float32) and b (c) to every
shard and gets back one partial (sum of the losses, X_s^T dZ_s, sum dZ_s) computed by
core.fused_gradient, the kernel one machine uses; it adds the partials in shard order and
core makes its usual update. DistributedRows stands in for X in core: its
fused_gradient and scores replace the local passes over the rows (L-BFGS draws its cost
and gradient from fused_gradient too), so every loop of core (gd, momentum, adam, lbfgs, schedules, --l2, class weights,
validation, early stopping, Ctrl-C, --init, history) runs unchanged.

Faults: each shard lives in a Dask actor (ShardActor) on its worker. When a call finds its
worker lost, the driver starts that shard again on another worker (which reads the rows
again from the store) and repeats the shard's call. The partials are added in shard order,
whoever computed them, so the weights are the same bit for bit. Workers compute on one BLAS
thread, for the same reason.

Mini-batches: every step is a round trip to each worker, so with --scheduler a batch must
give each worker at least MIN_BATCH_ROWS_PER_WORKER rows (smaller ones are refused).
"""

import os
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import core
from .errors import DataError, LogregError, OptionError, first_line
from .features import FileRows, RowBlocks

# The fewest rows per worker a mini-batch step must give: below this, a step's round trip
# (milliseconds) costs more than computing it on one core (tests/bench/bench_dask.py).
MIN_BATCH_ROWS_PER_WORKER = 2048


# ---------------------------------------------------------------- where the rows are


class RowSource:
    """Where a worker reads rows of X from: a feature file (.npz, X stored uncompressed at
    `offset`, shape m x n uint8) or a Zarr store (path or URL). Small and picklable: it is
    what the driver sends instead of rows. `stamp` (size, mtime) of a feature file lets a
    worker refuse a file that changed since the driver opened it."""

    def __init__(self, kind, location, shape, offset=None, stamp=None):
        self.kind, self.location, self.shape = kind, str(location), tuple(shape)
        self.offset, self.stamp = offset, stamp

    @classmethod
    def of(cls, source):
        """The RowSource of a RowBlocks' source (features.FileRows, or a Zarr store's rows),
        or None when the rows are only in this process's memory."""
        if isinstance(source, FileRows):
            path = Path(source.path).resolve()
            return cls("npz", path, source.shape, source.offset, _stamp(path))
        from .zarrstore import StoreRows, local_path

        if isinstance(source, StoreRows):  # the valid rows of a Zarr store
            folder = local_path(source.store.location)  # None for a URL
            location = source.store.location if folder is None else folder.resolve()
            return cls("zarr", location, source.shape)
        return None

    def read(self, start, stop, rows=None):
        """Rows start..stop of X (or the sorted store rows `rows`, all in start..stop) as a
        uint8 array. Raises DataError naming the store when it cannot be read here."""
        if self.kind == "zarr":
            from .zarrstore import StoreRows, open_store

            valid_rows = StoreRows(open_store(self.location))  # the driver's row numbers
            if valid_rows.shape != self.shape:
                raise DataError(f"{self.location}: changed since training started, or not "
                                f"the same store on worker {_worker_address()}")
            return valid_rows[start:stop] if rows is None else valid_rows[rows]
        if self.stamp is not None and _stamp(self.location) != self.stamp:
            raise DataError(f"{self.location}: changed since training started, or not the "
                            f"same file on worker {_worker_address()}")
        try:
            file_rows = FileRows(self.location, self.offset, self.shape)
        except OSError as error:
            raise DataError(f"{self.location}: cannot be read on worker {_worker_address()} "
                            f"({error.strerror or error})") from None
        try:
            return file_rows[start:stop] if rows is None else file_rows[rows]
        finally:
            file_rows.close()


def _stamp(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "(none)"


# ---------------------------------------------------------------- on a worker


class Shard:
    """One worker's rows: pixels (m_s x n uint8, in memory), features (a RowBlocks the
    fused kernel converts a few MB at a time, scaled by mean/scale as on one machine), y
    (m_s labels) and sample_weight (m_s image weights, or None)."""

    def __init__(self, pixels, mean, scale, y, sample_weight):
        self.pixels, self.mean, self.scale = pixels, mean, scale
        self.y, self.sample_weight = y, sample_weight
        self.features = RowBlocks(pixels, None, mean, scale, in_memory=True)

    def batch(self, rows):
        """The rows (local, sorted) of one mini-batch: (RowBlocks, y, sample_weight)."""
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return (RowBlocks(self.pixels, rows, self.mean, self.scale, in_memory=True),
                self.y[rows], weights)


_ONE_BLAS_THREAD = threading.Lock()
_blas_limited = []


def _one_blas_thread():
    """Limit this worker process's BLAS to one thread, once: a product's float32 sums may
    depend on its thread count, and a shard must give the same partial on any worker."""
    with _ONE_BLAS_THREAD:
        if not _blas_limited:
            from threadpoolctl import threadpool_limits

            _blas_limited.append(threadpool_limits(limits=1, user_api="blas"))


class ShardActor:
    """A Dask actor on one worker holding one Shard: rows start..stop of store (or the
    store rows `rows`) as uint8, read by the worker itself when the actor starts, with
    their labels y and image weights. Its methods compute one shard's share of an epoch."""

    def __init__(self, store, start, stop, rows, mean, scale, y, sample_weight):
        _one_blas_thread()
        self.shard = Shard(store.read(start, stop, rows), mean, scale, y, sample_weight)

    def gradient(self, W32, b, rows=None):
        """core.fused_gradient's sums over the shard (or its local row positions `rows`)."""
        shard = self.shard
        if rows is None:
            X, y, weights = shard.features, shard.y, shard.sample_weight
        else:
            X, y, weights = shard.batch(rows)
        return core.fused_gradient(X, W32, b, y, weights)

    def scores(self, W32, b):
        """X_s W + b (m_s x c float64), as core._scores computes it."""
        return core._scores(self.shard.features, W32, b)


# ---------------------------------------------------------------- on the driver

# Times one shard is started again on another worker within one call before giving up
# (Dask's own allowed-failures for tasks is 3 too).
RESTARTS = 3


class DistributedRows:
    """X (m x n) held by the workers of a Dask client, one contiguous shard of rows each
    (a ShardActor per shard).

    For core: shape, in_memory (False), distributed (True), fused_gradient(W32, b, y,
    sample_weight, rows=None) -> (cost sum, X^T dZ n x c float64, dZ sums c float64),
    scores(W32, b) -> m x c float64. y and sample_weight must be the labels and
    weights the shards were given (checked). One actor call per shard per pass; a shard
    whose worker is lost is started again on another worker and its call repeated.
    """

    in_memory = False
    distributed = True
    dtype = np.dtype(np.float32)

    def __init__(self, client, specs, bounds, addresses, y, sample_weight, n):
        self.client, self.specs, self.bounds = client, specs, bounds
        self.y, self.sample_weight = y, sample_weight
        self.shape = (int(bounds[-1]), n)
        self._checked = (y, sample_weight)
        self.homes = [addresses[index % len(addresses)] for index in range(len(specs))]
        self._tasks = [self._submit(index) for index in range(len(specs))]
        self.actors = [_result(task) for task in self._tasks]

    @property
    def workers(self):
        return len(self.specs)

    def _submit(self, index):
        # allow_other_workers: a home lost before the actor starts must not leave it waiting
        return self.client.submit(ShardActor, *self.specs[index], actor=True,
                                  workers=[self.homes[index]], allow_other_workers=True,
                                  pure=False)

    def _check_labels(self, y, sample_weight):
        if self._checked[0] is y and self._checked[1] is sample_weight:
            return
        same_weights = (sample_weight is None) == (self.sample_weight is None) and (
            sample_weight is None or np.array_equal(sample_weight, self.sample_weight))
        same_labels = np.array_equal(self.y, y)
        if not (same_weights and same_labels):
            raise LogregError("the labels or image weights differ from those the workers "
                              "hold")
        self._checked = (y, sample_weight)

    def _call(self, method, *args, shard_args=None):
        """actor.method(*args[, shard_args[i]]) on every shard (or those with an entry in
        shard_args), all at once; the results in shard order. A shard whose worker cannot
        be reached (OSError) or is gone (RuntimeError) is started again elsewhere and its
        call repeated, at most RESTARTS times."""
        order = range(self.workers) if shard_args is None else sorted(shard_args)

        def call(index):
            extra = () if shard_args is None else (shard_args[index],)
            try:
                return getattr(self.actors[index], method)(*args, *extra)
            except (OSError, RuntimeError) as error:  # the actor's worker is known lost
                return error

        pending = {index: call(index) for index in order}
        results = []
        for index in order:
            for attempt in range(RESTARTS + 1):
                try:
                    if isinstance(pending[index], Exception):
                        raise pending[index]
                    results.append(pending[index].result())
                    break
                except (OSError, RuntimeError) as error:
                    if attempt == RESTARTS:
                        raise self._lost(index, error) from None
                    self._restart(index)
                    pending[index] = call(index)
        return results

    def _restart(self, index):
        """Start shard index again on the live worker holding the fewest shards, other than
        the one that failed it (unless it is the only one)."""
        failed = self.homes[index]
        live = [address for address in worker_addresses(self.client) if address != failed]
        live = live or [failed]
        load = {address: self.homes.count(address) for address in live}
        self.homes[index] = min(live, key=lambda address: (load[address], address))
        self._tasks[index] = self._submit(index)
        self.actors[index] = _result(self._tasks[index])

    def _lost(self, index, error):
        return LogregError(f"--scheduler: shard {index} failed on worker {self.homes[index]} "
                           f"({first_line(error)})")

    def fused_gradient(self, W32, b, y, sample_weight=None, rows=None):
        """The sums of core.fused_gradient over all rows (rows None) or over the sorted row
        positions `rows` (a mini-batch), added in shard order in float64."""
        self._check_labels(y, sample_weight)
        if rows is None:
            parts = self._call("gradient", W32, b)
        else:
            parts = self._call("gradient", W32, b, shard_args=self._split(rows))
        return core.add_partials(parts, W32.shape, len(b))

    def _split(self, rows):
        """Sorted row positions -> {shard: its local positions} for shards with any."""
        rows = np.asarray(rows, dtype=np.int64)
        cuts = np.searchsorted(rows, self.bounds)
        return {index: rows[cuts[index] : cuts[index + 1]] - self.bounds[index]
                for index in range(self.workers) if cuts[index + 1] > cuts[index]}

    def scores(self, W32, b):
        """X W + b (m x c float64), as core._scores computes it, gathered in row order."""
        parts = self._call("scores", W32, b)
        return np.concatenate(parts) if parts else np.zeros((0, W32.shape[1]))

def _result(task):
    """The result of a task that starts a ShardActor (the actor), its error in one line."""
    try:
        return task.result()
    except LogregError:
        raise
    except (OSError, RuntimeError) as error:
        raise LogregError(f"--scheduler: a shard could not start ({first_line(error)})") \
            from None


def worker_addresses(client):
    """The addresses of the client's workers, sorted; LogregError when there are none
    after cluster.CONNECT_TIMEOUT seconds."""
    from .cluster import CONNECT_TIMEOUT

    check_scheduler(client)
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, OSError):
        check_scheduler(client)
        raise LogregError(f"--scheduler: no worker joined the scheduler within "
                          f"{CONNECT_TIMEOUT} s") from None
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def check_scheduler(client):
    """Raise LogregError when the client has lost its scheduler (killed, or its machine
    gone): distributed closes such a client only after trying to reconnect for a while,
    so a tcp:// scheduler that refuses connections counts as lost at once."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    address = client.scheduler.address
    lost = client.status not in ("running", "connecting", "newly-created")
    protocol, location = parse_address(address)
    if not lost and protocol == "tcp":
        try:
            socket.create_connection(parse_host_port(location), timeout=1).close()
        except ConnectionRefusedError:
            lost = True
        except OSError:
            pass  # slow or unreachable for now: distributed's own timeouts decide
    if lost:
        raise LogregError(f"--scheduler: lost the scheduler at {address} (it stopped or "
                          "cannot be reached)")


def shard_bounds(m, parts):
    """Row positions cutting m rows into `parts` contiguous shards whose sizes differ by
    at most one (shards of no rows are dropped): at most parts + 1 int64s."""
    bounds = np.unique([m * index // parts for index in range(parts + 1)])
    return bounds.astype(np.int64)


NOT_A_STORE = ("--scheduler: {what} must be a feature file or Zarr store that the workers can "
               "read (write one with `logreg flatten DATA -o features.npz`); images decoded "
               "here are not shipped to workers")


def check_data(data):
    """Before a cluster is started or joined: raise DataError when DATA does not exist and
    OptionError when it is not a feature file or store (arrays, an image folder)."""
    from .dataset import is_feature_file, path_exists

    if not isinstance(data, (str, os.PathLike)):
        raise OptionError(NOT_A_STORE.format(what="DATA"))
    if not path_exists(data):
        raise DataError(f"{data}: no such file or folder")
    if not is_feature_file(data):
        raise OptionError(NOT_A_STORE.format(what="DATA"))


def distribute(client, X, y, sample_weight=None, what="DATA"):
    """Place X (a RowBlocks over a feature file's or store's rows) on the client's workers,
    one shard each, read by the workers themselves; returns a DistributedRows.

    y (m ints) and sample_weight (m floats or None) go with the shards, once.
    Raises OptionError when X is not rows of a store (images decoded here, arrays), and the
    first error of a worker that cannot read its rows (DataError naming the store).
    """
    store = RowSource.of(X.source) if isinstance(X, RowBlocks) else None
    if store is None:
        raise OptionError(NOT_A_STORE.format(what=what))
    addresses = worker_addresses(client)
    m, n = X.shape
    bounds = shard_bounds(m, len(addresses))
    specs = []
    for first, last in zip(bounds[:-1], bounds[1:]):
        selected = None if X.rows is None else X.rows[first:last]
        start, stop = (first, last) if selected is None else (int(selected[0]),
                                                              int(selected[-1]) + 1)
        if selected is not None and stop - start == len(selected):
            selected = None  # a run of consecutive store rows: one plain read
        weights = None if sample_weight is None else sample_weight[first:last]
        specs.append((store, int(start), int(stop), selected, X.mean, X.scale,
                      np.asarray(y[first:last]), weights))
    return DistributedRows(client, specs, bounds, addresses, y, sample_weight, n)


# ---------------------------------------------------------------- a training run


def check_batch_size(batch_size, m, workers):
    """Raise OptionError when mini-batches of batch_size would give a worker fewer than
    MIN_BATCH_ROWS_PER_WORKER rows (a batch of all m rows is full batch: allowed)."""
    if batch_size is None or batch_size >= m:
        return
    least = MIN_BATCH_ROWS_PER_WORKER * workers
    if batch_size < least:
        raise OptionError(
            f"--batch-size {batch_size} is too small for --scheduler: each step is a round "
            f"trip to every worker, so a batch must give each of the {workers} workers at "
            f"least {MIN_BATCH_ROWS_PER_WORKER} rows (--batch-size {least} or more, or full "
            "batch)")


def place(client, prepared, settings):
    """Put prepared training data (training.TrainingData, X left in its store) on the
    client's workers: X, and the validation rows when they are in a store too (validation
    images decoded here are scored here). Returns prepared, changed in place."""
    addresses = worker_addresses(client)
    m = prepared.X.shape[0]
    check_batch_size(settings.get("batch_size"), m, min(len(addresses), m))
    prepared.X = distribute(client, prepared.X, prepared.y, prepared.sample_weight)
    validation = prepared.validation
    if validation is not None and RowSource.of(getattr(validation.X, "source", None)):
        validation.X = distribute(client, validation.X, validation.y,
                                  validation.sample_weight, what="--val")
    prepared.streamed = False
    prepared.memory_note = (f"X is held by {prepared.X.workers} Dask workers, one shard "
                            "each")
    return prepared


@contextmanager
def cluster_or_none(scheduler, scheduler_file, jobs, data=None):
    """Yield a distributed.Client for --scheduler / --scheduler-file (cluster.connect), or
    None when neither is given. data (DATA, when given) is checked first (check_data), so
    that a missing or unusable DATA is said before any cluster is started or joined."""
    from . import cluster

    if not cluster.wanted(scheduler, scheduler_file):
        yield None
        return
    cluster.check_options(scheduler, scheduler_file)  # said before DATA is looked at
    if data is not None:
        check_data(data)
    with cluster.connect(scheduler, scheduler_file, jobs) as client:
        yield client
