"""Benchmark: image loading, naive one-thread loop vs logreg's loader, in one process.

Makes (deterministically, seed 0) a few hundred photo-sized JPEGs (1600 x 1200) and a few
thousand 64 x 64 PNGs in a temporary folder, then times, for each set:

    naive   for each path: Image.open -> convert("RGB") -> resize -> np.asarray (one thread)
    ours    logreg_cli.images.load_images (draft, parallel, order kept), its own choice of
            threads (big files) or processes (small files)
    and, for the record of that choice, the same forced to threads only, to processes only,
    and to one job

and prints images/s and the ratio to naive. Goal: >= 5x on photos with 2 cores, >= 1.5x on
the small PNGs. Run it on an idle machine:

    python tests/bench/bench_load.py [--photos 300] [--small 3000] [--jobs N] [--size 64x64]
                                     [--repeat 3] [--folder DIR]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from logreg_cli import images
from logreg_cli.images import default_jobs, load_images


def make_photos(folder, count, rng):
    """count 1600 x 1200 JPEGs (quality 90): smooth colour fields, waves and sensor-like noise."""
    folder.mkdir(parents=True, exist_ok=True)
    noise = [rng.normal(0, 10, (1200, 1600, 1)).astype(np.float32) for _ in range(4)]
    y, x = np.mgrid[0:1200, 0:1600].astype(np.float32)
    paths = []
    for index in range(count):
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((1600, 1200), Image.Resampling.BICUBIC),
                           dtype=np.float32)
        period = rng.uniform(15, 90)
        waves = 30 * np.sin(x / period + y / (2 * period))[..., None]
        picture = np.clip(field + waves + noise[index % 4], 0, 255).astype(np.uint8)
        path = folder / f"photo_{index:04d}.jpg"
        Image.fromarray(picture).save(path, quality=90)
        paths.append(path)
    return paths


def make_small(folder, count, rng):
    """count 64 x 64 RGB PNGs: an upscaled 8 x 8 random pattern each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pattern = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = folder / f"small_{index:05d}.png"
        Image.fromarray(pattern).resize((64, 64), Image.Resampling.BILINEAR).save(path)
        paths.append(path)
    return paths


def naive_load(paths, size):
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rows.append(np.asarray(image.convert("RGB").resize(size)).reshape(-1))
    return np.stack(rows)


def processes_only(paths, size, jobs):
    """load_images made to use worker processes whatever the file sizes."""
    saved = images.THREADS_FROM_BYTES
    images.THREADS_FROM_BYTES = float("inf")
    try:
        return load_images(paths, size, jobs=jobs, min_for_processes=1)
    finally:
        images.THREADS_FROM_BYTES = saved


def bench(name, paths, size, jobs, repeat):
    """Time each method repeat times, interleaved (so a busy spell hits all alike); best run."""
    count = len(paths)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    print(f"\n{name}: {count} files, {megabytes:.0f} MB, target {size[0]}x{size[1]}, jobs {jobs}")
    runs = {
        "naive 1 thread": lambda: (naive_load(paths, size), None),
        "ours": lambda: load_images(paths, size, jobs=jobs),
        "ours, threads only": lambda: load_images(paths, size, jobs=jobs,
                                                  min_for_processes=count + 1),
        "ours, processes only": lambda: processes_only(paths, size, jobs),
        "ours, 1 job": lambda: load_images(paths, size, jobs=1),
    }
    best = dict.fromkeys(runs, float("inf"))
    results = {}
    for _ in range(repeat):
        for label, run in runs.items():
            started = time.perf_counter()
            results[label] = run()
            best[label] = min(best[label], time.perf_counter() - started)
    naive_X = results["naive 1 thread"][0]
    for label, seconds in best.items():
        X, kept = results[label]
        line = f"  {label:<20} {count / seconds:9.1f} images/s  {best['naive 1 thread'] / seconds:5.2f}x"
        if kept is not None:
            assert len(kept) == count and X.shape == naive_X.shape
            difference = np.abs(X.astype(np.int16) - naive_X).mean()
            line += f"   (mean |ours - naive| {difference:.2f} grey levels)"
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--small", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many runs.")
    parser.add_argument("--folder", type=Path, default=None,
                        help="Reuse/keep the generated images here (default: a temp folder).")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(f"python {sys.version.split()[0]}, cores available {default_jobs()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as temp:
        root = args.folder or Path(temp)
        photos = sorted((root / "photos").glob("*.jpg"))
        small = sorted((root / "small").glob("*.png"))
        started = time.perf_counter()
        if len(photos) != args.photos:
            photos = make_photos(root / "photos", args.photos, np.random.default_rng(0))
        if len(small) != args.small:
            small = make_small(root / "small", args.small, np.random.default_rng(1))
        print(f"images ready in {time.perf_counter() - started:.1f} s in {root}")
        print(f"best of {args.repeat} interleaved runs each")
        if photos:
            bench("photos (JPEG 1600x1200)", photos, size, args.jobs, args.repeat)
        if small:
            bench("small PNGs (64x64)", small, size, args.jobs, args.repeat)


if __name__ == "__main__":
    main()
