"""Time one epoch of training against its floor, each case in its own process (own peak RSS).

    python tests/bench/bench_epoch.py            # default sizes (a few GB of RAM, ~1 min)
    python tests/bench/bench_epoch.py --small    # quick smoke run

Cases (each prints seconds per epoch, the ratio to its baseline measured in the same
process, and the process's peak RSS):
  full    m > n, full batch, in memory: epoch vs two float32 matrix-vector passes over X
          (X @ w and X^T dz), the floor of gradient descent. Goal: ratio <= 1.2.
  gram    m < n, full batch: an epoch in the m x m Gram space vs a plain epoch; the one-off
          cost of building K is reported separately.
  in-memory  a feature file loaded as float32 X: peak RSS against the budget 1.3 x (float32
          size of X) + 150 MB (the "epoch s" column is the load time, "base s" the budget in MB).
  stream  a feature file on disk, streamed in row blocks (full batch, and mini-batches of
          512): epoch vs one pass reading and converting the blocks (the I/O floor);
          stream-large does mini-batches of 512 over a 1.9 GB file, to show the peak RSS
          stays bounded when the file is several times larger than the bound (500 MB).

Run on an idle machine: competing processes (and their BLAS threads) distort timings.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feature_files import write_feature_file  # noqa: E402
from logreg_cli import api, core, training  # noqa: E402
from logreg_cli.features import RowBlocks, open_feature_file, scale_pixels  # noqa: E402

SIZES = {"full": (40_000, 3_072), "gram": (1_000, 12_288), "stream": (40_000, 12_288),
         "stream-large": (160_000, 12_288)}  # a 1.9 GB file: several times the RSS bound
SMALL = {"full": (8_000, 768), "gram": (300, 3_072), "stream": (4_000, 3_072),
         "stream-large": (16_000, 3_072)}


def best_of(repeat, function):
    """Least wall time of repeat calls (the least disturbed one)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_problem(m, n, seed=0):
    """uint8 pixels -> float32 X (m x n) without a float64 copy, and labels y."""
    rng = np.random.default_rng(seed)
    X = np.empty((m, n), dtype=np.float32)
    y = np.empty(m, dtype=np.int64)
    for start in range(0, m, 4096):
        block = rng.integers(0, 256, (min(4096, m - start), n), dtype=np.uint8)
        scale_pixels(block, out=X[start : start + len(block)])
        y[start : start + len(block)] = block[:, :30].mean(axis=1) > 127.5
    return X, y


def epoch_seconds(X, y, config, repeat):
    """Seconds per epoch of core.train, from runs of config.epochs (best of repeat)."""
    return best_of(repeat, lambda: core.train(X, y, 2, config)) / config.epochs


def case_full(m, n, repeat):
    X, y = random_problem(m, n)
    w = np.zeros((n, 1), dtype=np.float32)
    dz = np.ones((m, 1), dtype=np.float32)
    floor = best_of(repeat * 5, lambda: (X @ w, X.T @ dz))
    epoch = epoch_seconds(X, y, core.TrainConfig(lr=0.01, epochs=10, method="plain"), repeat)
    return {"case": f"full batch m={m} n={n}", "epoch_s": epoch, "baseline": "2 matvec passes",
            "baseline_s": floor, "ratio": epoch / floor, "peak_rss_mb": peak_rss_mb(),
            "x_float32_mb": X.nbytes / 2**20}


def case_gram(m, n, repeat):
    X, y = random_problem(m, n)
    plain = epoch_seconds(X, y, core.TrainConfig(lr=0.01, epochs=10, method="plain"), repeat)
    build = best_of(repeat, lambda: core.gram_matrix(X))
    epochs = 200
    total = best_of(repeat, lambda: core.train(X, y, 2, core.TrainConfig(lr=0.01, epochs=epochs,
                                                                         method="gram")))
    gram = (total - build) / epochs
    return {"case": f"Gram m={m} n={n}", "epoch_s": gram, "baseline": "plain epoch",
            "baseline_s": plain, "ratio": gram / plain, "gram_build_s": build,
            "peak_rss_mb": peak_rss_mb(), "x_float32_mb": X.nbytes / 2**20}


def square_size(n):
    """n = side * side * 3 -> (side, side)."""
    side = int(round((n / 3) ** 0.5))
    return (side, side)


def case_stream(m, n, repeat, batch_size=None):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "features.npz"
        write_feature_file(path, m, square_size(n))
        feature_file = open_feature_file(path)
        blocks = RowBlocks(feature_file.X)
        read_pass = best_of(repeat, lambda: [None for _ in blocks.blocks()])
        config = core.TrainConfig(lr=0.01, epochs=2, batch_size=batch_size)
        epoch = epoch_seconds(blocks, feature_file.y, config, repeat)
    kind = "full batch" if batch_size is None else f"batches of {batch_size}"
    return {"case": f"stream {kind} m={m} n={n}", "epoch_s": epoch,
            "baseline": "1 read+convert pass", "baseline_s": read_pass, "ratio": epoch / read_pass,
            "peak_rss_mb": peak_rss_mb(), "file_mb": m * n / 2**20}


def case_in_memory(m, n, repeat):
    """Peak RSS of loading a feature file into memory as float32 and training one epoch."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "features.npz"
        write_feature_file(path, m, square_size(n))
        before = peak_rss_mb()
        start = time.perf_counter()
        data = training.prepare(path, api.train_settings({"stream": False}), load_folder=None)
        load = time.perf_counter() - start
        training.run(data, core.TrainConfig(lr=0.01, epochs=1))
    x_mb = m * n * 4 / 2**20
    return {"case": f"in memory m={m} n={n}", "epoch_s": load, "baseline": "1.3 X32 + 150 MB",
            "baseline_s": 1.3 * x_mb + 150, "ratio": peak_rss_mb() / (1.3 * x_mb + 150),
            "peak_rss_mb": peak_rss_mb(), "x_float32_mb": x_mb, "rss_before_mb": before}


CASES = {
    "in-memory": lambda sizes, r: case_in_memory(*sizes["stream"], r),
    "full": lambda sizes, r: case_full(*sizes["full"], r),
    "gram": lambda sizes, r: case_gram(*sizes["gram"], r),
    "stream": lambda sizes, r: case_stream(*sizes["stream"], r),
    "stream-batches": lambda sizes, r: case_stream(*sizes["stream"], r, batch_size=512),
    "stream-large": lambda sizes, r: case_stream(*sizes["stream-large"], 1, batch_size=512),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = SMALL if args.small else SIZES
    if args.case:  # the child: one case, one JSON line
        print(json.dumps(CASES[args.case](sizes, args.repeat)))
        return
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"{os.cpu_count()} cpus")
    print(f"{'case':<38} {'epoch s':>9} {'baseline':>22} {'base s':>9} {'ratio':>6} {'peak RSS':>10}")
    for name in CASES:
        command = [sys.executable, __file__, "--case", name, "--repeat", str(args.repeat)]
        if args.small:
            command.append("--small")
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        extra = "".join(f"  {k}={v:.3f}" for k, v in row.items()
                        if k in ("gram_build_s", "rss_before_mb"))
        size = row.get("x_float32_mb", row.get("file_mb"))
        print(f"{row['case']:<38} {row['epoch_s']:9.5f} {row['baseline']:>22} "
              f"{row['baseline_s']:9.5f} {row['ratio']:6.2f} {row['peak_rss_mb']:8.0f} MB"
              f"  (data {size:.0f} MB){extra}")


if __name__ == "__main__":
    main()
