"""--optimizer momentum and adam: the course's formulas, checked against a float64 numpy
reference on tiny problems, on every path (full batch, mini-batches, streamed, --init,
validation and early stopping, schedules) and through the command line."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli import core
from logreg_cli.cli import cli
from logreg_cli.features import RowBlocks, scale_pixels
from logreg_cli.model import load_model
from tiny_models import write_class_folders


def reference(X, y, k, optimizer, lrs, batch_size=None, l2=0.0, seed=0, W0=None, b0=None):
    """Costs per epoch and final (W, b) in float64 of the same descent, written plainly:
    dW = X^T (A - Y) / batch + l2/m W, db = mean(A - Y); momentum v = .9 v + .1 g, W -= lr v;
    Adam with bias correction, t counting steps."""
    X = X.astype(np.float64)
    m, n = X.shape
    c = 1 if k == 2 else k
    W = np.zeros((n, c)) if W0 is None else W0.astype(np.float64).copy()
    b = np.zeros(c) if b0 is None else b0.astype(np.float64).copy()
    Y = (y == 1).astype(float)[:, None] if c == 1 else np.eye(k)[y]

    def activations(Xs):
        Z = Xs @ W + b
        if c == 1:
            return 1 / (1 + np.exp(-Z))
        e = np.exp(Z - Z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    state = {"t": 0, "vW": 0, "vb": 0, "sW": 0, "sb": 0}
    rng = np.random.default_rng(seed)
    costs = []
    for lr in lrs:
        A = activations(X)
        p = np.where(Y == 1, A, 1 - A) if c == 1 else A[np.arange(m), y][:, None]
        costs.append(-np.log(p).sum() / m + l2 / (2 * m) * np.sum(W * W))
        size = batch_size or m
        order = rng.permutation(m) if batch_size else np.arange(m)
        for start in range(0, m, size):
            rows = np.sort(order[start : start + size])
            dZ = activations(X[rows]) - Y[rows]
            dW = X[rows].T @ dZ / len(rows) + l2 / m * W
            db = dZ.mean(axis=0)
            if optimizer == "momentum":
                state["vW"] = 0.9 * state["vW"] + 0.1 * dW
                state["vb"] = 0.9 * state["vb"] + 0.1 * db
                W -= lr * state["vW"]
                b -= lr * state["vb"]
            else:
                state["t"] += 1
                t = state["t"]
                for g, v, s, target in ((dW, "vW", "sW", W), (db, "vb", "sb", b)):
                    state[v] = 0.9 * state[v] + 0.1 * g
                    state[s] = 0.999 * state[s] + 0.001 * g * g
                    target -= lr * (state[v] / (1 - 0.9**t)) / (
                        np.sqrt(state[s] / (1 - 0.999**t)) + 1e-8)
    return costs, W, b


def tiny_problem(k, m=60, n=12, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n)).astype(np.float32)
    y = rng.integers(0, k, size=m)
    X[:, 0] += y  # something to learn
    return X, y


CASES = [  # k, batch_size, l2, decay
    (2, None, 0.0, "none"), (2, None, 3.0, "inverse"), (3, None, 0.5, "none"),
    (2, 16, 1.0, "exponential"), (3, 7, 0.0, "sqrt"), (3, 16, 2.0, "linear"),
]


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("k, batch_size, l2, decay", CASES)
def test_the_optimizer_follows_the_float64_reference(optimizer, k, batch_size, l2, decay):
    X, y = tiny_problem(k)
    config = core.TrainConfig(optimizer=optimizer, lr=0.05, epochs=30, batch_size=batch_size,
                              l2=l2, decay=decay, seed=3)
    lrs = list(config.learning_rates())
    fit = core.train(X, y, k, config)
    costs, W, b = reference(X, y, k, optimizer, lrs, batch_size, l2, seed=3)
    assert fit.method == "plain" and len(fit.history) == 30
    np.testing.assert_allclose([h.cost for h in fit.history], costs, rtol=1e-5)
    np.testing.assert_allclose(fit.weights64, W, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fit.bias64, b, rtol=1e-4, atol=1e-6)
    # not gradient descent under another name: its weights differ from gd's
    gd = core.train(X, y, k, core.TrainConfig(lr=0.05, epochs=30, batch_size=batch_size,
                                              l2=l2, decay=decay, seed=3, method="plain"))
    assert np.abs(gd.weights64 - fit.weights64).max() > 1e-3


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_init_continues_from_the_given_weights(optimizer):
    X, y = tiny_problem(3)
    rng = np.random.default_rng(5)
    W0, b0 = rng.normal(size=(12, 3)) * 0.1, rng.normal(size=3) * 0.1
    config = core.TrainConfig(optimizer=optimizer, lr=0.05, epochs=10)
    fit = core.train(X, y, 3, config, init=(W0, b0))
    costs, W, b = reference(X, y, 3, optimizer, list(config.learning_rates()), W0=W0, b0=b0)
    np.testing.assert_allclose([h.cost for h in fit.history], costs, rtol=1e-5)
    np.testing.assert_allclose(fit.weights64, W, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
@pytest.mark.parametrize("batch_size", [None, 15])
def test_streamed_rows_give_the_in_memory_descent(optimizer, batch_size):
    rng = np.random.default_rng(2)
    X_uint8 = rng.integers(0, 256, (100, 48), dtype=np.uint8)
    y = np.arange(100) % 3
    blocks = RowBlocks(X_uint8, block_bytes=15 * 48 * 4)
    config = core.TrainConfig(optimizer=optimizer, lr=0.01, epochs=20, batch_size=batch_size)
    streamed = core.train(blocks, y, 3, config)
    in_memory = core.train(scale_pixels(X_uint8), y, 3, config)
    assert streamed.method == "stream"
    np.testing.assert_allclose([h.cost for h in streamed.history],
                               [h.cost for h in in_memory.history], rtol=1e-6)
    np.testing.assert_allclose(streamed.weights, in_memory.weights, rtol=1e-5, atol=1e-6)


def test_gram_space_is_not_used_for_momentum_or_adam():
    """m < n with many epochs picks the Gram space for gd; momentum and Adam stay primal
    (their velocity lives there) and must not be forced into it."""
    X, y = tiny_problem(2, m=20, n=400)
    assert core.train(X, y, 2, core.TrainConfig(epochs=50)).method == "gram"
    for optimizer in ("momentum", "adam"):
        fit = core.train(X, y, 2, core.TrainConfig(optimizer=optimizer, epochs=50))
        assert fit.method == "plain"
        with pytest.raises(core.LogregError, match="--optimizer"):
            core.TrainConfig(optimizer=optimizer, method="gram").validate()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_validation_keeps_the_best_epoch_and_early_stop_stops(optimizer):
    X, y = tiny_problem(2)
    # the training images with their labels flipped: the validation cost rises from the start
    config = core.TrainConfig(optimizer=optimizer, lr=0.05, epochs=50, early_stop=3)
    fit = core.train(X, y, 2, config, validation=core.Validation(X, 1 - y))
    assert fit.best_epoch == 0 and fit.early_stopped and fit.stopped_at == 3
    assert not fit.weights.any() and not fit.bias.any()  # epoch 0's weights: the zeros


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("optim")
    write_class_folders(root / "data", ["blue", "green", "red"], 6)
    return root / "data"


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_the_command_line_trains_with_the_optimizer_and_the_model_records_it(folders, tmp_path,
                                                                            optimizer):
    model_path = tmp_path / "m.npz"
    result = CliRunner().invoke(cli, ["train", str(folders), "-m", str(model_path), "--size",
                                      "8x8", "--epochs", "20", "--lr", "0.01", "--optimizer",
                                      optimizer, "-q"])
    assert result.exit_code == 0, result.output
    model = load_model(model_path)
    assert model.metadata["options"]["optimizer"] == optimizer
    gd_path = tmp_path / "gd.npz"
    CliRunner().invoke(cli, ["train", str(folders), "-m", str(gd_path), "--size", "8x8",
                             "--epochs", "20", "--lr", "0.01", "-q"])
    gd = load_model(gd_path)
    assert gd.metadata["options"]["optimizer"] == "gd"
    assert not np.array_equal(gd.weights, model.weights)
    shown = CliRunner().invoke(cli, ["inspect", str(model_path), "--format", "json"])
    assert json.loads(shown.stdout)["options"]["optimizer"] == optimizer


def test_an_unknown_optimizer_is_one_usage_error(folders, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(folders), "-m", str(tmp_path / "m.npz"),
                                      "--optimizer", "rmsprop"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("Error: Invalid value for '--optimizer': 'rmsprop' is not one of "
                             "'gd', 'momentum', 'adam', 'lbfgs'. (see 'logreg train -h')\n")
