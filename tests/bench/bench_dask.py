"""The Dask engine (train --scheduler) against one-machine training, in the same run.

    python tests/bench/bench_dask.py            # m = 100,000, n = 3072 (a 307 MB file, ~2 min)
    python tests/bench/bench_dask.py --small    # quick smoke run

Prints:
  one process    seconds per full-batch epoch of logreg_cli.train on one core (X uint8 in
                 memory, the fused kernel on one thread): the baseline.
  dask local     the same training through --scheduler local with 2 one-thread worker
                 processes (each holds half of X): seconds per epoch, and its overhead
                 over the ideal (the baseline / 2).
  round trip     seconds per epoch of the engine on a store of 2 rows (one per worker):
                 what one epoch costs besides computing (driver -> workers -> driver).
  kernel         GB/s of uint8 pixels per core of one worker's pass (core.fused_gradient
                 over its shard, one thread).
  model          the epoch time and speed-up over one core for 10 and 100 workers:
                 t(W) = m n / (W rate) + round trip(1 worker) + (W - 1) x the driver's CPU
                 time per further worker (1 vs 2 workers), for this m and for the issue's
                 10 million 64x64 images.
Epoch times are the median of the intervals between epochs (on_epoch timestamps).
"""

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import logreg_cli  # noqa: E402
from feature_files import write_feature_file  # noqa: E402
from logreg_cli import core  # noqa: E402
from logreg_cli.features import RowBlocks, open_feature_file  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def epoch_seconds(data, epochs, **options):
    """Median seconds between consecutive epochs of logreg_cli.train(data, ...): (wall
    time, CPU time of this process, the driver's, all its threads)."""
    stamps = []

    def stamp(stats):
        stamps.append((time.perf_counter(), time.process_time()))
        return False

    logreg_cli.train(data, epochs=epochs, lr=0.001, on_epoch=stamp, **options)
    wall, cpu = np.diff(np.array(stamps), axis=0).T
    return statistics.median(wall), statistics.median(cpu)


def kernel_rate(data, rows, repeat=5):
    """GB/s of uint8 pixels of one fused pass over `rows` rows in memory, one thread."""
    features = open_feature_file(data)
    X = RowBlocks(features.X[:rows], in_memory=True)
    y = features.y[:rows]
    W32, b = np.zeros((X.shape[1], 1), np.float32), np.zeros(1)
    best = np.inf
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(repeat):
            started = time.perf_counter()
            core.fused_gradient(X, W32, b, y)
            best = min(best, time.perf_counter() - started)
    return rows * X.shape[1] / best / 1e9


def round_trip(folder, workers, epochs):
    """Seconds per epoch of the engine on `workers` rows (one per worker), n = 3072."""
    tiny = write_feature_file(folder / f"tiny{workers}.npz", max(workers, 2), size=(32, 32))
    return epoch_seconds(tiny, epochs, scheduler="local", jobs=workers)


def speed_up_model(m, n, rate, trip_1, per_worker, one_core):
    """Lines of the modelled epoch time and speed-up for 10 and 100 workers: compute
    m n / (W rate) in parallel, plus a round trip of trip_1 that grows by per_worker for
    each further worker (the driver sends W and adds a partial per worker, one at a
    time)."""
    lines = []
    for workers in (10, 100):
        trip = trip_1 + per_worker * (workers - 1)
        epoch = m * n / (workers * rate * 1e9) + trip
        lines.append(f"  {workers:3d} workers: {epoch * 1e3:9.2f} ms per epoch "
                     f"(compute {m * n / (workers * rate * 1e9) * 1e3:.2f} ms + round trip "
                     f"{trip * 1e3:.2f} ms), speed-up {one_core / epoch:6.1f}x over one core")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    m = 10_000 if args.small else 100_000
    epochs = args.epochs or (6 if args.small else 12)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = write_feature_file(folder / "x.npz", m, size=(32, 32))
        n = 32 * 32 * 3
        print(f"m = {m}, n = {n} uint8 ({m * n / 1e6:.0f} MB), {epochs} full-batch epochs")
        one, _ = epoch_seconds(data, epochs, jobs=1, stream=False)
        print(f"one process, one core   : {one:.4f} s per epoch (baseline)")
        spread, _ = epoch_seconds(data, epochs, scheduler="local", jobs=2)
        print(f"dask local, 2 workers   : {spread:.4f} s per epoch, {one / spread:.2f}x the "
              f"baseline (ideal 2x); overhead over baseline/2: {(spread - one / 2) * 1e3:.1f} ms")
        (trip_1, cpu_1), (trip_2, cpu_2) = (round_trip(folder, workers, 4 * epochs)
                                            for workers in (1, 2))
        per_worker = max(cpu_2 - cpu_1, 0.0)
        print(f"round trip per epoch    : {trip_1 * 1e3:.2f} ms (1 worker), "
              f"{trip_2 * 1e3:.2f} ms (2 workers; 2 workers + driver on 2 cores); driver CPU "
              f"{cpu_1 * 1e3:.2f} ms and {cpu_2 * 1e3:.2f} ms: {per_worker * 1e3:.2f} ms per "
              "further worker")
        rate = kernel_rate(data, m // 2)
        print(f"kernel, one worker's shard, one thread: {rate:.2f} GB/s of pixels per core")
        print(f"model, m = {m}, n = {n}:")
        for line in speed_up_model(m, n, rate, trip_1, per_worker, m * n / (rate * 1e9)):
            print(line)
        big_m, big_n = 10_000_000, 64 * 64 * 3
        print(f"model, m = {big_m}, n = {big_n} (the issue's 123 GB):")
        for line in speed_up_model(big_m, big_n, rate, trip_1, per_worker,
                                   big_m * big_n / (rate * 1e9)):
            print(line)


if __name__ == "__main__":
    main()
