"""Benchmark of predict's input pipeline (run by hand: python tests/bench/bench_predict.py).

Prints, against baselines run in the same process:
  1. images per second through decode_in_order with all cores vs one decoding thread;
  2. peak traced memory while streaming 4N images vs N images (flat memory => ratio ~1);
  3. the cost of the reader thread: decode_in_order vs a plain in-order loop, one job each.
Images are 256x256 PNGs drawn here; the model size is 64x64.
"""

import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from logreg_cli.images import load_image
from logreg_cli.predicting import decode_in_order, expand_inputs

SIZE = (64, 64)


def make_images(folder, count, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        path = Path(folder) / f"{index:05d}.png"
        Image.fromarray(pixels).save(path, compress_level=1)
        paths.append(str(path))
    return paths


def rate(paths, jobs):
    started = time.perf_counter()
    count = sum(1 for decoded in decode_in_order(expand_inputs(paths), SIZE, jobs)
                if decoded.row is not None)
    return count / (time.perf_counter() - started)


def plain_rate(paths):
    started = time.perf_counter()
    for path in paths:
        load_image(path, SIZE)
    return len(paths) / (time.perf_counter() - started)


def peak_bytes(paths):
    tracemalloc.start()
    for _ in decode_in_order(expand_inputs(paths), SIZE, os.cpu_count() or 1):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(count=int(sys.argv[1]) if len(sys.argv) > 1 else 200):
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(folder, count)
        cores = os.cpu_count() or 1
        rate(paths[:20], 1)  # warm the file cache and imports
        one, all_cores = rate(paths, 1), rate(paths, cores)
        print(f"decode {count} images 256x256 -> 64x64: 1 thread {one:.0f} img/s, "
              f"{cores} threads {all_cores:.0f} img/s, speed-up x{all_cores / one:.2f}")
        plain = plain_rate(paths)
        print(f"reader-thread pipeline at 1 job vs plain loop: {one:.0f} vs {plain:.0f} img/s, "
              f"ratio {one / plain:.2f}")
        small, large = peak_bytes(paths[: count // 4]), peak_bytes(paths)
        print(f"peak traced memory: {count // 4} images {small / 1e6:.2f} MB, {count} images "
              f"{large / 1e6:.2f} MB, ratio {large / small:.2f} (flat: ~1)")


if __name__ == "__main__":
    main()
