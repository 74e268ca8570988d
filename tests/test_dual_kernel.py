"""L-BFGS gets its cost and gradient from the fused kernel (core.fused_gradient: float32
block products, block sums accumulated in float64), on every path, and still lands on
scipy's optimum of the same objective."""

import numpy as np
import pytest

from logreg_cli import core
from logreg_cli.features import RowBlocks, scale_pixels
from test_optim_lbfgs import FLOAT32_GAP, objective_gap


def pixels_problem(k, m, n, seed=0):
    """uint8 pixels whose class shows in the first 8 features, and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=m)
    X = rng.integers(0, 200, size=(m, n), dtype=np.uint8)
    X[:, :8] += (25 * y).astype(np.uint8)[:, None]
    return X, y


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts core.fused_gradient's calls and the rows each one read."""
    calls = []
    kernel = core.fused_gradient

    def counted(X, *args, **kwargs):
        calls.append(X.shape[0])
        return kernel(X, *args, **kwargs)

    monkeypatch.setattr(core, "fused_gradient", counted)
    return calls


@pytest.mark.parametrize("path", ["float32", "uint8 in memory", "streamed", "2 threads"])
def test_lbfgs_objective_is_the_fused_kernel_on_every_path(kernel_calls, path):
    X_uint8, y = pixels_problem(3, 600, 64)
    X = scale_pixels(X_uint8)
    data = {"float32": X, "2 threads": X,
            "uint8 in memory": RowBlocks(X_uint8, block_bytes=50 * 64 * 4, in_memory=True),
            "streamed": RowBlocks(X_uint8, block_bytes=50 * 64 * 4)}[path]
    config = core.TrainConfig(optimizer="lbfgs", l2=1.0, epochs=300, tol=1e-9,
                              threads=2 if path == "2 threads" else 1)
    fit = core.train(data, y, 3, config)
    # one kernel pass per cost the line search asked for: at least one per iteration
    assert len(kernel_calls) >= fit.epochs_run + 1 and set(kernel_calls) == {600}
    assert abs(objective_gap(X, y, 3, 1.0, fit)) <= FLOAT32_GAP


def test_many_blocks_summed_in_float64_reach_scipys_optimum():
    """Float32 products of a few rows at a time, added in float64, land within FLOAT32_GAP
    of the float64 optimum, for one sigmoid and softmax, with image weights."""
    X_uint8, y = pixels_problem(2, 2000, 48, seed=1)
    X = scale_pixels(X_uint8)
    weights = np.random.default_rng(2).uniform(0.5, 2, size=len(y))
    blocks = RowBlocks(X_uint8, block_bytes=50 * 48 * 4)  # 40 blocks
    for k, sample_weight in ((2, None), (2, weights)):
        fit = core.train(blocks, y, k, core.TrainConfig(optimizer="lbfgs", l2=2.0, epochs=500,
                                                        tol=1e-9), sample_weight=sample_weight)
        assert abs(objective_gap(X, y, k, 2.0, fit, sample_weight)) <= FLOAT32_GAP
    y4 = np.random.default_rng(3).integers(0, 4, size=len(y))
    X[:, :8] += y4[:, None] / 10
    fit = core.train(X, y4, 4, core.TrainConfig(optimizer="lbfgs", l2=2.0, epochs=500, tol=1e-9))
    assert abs(objective_gap(X, y4, 4, 2.0, fit)) <= FLOAT32_GAP


def test_no_second_full_data_function():
    assert not hasattr(core, "float64_cost_and_gradient")
