"""issue 13 part 3: BLAS and kernel threads chosen by the problem's size, capped by --jobs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from logreg_cli import api, core
from logreg_cli.features import RowBlocks, scale_pixels
from logreg_cli.threads import choose_threads, usable_cores

from tiny_models import subprocess_env

EXERCISE = (209, 64 * 64 * 3)


@pytest.mark.parametrize("case, m, n, c, options, streamed, jobs, expected", [
    ("the exercise (Gram space, 209 x 209 products)", *EXERCISE, 1, {}, False, None, (1, 1)),
    ("the exercise, primal", *EXERCISE, 1, {"method": "plain"}, False, None, (1, 1)),
    ("small mini-batches", 5000, 3072, 1, {"batch_size": 64}, False, None, (1, 1)),
    ("large X in memory, full batch: kernel threads", 40_000, 3072, 1, {}, False, None, (1, 2)),
    ("the same, --jobs 1", 40_000, 3072, 1, {}, False, 1, (1, 1)),
    ("large X streamed: one block at a time", 40_000, 3072, 1, {}, True, None, (1, 1)),
    ("large mini-batches: BLAS threads", 40_000, 12288, 10, {"batch_size": 512}, False, None,
     (2, 1)),
    ("the same, --jobs 1", 40_000, 12288, 10, {"batch_size": 512}, False, 1, (1, 1)),
    ("a large Gram space", 3000, 12288, 1, {"epochs": 10_000}, False, None, (2, 1)),
])
def test_threads_fit_the_problem(case, m, n, c, options, streamed, jobs, expected):
    config = core.TrainConfig(**options)
    assert choose_threads(m, n, c, config, streamed, jobs, cores=2) == expected, case
    if jobs is None:  # more cores than jobs: jobs caps them; fewer: the cores do
        assert max(choose_threads(m, n, c, config, streamed, 3, cores=8)) <= 3
        assert max(choose_threads(m, n, c, config, streamed, 8, cores=2)) <= 2


@pytest.mark.parametrize("uint8", [False, True])
def test_kernel_threads_give_the_same_sums_bit_for_bit(uint8):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (3000, 1500), dtype=np.uint8)  # 699 rows a block: 5 blocks
    rows = RowBlocks(X, in_memory=True) if uint8 else scale_pixels(X)
    W32 = (rng.standard_normal((1500, 3)) * 0.01).astype(np.float32)
    y = rng.integers(0, 3, 3000)
    one = core.fused_gradient(rows, W32, np.zeros(3), y)
    for threads in (2, 3):
        cost, grad_W, grad_b = core.fused_gradient(rows, W32, np.zeros(3), y, threads=threads)
        assert cost == one[0]
        np.testing.assert_array_equal(grad_W, one[1])
        np.testing.assert_array_equal(grad_b, one[2])


def test_training_runs_the_kernel_with_the_chosen_threads(monkeypatch):
    seen = []
    real = core.fused_gradient

    def recording(*args):
        seen.append(args[-1])
        return real(*args)

    monkeypatch.setattr(core, "fused_gradient", recording)
    monkeypatch.setattr("logreg_cli.threads.LARGE_KERNEL", 600 * 48)
    X = np.random.default_rng(0).integers(0, 256, (600, 48), dtype=np.uint8)
    data = (X, np.arange(600) % 2, ["a", "b"])
    for jobs, expected in ((None, usable_cores()), (1, 1)):
        seen.clear()
        api.train(data, size=(4, 4), epochs=3, jobs=jobs)
        assert seen == [expected] * 3


BLAS_THREADS_DURING_TRAINING = """
import json, sys
import numpy as np
from threadpoolctl import threadpool_info
from logreg_cli import api
m, n, batch, jobs = (int(v) if v != "None" else None for v in sys.argv[1:])
side = int((n // 3) ** 0.5)
X = np.random.default_rng(0).integers(0, 256, (m, n), dtype=np.uint8)
seen = []
def on_epoch(stats):
    seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
api.train((X, np.arange(m) % 2, ["a", "b"]), size=(side, side), epochs=2, lr=1e-4,
          batch_size=batch, jobs=jobs, on_epoch=on_epoch)
after = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
print(json.dumps({"during": seen, "after": after}))
"""


@pytest.mark.skipif(usable_cores() < 2, reason="needs 2 cores")
@pytest.mark.parametrize("m, n, batch, jobs, during", [
    (209, 12288, None, None, 1),  # the exercise's size: one thread
    (2000, 12288, 1024, None, 2),  # 1024 x 12288 products: both cores
    (2000, 12288, 1024, 1, 1),  # --jobs 1 caps them
])
def test_blas_threads_seen_by_threadpoolctl_during_training(m, n, batch, jobs, during):
    env = subprocess_env()
    env.pop("OPENBLAS_NUM_THREADS", None)  # the user's default: one thread per core
    env["OMP_NUM_THREADS"] = "2"
    done = subprocess.run([sys.executable, "-c", BLAS_THREADS_DURING_TRAINING, str(m), str(n),
                           str(batch), str(jobs)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["during"] == [during, during]
    assert seen["after"] == 2  # the limit is lifted when training ends
