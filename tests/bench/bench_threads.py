"""Threads that fit the problem (issue 13.3): training with the threads logreg chooses
(threads.choose_threads) against one thread and against OpenBLAS's default (all cores),
runs alternated in one process.

    python tests/bench/bench_threads.py [--repeats 7]

  small  the cat/non-cat exercise (209 images 64x64, 2000 epochs, Gram space): the chosen
         threads must never be slower than one thread.
  large  m=40000 x n=3072 uint8 in memory, full batch (the fused kernel in threads), and
         10 classes of m=8000 x n=12288 in batches of 1024 (BLAS threads): the chosen
         threads should gain from both cores.
Needs ../shared/datasets/catvnoncat beside the repository. Run on an idle machine.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from logreg_cli import api, core, training  # noqa: E402
from logreg_cli.threads import choose_threads, usable_cores  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "catvnoncat"


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(name, data, config, repeats):
    """Alternate the three ways; print best and median seconds of each."""
    m, n = data.X.shape
    chosen = choose_threads(m, n, core.n_outputs(data.n_classes), config,
                            core.is_streamed(data.X))

    def fixed(threads):
        def train():
            with threadpool_limits(limits=threads, user_api="blas"):
                core.train(data.X, data.y, data.n_classes, replace(config, threads=threads))
        return train

    ways = {"chosen": lambda: training.run(data, config),
            "1 thread": fixed(1), f"{usable_cores()} threads": fixed(usable_cores())}
    times = {way: [] for way in ways}
    names = list(ways)
    for round_ in range(repeats):
        for way in names[round_ % 3:] + names[: round_ % 3]:  # each way in each place
            time.sleep(0.3)  # OpenBLAS threads spin a while after a product: let them sleep
            times[way].append(seconds(ways[way]))
    print(f"{name}: chosen (BLAS, kernel) threads = {chosen}")
    one = min(times["1 thread"])
    for way, spent in times.items():
        print(f"  {way:<10} best {min(spent):.4f} s  median {statistics.median(spent):.4f} s"
              f"  (1 thread / this, best: {one / min(spent):.2f}x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    settings = api.train_settings({})
    exercise = api.prepare(DATA / "train", settings, api.folder_loader())
    compare("small: the exercise, 2000 epochs", exercise, api.descent_config(settings),
            args.repeats)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40_000, 3072), dtype=np.uint8)
    y = (X[:, :30].mean(axis=1) > 127.5).astype(np.int64)
    settings = api.train_settings({"size": (32, 32), "epochs": 5, "lr": 1e-4})
    big = api.prepare((X, y, ["a", "b"]), settings, None)
    compare("large: 40000 x 3072 uint8, full batch, 5 epochs", big,
            api.descent_config(settings), max(3, args.repeats // 2))
    X = rng.integers(0, 256, (8_000, 12288), dtype=np.uint8)
    y = rng.integers(0, 10, 8_000)
    settings = api.train_settings({"size": (64, 64), "epochs": 2, "lr": 1e-4,
                                   "batch_size": 1024})
    batches = api.prepare((X, y, [str(i) for i in range(10)]), settings, None)
    compare("large: 8000 x 12288, 10 classes, batches of 1024, 2 epochs", batches,
            api.descent_config(settings), max(3, args.repeats // 2))


if __name__ == "__main__":
    main()
