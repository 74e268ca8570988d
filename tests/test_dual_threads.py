"""The estimator trains with the threads `logreg train` chooses (threads.train): one BLAS
thread for small products, all cores for large ones, the fused kernel's threads."""

import json
import subprocess
import sys

import pytest

from logreg_cli.threads import usable_cores
from tiny_models import subprocess_env

THREADS_DURING_FIT = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
from logreg_cli import core, threads
from logreg_cli.estimator import LogisticRegressionGD
m, n, batch = (int(v) if v != "None" else None for v in sys.argv[1:])
if m == 600:
    threads.LARGE_KERNEL = 600 * 48  # so that a small X runs the kernel in threads
real = core.train
seen = []
def recording(X, y, n_classes, config, **options):
    blas = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    seen.append([blas, config.threads])
    return real(X, y, n_classes, config, **options)
core.train = recording
X = np.random.default_rng(0).random((m, n), dtype=np.float32)
LogisticRegressionGD(epochs=2, lr=1e-4, batch_size=batch).fit(X, np.arange(m) % 2)
chosen = list(threads.choose_threads(m, n, 1, core.TrainConfig(epochs=2, batch_size=batch)))
print(json.dumps({"seen": seen, "chosen": chosen}))
"""


@pytest.mark.skipif(usable_cores() < 2, reason="needs 2 cores")
@pytest.mark.parametrize("m, n, batch, expected", [
    (209, 12288, None, [1, 1]),  # the exercise's size: one BLAS thread
    (2000, 12288, 1024, [2, 1]),  # 1024 x 12288 products: BLAS on both cores
    (600, 48, None, [1, 2]),  # the fused kernel in threads (LARGE_KERNEL lowered)
])
def test_the_estimator_trains_with_the_chosen_threads(m, n, batch, expected):
    env = subprocess_env()
    env.pop("OPENBLAS_NUM_THREADS", None)  # the user's default: one thread per core
    env["OMP_NUM_THREADS"] = "2"
    done = subprocess.run([sys.executable, "-c", THREADS_DURING_FIT, str(m), str(n),
                           str(batch)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seen"] == [expected] and result["chosen"] == expected
