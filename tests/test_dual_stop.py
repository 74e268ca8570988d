"""L-BFGS's stop: no partial derivative above --tol, or J settled (it fell by at most
--tol x J over the last 10 iterations). The default --tol 1e-6 lands within 1e-4 relative
objective of the optimum without running on until the gradient itself is 1e-6."""

import numpy as np
import pytest

from logreg_cli import core
from logreg_cli.features import scale_pixels
from test_optim_lbfgs import float64_objective, objective_gap


def test_settled_compares_the_cost_ten_iterations_back():
    costs = [1.0 - 1e-7 * i for i in range(11)]  # fell by 1e-6 over 10 iterations
    assert core.SETTLE_WINDOW == 10
    assert core.settled(costs, 1.01e-6) and not core.settled(costs, 0.99e-6)
    assert not core.settled(costs[:10], 1.0)  # fewer than 11 costs: nothing to compare
    assert core.settled([1.0] * 10 + [float("nan")], 1e-6)  # nan never counts as progress


def faint_problem(k, m=120, n=600, seed=4):
    """Features /255 with a faint class signal: the cost settles before the gradient is 1e-6."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=m)
    X_uint8 = rng.integers(0, 200, size=(m, n), dtype=np.uint8)
    X_uint8[:, :8] += (2 * y).astype(np.uint8)[:, None]
    return scale_pixels(X_uint8), y


@pytest.mark.parametrize("k, method", [(2, "plain"), (2, "gram"), (3, "plain"), (3, "gram")])
def test_default_stop_is_within_1e_4_of_the_optimum_by_the_first_settled_epoch(k, method):
    X, y = faint_problem(k)
    fit = core.train(X, y, k, core.TrainConfig(optimizer="lbfgs", l2=1.0, method=method))
    costs = [h.cost for h in fit.history]
    stop = fit.stopped_at
    assert stop is not None and stop == len(costs) - 1
    # no later than the first settled epoch (rounding or the gradient may stop it sooner)
    assert all(costs[i - 10] - costs[i] > 1e-6 * costs[i] for i in range(10, stop))
    assert 0 <= objective_gap(X, y, k, 1.0, fit) <= 1e-4


@pytest.mark.parametrize("k, m, n, method", [(2, 120, 600, "plain"), (2, 120, 600, "gram"),
                                             (3, 300, 200, "plain")])
def test_a_settled_cost_stops_where_the_gradient_would_not(k, m, n, method):
    """--tol 1e-4: J fell by at most 1e-4 J over 10 iterations while a partial derivative
    is still above 1e-4: the settle rule stopped it, at its first settled epoch."""
    X, y = faint_problem(k, m, n)
    fit = core.train(X, y, k, core.TrainConfig(optimizer="lbfgs", l2=1.0, method=method,
                                                tol=1e-4))
    costs = [h.cost for h in fit.history]
    stop = fit.stopped_at
    assert costs[stop - 10] - costs[stop] <= 1e-4 * costs[stop]
    assert all(costs[i - 10] - costs[i] > 1e-4 * costs[i] for i in range(10, stop))
    theta = np.concatenate([fit.weights64.ravel(), fit.bias64])
    assert np.abs(float64_objective(X, y, k, 1.0)(theta)[1]).max() > 1e-4


def test_a_larger_tol_stops_sooner():
    X, y = faint_problem(3)
    runs = [core.train(X, y, 3, core.TrainConfig(optimizer="lbfgs", l2=1.0, tol=tol))
            for tol in (1e-2, 1e-4, 1e-6)]
    assert runs[0].epochs_run < runs[1].epochs_run < runs[2].epochs_run
