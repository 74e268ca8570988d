"""The fused kernel (core.fused_gradient) on uint8 X: rate, epoch time, memory (issue 13.2).

    python tests/bench/bench_kernel.py            # default sizes (~1 GB of disk, ~2 min)
    python tests/bench/bench_kernel.py --small    # quick smoke run

Prints, each figure against its baseline measured in the same run:
  kernel     GB/s of uint8 pixels per core: one fused pass (convert a few MB of rows into a
             reused float32 buffer, z, dZ, X^T dZ) over m x n uint8 rows in memory, 1 thread.
  epoch      a full-batch epoch from uint8 X in memory vs the float32 epoch of before the
             kernel (X held as float32, z = X W and X^T dZ over the whole array). Goal <= 1.1.
  stream     a streamed full-batch epoch from a feature file in the page cache vs the kernel
             rate in memory. Goal >= 80 %.
  rss        peak RSS of `logreg train FILE` (2 epochs, in memory, full batch and batches
             of 512, and --stream with batches of 512) on a ~470 MB feature file vs the
             budget 1.1 x uint8 bytes + 150 MB, each in its own process.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_epoch import best_of  # noqa: E402  (this folder: the script's own path)
from feature_files import write_feature_file  # noqa: E402
from logreg_cli import core  # noqa: E402
from logreg_cli.features import RowBlocks, open_feature_file, scale_pixels  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def float32_epoch(X32, W32, b, y):
    """The epoch before the kernel: float32 X whole, z = X W, dZ, X^T dZ."""
    cost, dZ = core.cost_and_delta((X32 @ W32).astype(np.float64) + b, y)
    return cost, (X32.T @ dZ.astype(np.float32)).astype(np.float64), dZ.sum(axis=0)


def peak_rss_of(command):
    helper = ("import resource, subprocess, sys\n"
              "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "assert done.returncode == 0, done.stderr\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", helper, *command], capture_output=True,
                          text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    m, n = (8_000, 3_072) if args.small else (40_000, 3_072)
    file_rows = 4_000 if args.small else 38_400  # x 12288 = 472 MB
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (m, n), dtype=np.uint8)
    y = (X[:, :30].mean(axis=1) > 127.5).astype(np.int64)
    W32, b = (rng.standard_normal((n, 1)) * 1e-3).astype(np.float32), np.zeros(1)
    print(f"numpy {np.__version__}, {os.cpu_count()} cpus; X {m} x {n} uint8 "
          f"({X.nbytes / 2**20:.0f} MB)")
    rows = RowBlocks(X, in_memory=True)
    X32 = scale_pixels(X)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "features.npz"
        write_feature_file(path, m, (32, 32))
        streamed = RowBlocks(open_feature_file(path).X)
        ways = {"kernel": lambda: core.fused_gradient(rows, W32, b, y),
                "kernel, 2 threads": lambda: core.fused_gradient(rows, W32, b, y, threads=2),
                "float32": lambda: float32_epoch(X32, W32, b, y),
                "stream": lambda: core.fused_gradient(streamed, W32, b, y)}
        best = {way: float("inf") for way in ways}
        with threadpool_limits(limits=1, user_api="blas"):
            ways["stream"]()  # the file into the page cache
            for _ in range(args.repeat):  # alternated, so that all see the same machine
                for way, function in ways.items():
                    best[way] = min(best[way], best_of(1, function))
        del X32
        kernel, before, stream = best["kernel"], best["float32"], best["stream"]
        print(f"kernel, 1 thread:     {kernel:.4f} s per pass = "
              f"{X.nbytes / kernel / 1e9:.2f} GB/s of pixels per core")
        print(f"kernel, 2 threads:    {best['kernel, 2 threads']:.4f} s per pass = "
              f"{X.nbytes / best['kernel, 2 threads'] / 1e9:.2f} GB/s (BLAS: 1 thread each)")
        print(f"epoch, 1 thread:      uint8 X + kernel {kernel:.4f} s vs float32 X {before:.4f} s"
              f" = {kernel / before:.2f}x (goal <= 1.1)")
        print(f"stream full batch:    {stream:.4f} s per pass = {X.nbytes / stream / 1e9:.2f} GB/s"
              f" = {kernel / stream:.0%} of the kernel in memory (goal >= 80 %)")
        big = write_feature_file(Path(folder) / "big.npz", file_rows)
        x_mb = file_rows * 12288 / 2**20
        budget = 1.1 * x_mb + 150
        for label, extra in [("in memory, full batch", ["--no-stream"]),
                             ("in memory, batches of 512", ["--no-stream", "--batch-size", "512"]),
                             ("--stream, batches of 512", ["--stream", "--batch-size", "512"])]:
            peak = peak_rss_of([sys.executable, "-m", "logreg_cli", "train", str(big), "--epochs",
                                "2", "--lr", "0.001", "-q", "-m", str(Path(folder) / "m.npz"),
                                *extra])
            print(f"peak RSS {label:<26} {peak:6.0f} MB for {x_mb:.0f} MB of uint8 X: "
                  f"{peak / budget:.2f} of the budget 1.1 x {x_mb:.0f} + 150 = {budget:.0f} MB")


if __name__ == "__main__":
    main()
