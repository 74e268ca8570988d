"""--optimizer lbfgs: full batch, no learning rate, stops on --tol or --epochs; it reaches
scipy's L-BFGS-B optimum of the same objective (J = mean CE + l2/(2m)|W|^2, bias not
penalised) on small convex problems, on every path."""

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import minimize

from logreg_cli import core
from logreg_cli.cli import cli
from logreg_cli.features import RowBlocks, scale_pixels
from logreg_cli.lbfgs import TwoLoop, wolfe_step
from logreg_cli.model import load_model
from tiny_models import write_class_folders


# How close to the optimum float32 products let L-BFGS get: its kernel computes X W and
# X^T dZ in float32 (blocks summed in float64); the line search stalls where the cost's
# rounding noise hides its decrease (seen: 1e-9 to 1.4e-7 relative on these problems).
FLOAT32_GAP = 1e-6


def objective_gap(X, y, k, l2, fit, sample_weight=None, optimum=None):
    """(J(fit's float64 weights) - J*) / J*, both from the float64 objective below."""
    J = optimum if optimum is not None else scipy_optimum(X, y, k, l2, sample_weight)[0]
    theta = np.concatenate([fit.weights64.ravel(), fit.bias64])
    return (float64_objective(X, y, k, l2, sample_weight)(theta)[0] - J) / J


def scipy_optimum(X, y, k, l2, sample_weight=None):
    """The minimum of J by scipy's L-BFGS-B on a float64 numpy objective written here."""
    c = 1 if k == 2 else k
    found = minimize(float64_objective(X, y, k, l2, sample_weight), np.zeros(X.shape[1] * c + c),
                     jac=True, method="L-BFGS-B",
                     options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000})
    n = X.shape[1]
    return found.fun, found.x[: n * c].reshape(n, c), found.x[n * c :]


def float64_objective(X, y, k, l2, sample_weight=None):
    """theta = (W.ravel(), b) -> (J, dJ/dtheta), every product in float64."""
    X = X.astype(np.float64)
    m, n = X.shape
    c = 1 if k == 2 else k
    weights = np.ones(m) if sample_weight is None else sample_weight

    def objective(theta):
        W, b = theta[: n * c].reshape(n, c), theta[n * c :]
        Z = X @ W + b
        if c == 1:
            z, t = Z[:, 0], (y == 1).astype(float)
            losses = np.logaddexp(0, z) - t * z
            dZ = (1 / (1 + np.exp(-z)) - t)[:, None]
        else:
            log_p = Z - Z.max(axis=1, keepdims=True)
            log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
            losses = -log_p[np.arange(m), y]
            dZ = np.exp(log_p) - np.eye(k)[y]
        dZ *= weights[:, None]
        J = (weights * losses).sum() / m + l2 / (2 * m) * np.sum(W * W)
        grad = np.concatenate([(X.T @ dZ / m + l2 / m * W).ravel(), dZ.sum(axis=0) / m])
        return J, grad

    return objective


def tiny_problem(k, m=80, n=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n)).astype(np.float32)
    y = rng.integers(0, k, size=m)
    X[:, 0] += y
    return X, y


@pytest.mark.parametrize("k, l2, weighted", [(2, 0.5, False), (3, 0.5, False), (2, 4.0, True),
                                             (4, 1.0, True)])
def test_lbfgs_reaches_scipys_optimum(k, l2, weighted):
    X, y = tiny_problem(k)
    weights = np.random.default_rng(1).uniform(0.5, 2, size=len(y)) if weighted else None
    fit = core.train(X, y, k, core.TrainConfig(optimizer="lbfgs", l2=l2, epochs=500, tol=1e-9),
                     sample_weight=weights)
    J, W, b = scipy_optimum(X, y, k, l2, weights)
    assert fit.stopped_at is not None and fit.epochs_run < 200  # stopped on --tol
    assert abs(objective_gap(X, y, k, l2, fit, weights, J)) <= FLOAT32_GAP
    assert abs(fit.final_cost - J) <= FLOAT32_GAP * J  # the kernel's cost of those weights
    np.testing.assert_allclose(fit.weights64, W, atol=5e-3)
    np.testing.assert_allclose(fit.bias64, b, atol=5e-3)
    costs = [h.cost for h in fit.history]
    assert all(later <= earlier for earlier, later in zip(costs, costs[1:]))  # Wolfe: descent


def test_tol_and_epochs_stop_lbfgs():
    X, y = tiny_problem(3)
    loose = core.train(X, y, 3, core.TrainConfig(optimizer="lbfgs", l2=0.5, tol=1e-2))
    tight = core.train(X, y, 3, core.TrainConfig(optimizer="lbfgs", l2=0.5, tol=1e-9))
    assert loose.epochs_run < tight.epochs_run
    J, _, _ = scipy_optimum(X, y, 3, 0.5)
    assert objective_gap(X, y, 3, 0.5, loose, optimum=J) > 1e-5
    assert objective_gap(X, y, 3, 0.5, tight, optimum=J) <= FLOAT32_GAP
    capped = core.train(X, y, 3, core.TrainConfig(optimizer="lbfgs", l2=0.5, epochs=5))
    assert len(capped.history) == 5 and capped.epochs_run == 5 and capped.stopped_at is None


def test_lbfgs_from_init_streamed_and_with_validation_reach_the_same_optimum():
    rng = np.random.default_rng(4)
    X_uint8 = rng.integers(0, 256, (100, 48), dtype=np.uint8)
    y = np.arange(100) % 3
    X = scale_pixels(X_uint8)
    config = core.TrainConfig(optimizer="lbfgs", l2=2.0, epochs=500, tol=1e-9)
    J, W, _ = scipy_optimum(X, y, 3, 2.0)
    streamed = core.train(RowBlocks(X_uint8, block_bytes=15 * 48 * 4), y, 3, config)
    started = core.train(X, y, 3, config, init=(rng.normal(size=(48, 3)), rng.normal(size=3)))
    validated = core.train(X, y, 3, config, validation=core.Validation(X[:30], y[:30]))
    assert streamed.method == "stream"
    for fit in (streamed, started):
        assert abs(objective_gap(X, y, 3, 2.0, fit, optimum=J)) <= FLOAT32_GAP
        np.testing.assert_allclose(fit.weights64, W, atol=5e-3)
    # the last iterate's cost (validation keeps an earlier epoch's weights)
    assert abs(validated.final_cost - J) <= FLOAT32_GAP * J
    # with validation the kept weights are those of the lowest validation cost
    val_costs = [h.val_cost for h in validated.history]
    assert validated.best_epoch == int(np.argmin(val_costs))
    Z = X[:30] @ validated.weights64 + validated.bias64
    assert abs(core.log_loss(Z, y[:30]) - min(val_costs)) < 1e-6


def test_lbfgs_early_stop_keeps_the_best_validation_epoch():
    X, y = tiny_problem(2)
    config = core.TrainConfig(optimizer="lbfgs", epochs=50, early_stop=2)
    fit = core.train(X, y, 2, config, validation=core.Validation(X, 1 - y))
    assert fit.best_epoch == 0 and fit.early_stopped and fit.stopped_at == 2
    assert not fit.weights.any()


def test_two_loop_estimate_meets_the_secant_equation_and_skips_bad_pairs():
    """BFGS's inverse Hessian H maps the latest y to its s exactly (H y = s), whatever the
    pairs before it; a pair with y.s <= 0 would break positive definiteness: skipped."""
    rng = np.random.default_rng(0)
    B = rng.normal(size=(6, 6))
    A = B @ B.T + 6 * np.eye(6)
    estimate = TwoLoop(memory=3)
    for _ in range(5):
        s = rng.normal(size=6)
        y = A @ s
        estimate.remember(s, y)
    np.testing.assert_allclose(estimate.direction(y), -s, rtol=1e-10)
    assert len(estimate.pairs) == 3
    estimate.remember(s, -s)
    assert len(estimate.pairs) == 3 and estimate.pairs[-1][1] is y


def test_wolfe_step_satisfies_both_conditions():
    def evaluate(a):  # f(x) = (x - 3)^4 + x^2 along p = 1 from x = 0
        x = a
        return (x - 3) ** 4 + x * x, None, 4 * (x - 3) ** 3 + 2 * x

    f0, slope0 = 81.0, -108.0
    for start in (1e-3, 1.0, 50.0):
        a, f, _ = wolfe_step(evaluate, f0, slope0, start)
        assert f <= f0 + 1e-4 * a * slope0
        assert abs(evaluate(a)[2]) <= 0.9 * abs(slope0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("lbfgs")
    write_class_folders(root / "data", ["blue", "green", "red"], 6)
    return root / "data"


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def test_the_command_line_trains_with_lbfgs_and_records_it(folders, tmp_path):
    result = invoke("train", folders, "-m", tmp_path / "m.npz", "--size", "8x8",
                    "--optimizer", "lbfgs", "--l2", "1", "--tol", "1e-7", "-q")
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "m.npz")
    assert model.metadata["options"]["optimizer"] == "lbfgs"
    assert model.metadata["options"]["tol"] == 1e-7
    assert model.metadata["epochs_run"] < 2000  # stopped on --tol


@pytest.mark.parametrize("args, message", [
    (("--batch-size", "4"), "Error: --optimizer lbfgs is full batch: it takes no --batch-size"),
    (("--decay", "inverse"), "Error: --optimizer lbfgs has no learning rate: it takes no --decay"),
])
def test_lbfgs_refuses_mini_batches_and_schedules(folders, tmp_path, args, message):
    result = invoke("train", folders, "-m", tmp_path / "m.npz", "--optimizer", "lbfgs", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [message]
    with pytest.raises(core.LogregError, match="--batch-size"):
        core.train(*tiny_problem(2), 2, core.TrainConfig(optimizer="lbfgs", batch_size=4))


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam", "lbfgs"])
def test_a_stop_request_keeps_the_weights_the_epoch_was_measured_with(optimizer):
    """What Ctrl-C does (on_epoch returns True): a stop at epoch 3 keeps the weights after 3
    updates, those of a run of --epochs 3, for every optimizer."""
    X, y = tiny_problem(3)
    config = core.TrainConfig(optimizer=optimizer, lr=0.05, epochs=20, l2=0.5)
    stopped = core.train(X, y, 3, config, on_epoch=lambda stats: stats.epoch == 3)
    short = core.train(X, y, 3, core.TrainConfig(optimizer=optimizer, lr=0.05, epochs=3, l2=0.5))
    assert stopped.epochs_run == short.epochs_run == 3 and len(stopped.history) == 4
    np.testing.assert_array_equal(stopped.weights, short.weights)
    np.testing.assert_array_equal(stopped.bias, short.bias)
