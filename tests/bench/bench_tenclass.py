"""Benchmark: do logreg's defaults reach a well-tuned logistic regression on 10 classes?

Data: scikit-learn's bundled 8x8 hand-written digits (1797 images, 10 classes; it ships
inside the package, no download), written as grey PNGs into a temporary folder, split
75/25 stratified with a fixed seed. Needs scikit-learn (a benchmark-only dependency:
pip install scikit-learn).

(a) `logreg train` with every default (64x64, lr 0.005, 2000 full-batch epochs, zero init),
    then `logreg evaluate` on the held-out quarter;
(b) scikit-learn's LogisticRegression (multinomial, lbfgs) on the same 64x64 features,
    its C tuned by 3-fold cross-validation on the training quarter only.
Prints both test accuracies and their difference.

    python tests/bench/bench_tenclass.py
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(root):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    train_idx, test_idx = train_test_split(
        np.arange(len(images)), test_size=0.25, stratify=digits.target, random_state=0
    )
    for split, indices in (("train", train_idx), ("test", test_idx)):
        for i in indices:
            folder = root / split / f"digit{digits.target[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], "L").save(folder / f"{i:04d}.png")
    return len(train_idx), len(test_idx)


def logreg(*args):
    return subprocess.run([sys.executable, "-m", "logreg_cli", *args], check=True,
                          capture_output=True, text=True)


def tuned_sklearn_accuracy(root):
    """Best-C multinomial logistic regression on the same features logreg sees."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    flat = root / "features-train.npz"
    flat_test = root / "features-test.npz"
    logreg("flatten", str(root / "train"), "-o", str(flat), "-q")
    logreg("flatten", str(root / "test"), "-o", str(flat_test), "-q")
    with np.load(flat) as train, np.load(flat_test) as test:
        X, y = train["X"] / np.float32(255), train["y"]
        X_test, y_test = test["X"] / np.float32(255), test["y"]
    search = GridSearchCV(
        LogisticRegression(max_iter=3000),
        {"C": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
        cv=3,
        n_jobs=1,
    )
    search.fit(X, y)
    return float(search.score(X_test, y_test)), search.best_params_["C"]


def main():
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        m_train, m_test = write_digits(root)
        model = root / "model.npz"
        started = time.perf_counter()
        logreg("train", str(root / "train"), "-m", str(model), "-q")
        seconds = time.perf_counter() - started
        report = json.loads(logreg("evaluate", str(root / "test"), "-m", str(model),
                                   "--format", "json", "-q").stdout)
        ours = report["accuracy"]
        theirs, best_c = tuned_sklearn_accuracy(root)
    print(f"digits: {m_train} train / {m_test} test images, 10 classes, resized to 64x64")
    print(f"logreg defaults        test accuracy {100 * ours:6.2f} %   (train {seconds:.1f} s)")
    print(f"sklearn tuned (C={best_c:g})  test accuracy {100 * theirs:6.2f} %")
    print(f"difference (logreg - tuned): {100 * (ours - theirs):+.2f} points")


if __name__ == "__main__":
    main()
