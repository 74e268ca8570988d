"""Benchmark: logreg's optimizers (gd, adam, lbfgs) against scikit-learn (LogisticRegression
lbfgs, SGDClassifier log_loss) on the same float32 pixels /255 and the same objective
J = mean cross-entropy + l2/(2m)|W|^2 (bias not penalised): LogisticRegression(C=1/l2),
SGDClassifier(alpha=l2/m). One run, three data sets:

- cat/non-cat (../shared/datasets/catvnoncat, 209 train / 50 test, 64x64), --l2 100;
- digits10: scikit-learn's bundled 8x8 digits (1797, 10 classes) resized to 32x32 with
  Pillow (bilinear), grey to RGB, split 75/25 with a fixed seed, --l2 1;
- made-up: m train + m/4 test 32x32 RGB images of 4 classes (made_up: faint class
  patterns in noise, 10 % of labels random, seed 0), --l2 10.

logreg trains as `logreg train` does (threads.train: BLAS and kernel threads chosen for
the problem); lbfgs runs in the Gram space when m < n, and then also on the features
("lbfgs features", method plain) for comparison; scikit-learn uses OpenBLAS's default.
Per method: fit time (its own settings, no validation), test accuracy and log-loss, and
from a second, traced run (the test set scored after every epoch, its time included): the
time to get within 1e-4 relative objective of the optimum J* (the lowest J any method
reached) and to reach the target test accuracy (J*'s model's). SGDClassifier is one-vs-rest
on 10 classes: its J is not the softmax objective there, so it has no time to the optimum.
Ratios are fit times over scikit-learn lbfgs's.

    python tests/bench/bench_peers.py [--large-m 40000] [--skip-large] [--sklearn-blas-threads 1]

Needs scikit-learn; run it with the Python of a venv where logreg is installed.
"""

import argparse
import glob
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from logreg_cli import core, threads

DATA = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "catvnoncat"
GAP = 1e-4


def catvnoncat():
    def load(side):
        classes = sorted(p.name for p in (DATA / side).iterdir() if p.is_dir())
        files = [(f, i) for i, c in enumerate(classes)
                 for f in sorted(glob.glob(str(DATA / side / c / "*.png")))]
        X = np.array([np.asarray(Image.open(f).convert("RGB")).ravel() for f, _ in files])
        return X.astype(np.float32) / np.float32(255), np.array([i for _, i in files])

    return (*load("train"), *load("test"), 2)


def digits10():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    grey = (digits.images * (255 / 16)).round().astype(np.uint8)
    X = np.array([np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR)
                             .convert("RGB")).ravel() for image in grey])
    X = X.astype(np.float32) / np.float32(255)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    return X_train, y_train, X_test, y_test, 10


def made_up(m, k=4, seed=0):
    """m + m/4 images: a shared random image plus a faint class pattern (sd 3) plus noise
    (sd 60), 10 % of the labels then drawn at random: not separable, like real data."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(64, 192, size=3072) + rng.normal(0, 3, size=(k, 3072))
    total = m + m // 4
    y = rng.integers(0, k, size=total)
    X = np.empty((total, 3072), dtype=np.float32)
    for start in range(0, total, 4096):
        rows = slice(start, start + 4096)
        noise = rng.normal(0, 60, size=(len(y[rows]), 3072))
        X[rows] = np.clip(templates[y[rows]] + noise, 0, 255).round() / 255
    relabelled = rng.random(total) < 0.1
    y[relabelled] = rng.integers(0, k, size=int(relabelled.sum()))
    return X[:m], y[:m], X[m:], y[m:], k


def objective(Z, y, W, l2, m):
    return core.log_loss(Z, y) + l2 / (2 * m) * float(np.sum(np.asarray(W, float) ** 2))


def logreg_run(name, settings, data, l2):
    X, y, X_test, y_test, k = data
    config = core.TrainConfig(l2=l2, **settings)
    start = time.perf_counter()
    fit = threads.train(X, y, k, config)
    seconds = time.perf_counter() - start
    trace = []
    traced_start = time.perf_counter()
    threads.train(X, y, k, config, validation=core.Validation(X_test, y_test),
                  on_epoch=lambda s: trace.append((time.perf_counter() - traced_start, s.cost,
                                                   s.val_accuracy)))
    Z = core.scores(X_test, fit.weights, fit.bias)
    return {"name": name, "seconds": seconds, "epochs": fit.epochs_run,
            "J": fit.final_cost, "accuracy": float(np.mean(core.predicted_classes(Z) == y_test)),
            "log_loss": core.log_loss(Z, y_test), "trace": trace}


def sklearn_lbfgs(data, l2, tol=1e-4):
    from sklearn.linear_model import LogisticRegression

    X, y, X_test, y_test, k = data
    start = time.perf_counter()
    model = LogisticRegression(C=1 / l2, tol=tol, max_iter=10000).fit(X, y)
    seconds = time.perf_counter() - start
    return _sklearn_result(f"sklearn lbfgs tol {tol:g}", model, data, l2, seconds,
                           [(seconds, None, None)])


def sklearn_sgd(data, l2, epochs=30):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    X, y, X_test, y_test, k = data
    model = SGDClassifier(loss="log_loss", alpha=l2 / len(y), random_state=0)
    trace, seconds = [], 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(epochs):
            start = time.perf_counter()
            model.partial_fit(X, y, classes=np.arange(k))
            seconds += time.perf_counter() - start
            result = _sklearn_result("", model, data, l2, seconds, [])
            trace.append((seconds, result["J"] if k == 2 else None, result["accuracy"]))
    return _sklearn_result(f"sklearn SGD {epochs} ep", model, data, l2, seconds, trace)


def _sklearn_result(name, model, data, l2, seconds, trace):
    X, y, X_test, y_test, k = data
    W = model.coef_.T.astype(np.float64)
    b = model.intercept_.astype(np.float64)
    Z_train, Z_test = X @ W + b, X_test @ W + b  # binary: one sigmoid, as logreg's
    sgd_ovr = k > 2 and "SGD" in name
    J = None if sgd_ovr else objective(Z_train, y, W, l2, len(y))
    if trace and trace[-1][1] is None and not sgd_ovr and "lbfgs" in name:
        trace = [(seconds, J, float(np.mean(core.predicted_classes(Z_test) == y_test)))]
    return {"name": name, "seconds": seconds, "epochs": getattr(model, "n_iter_", None),
            "J": J, "accuracy": float(np.mean(core.predicted_classes(Z_test) == y_test)),
            "log_loss": None if sgd_ovr else core.log_loss(Z_test, y_test), "trace": trace}


def first_time(trace, reached):
    return next((t for t, J, accuracy in trace if reached(J, accuracy)), None)


def report(title, results):
    best_J = min(r["J"] for r in results if r["J"] is not None)
    optimum = min(results, key=lambda r: np.inf if r["J"] is None else r["J"])
    target = optimum["accuracy"]
    reference = next(r for r in results if r["name"].startswith("sklearn lbfgs"))["seconds"]
    print(f"\n## {title}: J* = {best_J:.8f}, target test accuracy {target:.4f}")
    print(f"{'method':28} {'fit s':>8} {'x skl':>6} {'iters':>6} {'J - J*':>9} {'test acc':>8} "
          f"{'test LL':>8} {'to J* s':>8} {'to acc s':>8}")
    for r in results:
        to_optimum = first_time(r["trace"], lambda J, a: J is not None and
                                J - best_J <= GAP * best_J)
        to_target = first_time(r["trace"], lambda J, a: a is not None and a >= target)
        gap = "n/a" if r["J"] is None else f"{(r['J'] - best_J) / best_J:.1e}"
        epochs = r["epochs"]
        epochs = int(np.max(epochs)) if epochs is not None else ""
        print(f"{r['name']:28} {r['seconds']:8.3f} {r['seconds'] / reference:6.2f} {epochs:>6} "
              f"{gap:>9} {r['accuracy']:8.4f} "
              f"{'n/a' if r['log_loss'] is None else format(r['log_loss'], '.4f'):>8} "
              f"{'-' if to_optimum is None else format(to_optimum, '.3f'):>8} "
              f"{'-' if to_target is None else format(to_target, '.3f'):>8}")


def blas_threads(limit):
    """A context with at most `limit` BLAS threads (None: OpenBLAS's default)."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return nullcontext() if limit is None else threadpool_limits(limits=limit, user_api="blas")


def compare(title, data, l2, gd, adam, lbfgs_epochs=5000, sklearn_blas_threads=None):
    results = [logreg_run("logreg gd " + _describe(gd), gd, data, l2),
               logreg_run("logreg adam " + _describe(adam), {"optimizer": "adam", **adam},
                          data, l2),
               logreg_run("logreg lbfgs", {"optimizer": "lbfgs", "epochs": lbfgs_epochs}, data, l2)]
    if data[0].shape[0] < data[0].shape[1]:  # the row above ran in the Gram space
        results.append(logreg_run("logreg lbfgs features", {
            "optimizer": "lbfgs", "epochs": lbfgs_epochs, "method": "plain"}, data, l2))
    with blas_threads(sklearn_blas_threads):
        results += [sklearn_lbfgs(data, l2), sklearn_lbfgs(data, l2, tol=1e-8),
                    sklearn_sgd(data, l2)]
    report(title, results)


def _describe(settings):
    return f"lr {settings['lr']:g} {settings['epochs']} ep"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-m", type=int, default=40000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--sklearn-blas-threads", type=int, default=None,
                        help="run scikit-learn on this many BLAS threads (1 on a busy "
                             "machine, where OpenBLAS's spinning threads slow it down)")
    args = parser.parse_args()
    sklearn = {"sklearn_blas_threads": args.sklearn_blas_threads}
    compare("cat/non-cat, --l2 100", catvnoncat(), 100.0, {"lr": 0.004, "epochs": 60000},
            {"lr": 0.001, "epochs": 2000}, **sklearn)
    compare("digits10 32x32, --l2 1", digits10(), 1.0, {"lr": 0.05, "epochs": 3000},
            {"lr": 0.001, "epochs": 1000}, **sklearn)
    if not args.skip_large:
        compare(f"made-up {args.large_m} x 32x32, 4 classes, --l2 10", made_up(args.large_m),
                10.0, {"lr": 0.05, "epochs": 50}, {"lr": 0.001, "epochs": 50}, 300, **sklearn)


if __name__ == "__main__":
    main()
