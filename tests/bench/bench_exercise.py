"""Benchmark: the classic cat/non-cat exercise, 2000 epochs, three ways, in one run.

(a) per-example, per-feature Python for-loops (the "non-vectorized" version the course
    warns about), timed on a few epochs and scaled to 2000;
(b) the exercise's own style: float64 numpy, X as n x m, w as n x 1;
(c) logreg's core (core.train, which picks the Gram path here), and its plain path;
then whole processes: `logreg train` (imports, loading 209 PNGs, 2000 epochs, saving the
model) against an exercise-style float64 script doing the same work in its own process.

Needs ../shared/datasets/catvnoncat beside the repository.

    python tests/bench/bench_exercise.py [--loop-epochs 2] [--repeats 3]

Run it with the Python of a virtual environment where logreg is installed as the README
says (pip install .): the whole-process figure runs that environment's `logreg` command.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "catvnoncat"
EPOCHS = 2000
LR = 0.005

# Run as a separate process by whole_process_times(): the exercise's code style end to end.
EXERCISE_SCRIPT = r"""
import sys, glob, numpy as np
from PIL import Image
root, out = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(root + "/cat/*.png")) + sorted(glob.glob(root + "/non-cat/*.png"))
X_orig = np.array([np.array(Image.open(f).convert("RGB")) for f in files])
Y = np.array([[0] * len(glob.glob(root + "/cat/*.png")) + [1] * len(glob.glob(root + "/non-cat/*.png"))])
X = X_orig.reshape(X_orig.shape[0], -1).T / 255.
def sigmoid(z):
    return 1 / (1 + np.exp(-z))
w, b = np.zeros((X.shape[0], 1)), 0.0
m = X.shape[1]
for i in range(2000):
    A = sigmoid(np.dot(w.T, X) + b)
    cost = -1 / m * np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A))
    dw = 1 / m * np.dot(X, (A - Y).T)
    db = 1 / m * np.sum(A - Y)
    w = w - 0.005 * dw
    b = b - 0.005 * db
np.savez(out, w=w, b=b)
"""


def load_split(split):
    """(X uint8 m x n, y) of a catvnoncat split in sorted class-folder order (cat = 0)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from logreg_cli.dataset import load_data

    data = load_data(DATA / split, (64, 64))
    return data.X, data.y


def loop_version(X, y, epochs):
    """Gradient descent with a Python loop over examples and over features."""
    m, n = len(X), len(X[0])
    w, b = [0.0] * n, 0.0
    for _ in range(epochs):
        dw, db = [0.0] * n, 0.0
        for i in range(m):
            x = X[i]
            z = b
            for j in range(n):
                z += w[j] * x[j]
            dz = 1.0 / (1.0 + np.exp(-z)) - y[i]
            for j in range(n):
                dw[j] += x[j] * dz
            db += dz
        for j in range(n):
            w[j] -= LR * dw[j] / m
        b -= LR * db / m
    return w, b


def exercise_version(X_uint8, y):
    """The exercise's vectorized float64 code (X is n x m)."""
    X = X_uint8.T / 255.0
    Y = y[None, :].astype(np.float64)
    w, b, m = np.zeros((X.shape[0], 1)), 0.0, X.shape[1]
    costs = []
    for i in range(EPOCHS):
        A = 1 / (1 + np.exp(-(w.T @ X + b)))
        if i % 100 == 0:
            costs.append(-np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m)
        dZ = A - Y
        w = w - LR * (X @ dZ.T) / m
        b = b - LR * np.sum(dZ) / m
    return w, b, costs


def core_version(X_uint8, y, method):
    from logreg_cli import features
    from logreg_cli import core

    X = features.scale_pixels(X_uint8)
    return core.train(X, y, 2, core.TrainConfig(lr=LR, epochs=EPOCHS, method=method))


def best_of(repeats, func):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return min(times), result


def whole_process_times(repeats):
    with tempfile.TemporaryDirectory() as temp:
        script = Path(temp) / "exercise.py"
        script.write_text(EXERCISE_SCRIPT)
        # the `logreg` command installed beside this Python, run outside the repository so
        # that the installed package is the one imported
        ours = [str(Path(sys.executable).with_name("logreg")), "train", str(DATA / "train"), "-q",
                "-m", str(Path(temp) / "model.npz")]
        theirs = [sys.executable, str(script), str(DATA / "train"), str(Path(temp) / "ex.npz")]
        # alternated, so that a noisy spell of the machine weighs on both alike
        t_ours, t_theirs = [], []
        for _ in range(repeats):
            t_ours.append(seconds_to_run(ours, temp))
            t_theirs.append(seconds_to_run(theirs, temp))
    return sorted(t_ours), sorted(t_theirs)


def seconds_to_run(command, cwd):
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs {DATA}")
    X, y = load_split("train")
    m, n = X.shape
    print(f"cat/non-cat train: m={m} images, n={n} features, {EPOCHS} epochs, lr {LR}")

    t_exercise, (_, _, costs) = best_of(args.repeats, lambda: exercise_version(X, y))
    t_core, fit = best_of(args.repeats, lambda: core_version(X, y, "auto"))
    t_plain, plain = best_of(args.repeats, lambda: core_version(X, y, "plain"))
    # Last: the loop version's 2.5 million Python floats would slow every garbage collection
    # of the timings above.
    X_list = (X / 255.0).tolist()
    started = time.perf_counter()
    loop_version(X_list, y.tolist(), args.loop_epochs)
    t_loop = (time.perf_counter() - started) * EPOCHS / args.loop_epochs
    del X_list
    drift = max(abs(a - b.cost) for a, b in zip(costs, fit.history[::100]))

    print(f"(a) Python for-loops       {t_loop:10.2f} s  (timed {args.loop_epochs} epochs, scaled)")
    print(f"(b) exercise float64 numpy {t_exercise:10.3f} s")
    print(f"(c) logreg core ({fit.method})      {t_core:10.3f} s")
    print(f"    logreg core (plain)     {t_plain:10.3f} s")
    print(f"ratios: loops / exercise {t_loop / t_exercise:8.0f}x   "
          f"exercise / core {t_exercise / t_core:6.1f}x   loops / core {t_loop / t_core:8.0f}x   "
          f"exercise / core-plain {t_exercise / t_plain:5.1f}x")
    print(f"max |cost(core) - cost(exercise)| at epochs 0,100..1900: {drift:.2e}")

    t_ours, t_theirs = whole_process_times(args.repeats)
    middle = len(t_ours) // 2
    print(f"whole process: logreg train {t_ours[0]:.3f} s, exercise-style script "
          f"{t_theirs[0]:.3f} s, ratio {t_theirs[0] / t_ours[0]:.1f}x (best of {len(t_ours)}); "
          f"medians {t_ours[middle]:.3f} s and {t_theirs[middle]:.3f} s, "
          f"{t_theirs[middle] / t_ours[middle]:.1f}x")


if __name__ == "__main__":
    main()
