"""The vectorized core against oracles: finite differences, naive formulas, course values."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from logreg_cli import core
from logreg_cli.errors import LogregError, TrainingDiverged


def tiny_problem(m, n, k, seed=0):
    """Random float64 features (m x n) and labels covering all k classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    y = np.arange(m) % k
    rng.shuffle(y)
    return X, y


def total_cost(X, y, W, b, l2):
    """J(W, b) = mean cross-entropy + l2/(2m) |W|^2, through core.cost_and_delta."""
    m = X.shape[0]
    cost, _ = core.cost_and_delta(X @ W + b, y)
    return cost + 0.5 * l2 / m * np.sum(W * W)


def analytic_gradient(X, y, W, b, l2):
    """dW = X^T dZ / m + l2/m W and db = mean dZ, with dZ from core.cost_and_delta."""
    m = X.shape[0]
    _, dZ = core.cost_and_delta(X @ W + b, y)
    return X.T @ dZ / m + l2 / m * W, dZ.mean(axis=0)


def numeric_gradient(f, P, step=1e-6):
    """Central differences of the scalar f() with respect to every entry of P (in place)."""
    grad = np.zeros_like(P)
    for index in np.ndindex(P.shape):
        saved = P[index]
        P[index] = saved + step
        up = f()
        P[index] = saved - step
        down = f()
        P[index] = saved
        grad[index] = (up - down) / (2 * step)
    return grad


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "softmax"])
def test_gradient_matches_finite_differences(k):
    m, n, l2 = 7, 5, 0.7
    X, y = tiny_problem(m, n, k)
    rng = np.random.default_rng(1)
    c = core.n_outputs(k)
    W = rng.normal(scale=0.5, size=(n, c))
    b = rng.normal(scale=0.5, size=c)

    dW, db = analytic_gradient(X, y, W, b, l2)
    numeric_dW = numeric_gradient(lambda: total_cost(X, y, W, b, l2), W)
    numeric_db = numeric_gradient(lambda: total_cost(X, y, W, b, l2), b)

    np.testing.assert_allclose(dW, numeric_dW, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(db, numeric_db, rtol=1e-6, atol=1e-9)
    assert np.abs(dW).max() > 1e-3  # the check is not comparing zeros


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "softmax"])
def test_one_training_epoch_takes_the_checked_gradient_step(k):
    """core.train's first update is W0 - lr * dW with the finite-difference-checked gradient."""
    m, n, l2, lr = 9, 6, 0.5, 0.3
    X, y = tiny_problem(m, n, k, seed=2)
    X32 = X.astype(np.float32)
    rng = np.random.default_rng(3)
    c = core.n_outputs(k)
    W0 = rng.normal(scale=0.3, size=(n, c))
    b0 = rng.normal(scale=0.3, size=c)
    X64 = X32.astype(np.float64)

    dW, db = analytic_gradient(X64, y, W0, b0, l2)
    for method in ("plain", "gram"):
        config = core.TrainConfig(lr=lr, epochs=1, l2=l2, method=method)
        fit = core.train(X32, y, k, config, init=(W0, b0))
        np.testing.assert_allclose(fit.weights, W0 - lr * dW, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fit.bias, b0 - lr * db, rtol=1e-5, atol=1e-6)
        assert fit.history[0].cost == pytest.approx(total_cost(X64, y, W0, b0, l2), rel=1e-6)


# ---------------------------------------------------------------- stability


def test_sigmoid_is_stable_at_extremes():
    z = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = core.sigmoid(z)
    assert np.isfinite(a).all()
    assert a[0] == 0.0 and a[-1] == 1.0 and a[2] == 0.5
    assert a[1] == pytest.approx(math.exp(-50), rel=1e-12)


def test_softmax_is_stable_at_extremes():
    Z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        A = core.softmax(Z)
        log_A = core.log_softmax(Z)
    np.testing.assert_array_equal(A[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(A[1], [1 / 3] * 3)
    assert log_A[0, 1] == pytest.approx(-2000.0)


@pytest.mark.parametrize(
    "Z, y, expected",
    [
        (np.array([[1000.0], [-1000.0]]), np.array([0, 1]), 1000.0),  # confidently wrong
        (np.array([[1000.0], [-1000.0]]), np.array([1, 0]), 0.0),  # confidently right
        (np.array([[1000.0, -1000.0, 0.0]]), np.array([1]), 2000.0),
        (np.array([[1000.0, -1000.0, 0.0]]), np.array([0]), 0.0),
    ],
    ids=["binary-wrong", "binary-right", "softmax-wrong", "softmax-right"],
)
def test_cost_is_finite_and_exact_at_extremes(Z, y, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost, dZ = core.cost_and_delta(Z, y)
    assert np.isfinite(cost) and np.isfinite(dZ).all()
    assert cost == pytest.approx(expected, abs=1e-9)


finite_scores = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)),
                       elements=st.floats(-1e4, 1e4))


@settings(max_examples=60, deadline=None)
@given(Z=finite_scores, data=st.data())
def test_cost_and_delta_are_finite_and_bounded_for_any_scores(Z, data):
    k = 2 if Z.shape[1] == 1 else Z.shape[1]
    y = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=len(Z), max_size=len(Z))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cost, dZ = core.cost_and_delta(Z, y)
        proba = core.probabilities(Z)
    assert np.isfinite(cost) and cost >= 0
    assert np.all(np.abs(dZ) <= 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # each loss is logsumexp(Z) - Z[y] <= 2 max|Z| + log k: no overflow garbage
    assert cost <= np.max(np.abs(Z)) * 2 + np.log(k) + 1e-9


def test_binary_cost_equals_naive_formula_where_safe():
    rng = np.random.default_rng(4)
    z = rng.uniform(-6, 6, size=50)
    y = rng.integers(0, 2, size=50)
    a = 1 / (1 + np.exp(-z))
    naive = np.mean(-(y * np.log(a) + (1 - y) * np.log(1 - a)))
    cost, dZ = core.cost_and_delta(z[:, None], y)
    assert cost == pytest.approx(naive, rel=1e-12)
    np.testing.assert_allclose(dZ[:, 0], a - y, rtol=1e-12, atol=1e-15)


def test_softmax_cost_equals_naive_formula_where_safe():
    rng = np.random.default_rng(5)
    Z = rng.uniform(-6, 6, size=(40, 4))
    y = rng.integers(0, 4, size=40)
    A = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    naive = np.mean(-np.log(A[np.arange(40), y]))
    cost, dZ = core.cost_and_delta(Z, y)
    assert cost == pytest.approx(naive, rel=1e-12)
    np.testing.assert_allclose(dZ, A - np.eye(4)[y], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- learning-rate schedules


def test_inverse_decay_course_values():
    assert core.learning_rate("inverse", 0.5, 2, 100, decay_rate=1, decay_steps=1) == pytest.approx(0.5 / 3)
    assert core.learning_rate("inverse", 0.5, 2, 100) == pytest.approx(0.1667, abs=1e-4)
    assert core.learning_rate("inverse", 0.5, 100, 1000, 0.3, 100) == pytest.approx(0.5 / 1.3)
    assert core.learning_rate("inverse", 0.5, 100, 1000, 0.3, 100) == pytest.approx(0.3846, abs=1e-4)


def test_inverse_decay_staircase_holds_between_steps():
    rates = [core.learning_rate("inverse", 0.5, t, 1000, 0.3, 100) for t in (0, 99, 100, 199, 200)]
    assert rates == pytest.approx([0.5, 0.5, 0.5 / 1.3, 0.5 / 1.3, 0.5 / 1.6])


def test_exponential_decay_defaults_to_095():
    assert core.learning_rate("exponential", 0.2, 0, 50) == pytest.approx(0.2)
    assert core.learning_rate("exponential", 0.2, 3, 50) == pytest.approx(0.2 * 0.95**3)
    assert core.learning_rate("exponential", 0.2, 25, 50, 0.5, 10) == pytest.approx(0.2 * 0.5**2)


def test_sqrt_decay():
    assert core.learning_rate("sqrt", 0.3, 0, 50) == pytest.approx(0.3)
    assert core.learning_rate("sqrt", 0.3, 8, 50) == pytest.approx(0.3 / 3)
    assert core.learning_rate("sqrt", 0.3, 35, 50, 2.0, 10) == pytest.approx(0.3 * 2 / 2)


def test_linear_decay_ignores_rate_and_steps():
    assert core.learning_rate("linear", 0.4, 0, 100) == pytest.approx(0.4)
    assert core.learning_rate("linear", 0.4, 25, 100) == pytest.approx(0.3)
    assert core.learning_rate("linear", 0.4, 75, 100, 0.1, 10) == pytest.approx(0.1)


def test_no_decay_is_constant():
    assert {core.learning_rate("none", 0.005, t, 2000) for t in (0, 1, 1999)} == {0.005}


def test_training_history_records_the_schedule():
    X, y = tiny_problem(6, 4, 2)
    config = core.TrainConfig(lr=0.5, epochs=5, decay="inverse", decay_rate=1.0)
    fit = core.train(X.astype(np.float32), y, 2, config)
    assert [h.lr for h in fit.history] == pytest.approx([0.5 / (1 + t) for t in range(5)])
    assert [h.epoch for h in fit.history] == list(range(5))


# ---------------------------------------------------------------- Gram path == plain path


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "3-class"])
@pytest.mark.parametrize("l2", [0.0, 0.8], ids=["no-l2", "l2"])
@pytest.mark.parametrize("with_init", [False, True], ids=["zeros", "init"])
def test_gram_path_equals_plain_path(k, l2, with_init):
    m, n = 12, 60
    X, y = tiny_problem(m, n, k, seed=6)
    X32 = (X * 0.3).astype(np.float32)
    c = core.n_outputs(k)
    init = None
    if with_init:
        rng = np.random.default_rng(7)
        init = (rng.normal(scale=0.1, size=(n, c)), rng.normal(scale=0.1, size=c))
    fits = {
        method: core.train(X32, y, k, core.TrainConfig(lr=0.1, epochs=60, l2=l2, method=method),
                           init=init)
        for method in ("plain", "gram")
    }
    plain, gram = fits["plain"], fits["gram"]
    assert (plain.method, gram.method) == ("plain", "gram")
    np.testing.assert_allclose([h.cost for h in gram.history], [h.cost for h in plain.history],
                               rtol=1e-5)
    np.testing.assert_allclose(gram.weights, plain.weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gram.bias, plain.bias, rtol=1e-5, atol=1e-6)
    assert plain.history[-1].cost < plain.history[0].cost  # it learned something


def binary_gram_problem():
    X, y = tiny_problem(12, 60, 2, seed=11)
    return (X * 0.3).astype(np.float32), y


def test_binary_gram_loop_equals_the_general_gram_loop_over_many_blocks():
    """One sigmoid without L2 takes the lean Gram loop, whose costs come a block of epochs
    at a time; image weights of 1 force the general loop, which must give the same fit."""
    X, y = binary_gram_problem()
    config = core.TrainConfig(lr=0.05, epochs=700, method="gram")  # 3 blocks of 256 epochs
    lean = core.train(X, y, 2, config)
    general = core.train(X, y, 2, config, sample_weight=np.ones(len(y)))
    assert [h.epoch for h in lean.history] == list(range(700))
    np.testing.assert_allclose([h.cost for h in lean.history],
                               [h.cost for h in general.history], rtol=1e-12)
    np.testing.assert_allclose(lean.weights, general.weights, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(lean.bias, general.bias, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("stop_at", [0, 37, 300, 699])
@pytest.mark.parametrize("method", ["plain", "gram"])
def test_a_stop_request_keeps_the_weights_from_before_that_epoch(method, stop_at):
    """on_epoch returning True (Ctrl-C) at epoch t, even in the middle of a block of the
    lean Gram loop, returns the weights after exactly t updates."""
    X, y = binary_gram_problem()
    config = core.TrainConfig(lr=0.05, epochs=700, method=method)
    stopped = core.train(X, y, 2, config, on_epoch=lambda stats: stats.epoch == stop_at)
    assert stopped.stopped_at == stop_at and len(stopped.history) == stop_at + 1
    shorter = core.train(X, y, 2, core.TrainConfig(lr=0.05, epochs=stop_at, method=method))
    np.testing.assert_array_equal(stopped.weights, shorter.weights)
    np.testing.assert_array_equal(stopped.bias, shorter.bias)


# ---------------------------------------------------------------- mini-batches


def test_minibatch_is_reproducible_bit_for_bit_and_seeded():
    X, y = tiny_problem(20, 8, 3, seed=8)
    X32 = X.astype(np.float32)

    def run(seed):
        return core.train(X32, y, 3, core.TrainConfig(lr=0.2, epochs=15, batch_size=6, seed=seed))

    first, again, other = run(1), run(1), run(2)
    assert first.method == "plain"
    np.testing.assert_array_equal(first.weights, again.weights)
    np.testing.assert_array_equal(first.bias, again.bias)
    assert [h.cost for h in first.history] == [h.cost for h in again.history]
    assert not np.array_equal(first.weights, other.weights)


# ---------------------------------------------------------------- divergence and validation


@pytest.mark.parametrize("method", ["plain", "gram"])
def test_divergence_names_the_epoch_and_blames_l2_when_its_step_overshoots(method):
    # An L2 shrink factor of 1 - lr*l2/m = -249 flips and multiplies W every epoch.
    X, y = tiny_problem(4, 6, 2, seed=9)
    config = core.TrainConfig(lr=10.0, epochs=500, l2=100.0, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error is the one message: no overflow warnings
        with pytest.raises(TrainingDiverged) as caught:
            core.train(X.astype(np.float32), y, 2, config)
    message = str(caught.value)
    assert 0 < caught.value.epoch < 500
    assert f"epoch {caught.value.epoch}" in message
    assert message.startswith("--l2 100: ")
    assert "use an --l2 below 0.8" in message  # 2 m / lr: the L2 step alone then contracts


def test_lean_gram_loop_names_the_epoch_of_divergence_inside_a_block():
    """Its costs are computed a block of epochs at a time; the epoch named is still the
    first one whose weights are not finite for a float32 model (some input's score past
    core.SCORE_LIMIT), with every earlier cost finite and reported: epoch 6 here, as on the
    plain path. (With lr 1e306 the very first update is past float32's range: epoch 1.)"""
    X, y = binary_gram_problem()
    X = np.vstack([X, X[:1]]) * 10  # a duplicate image with the other label: never separable
    y = np.append(y, 1 - y[0])
    epochs = {}
    for method in ("gram", "plain"):
        costs = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(TrainingDiverged) as caught:
                core.train(X, y, 2, core.TrainConfig(lr=1.15e36, epochs=600, method=method),
                           on_epoch=lambda stats: costs.append(stats.cost))
        assert caught.value.epoch == len(costs)
        assert all(math.isfinite(cost) for cost in costs)
        epochs[method] = caught.value.epoch
    assert epochs == {"gram": 6, "plain": 6}


@pytest.mark.parametrize(
    "options, option_name",
    [
        ({"lr": -1.0}, "--lr"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"lr": float("inf")}, "--lr"),
        ({"epochs": -1}, "--epochs"),
        ({"decay": "cosine"}, "--decay"),
        ({"decay_rate": 0.0}, "--decay-rate"),
        ({"decay_rate": -0.5}, "--decay-rate"),
        ({"decay_steps": 0}, "--decay-steps"),
        ({"batch_size": 0}, "--batch-size"),
        ({"l2": -0.1}, "--l2"),
        ({"l2": float("nan")}, "--l2"),
        ({"method": "newton"}, "newton"),
    ],
)
def test_train_config_rejects_bad_values(options, option_name):
    with pytest.raises(LogregError, match=option_name):
        core.TrainConfig(**options).validate()


def test_train_config_accepts_defaults_and_edge_values():
    core.TrainConfig().validate()
    core.TrainConfig(epochs=0, l2=0.0, batch_size=1, decay="linear", decay_rate=2.0).validate()


def test_choose_method():
    full = core.TrainConfig(epochs=2000)
    assert core.choose_method(209, 12288, 1, full) == "gram"  # the exercise: m << n
    assert core.choose_method(10, 1000, 3, full) == "gram"
    assert core.choose_method(1000, 100, 1, full) == "plain"  # m > n
    assert core.choose_method(100, 100, 1, full) == "plain"
    assert core.choose_method(209, 12288, 1, core.TrainConfig(batch_size=32)) == "plain"
    assert core.choose_method(209, 12288, 1, core.TrainConfig(method="plain")) == "plain"


def test_gram_method_refuses_minibatches():
    with pytest.raises(LogregError, match="full-batch"):
        core.choose_method(10, 100, 1, core.TrainConfig(method="gram", batch_size=4))


def test_zero_epochs_returns_the_start():
    X, y = tiny_problem(5, 4, 2)
    fit = core.train(X.astype(np.float32), y, 2, core.TrainConfig(epochs=0))
    assert fit.history == [] and fit.final_cost is None
    np.testing.assert_array_equal(fit.weights, np.zeros((4, 1), dtype=np.float32))


@pytest.mark.parametrize("method", ["plain", "gram"])
def test_train_leaves_the_callers_init_unchanged(method):
    X, y = tiny_problem(5, 8, 2)
    W0, b0 = np.full((8, 1), 0.1), np.full(1, 0.2)
    core.train(X.astype(np.float32), y, 2, core.TrainConfig(lr=0.5, epochs=3, method=method),
               init=(W0, b0))
    np.testing.assert_array_equal(W0, np.full((8, 1), 0.1))
    np.testing.assert_array_equal(b0, np.full(1, 0.2))


@pytest.mark.parametrize("k, lr", [(3, 1e38), (2, 1e100)], ids=["3-class", "binary"])
@pytest.mark.parametrize("method", ["plain", "gram"])
def test_weights_too_large_for_float32_scores_are_divergence(method, k, lr):
    """An absurd lr keeps the float64 Gram iterates finite, but the float32 model overflows
    (with 1e100, past float32's range: the cast itself must not warn)."""
    X = np.random.default_rng(10).uniform(0, 1, size=(6, 400)).astype(np.float32)
    y = np.arange(6) % k if k == 3 else np.array([0, 0, 0, 0, 0, 1])  # unbalanced: b grows
    config = core.TrainConfig(lr=lr, epochs=5, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TrainingDiverged, match="smaller --lr"):
            core.train(X, y, k, config)
