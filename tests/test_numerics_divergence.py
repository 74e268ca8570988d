"""Training that goes wrong says so at the right epoch, on every method (issue 10, case 7).

"Not finite" is decided for the model we save: float32 weights whose scores must be finite
for every image. A float64 iterate past that (which the Gram loops used to carry on with
until the last epoch) is divergence at the epoch it appears.
"""

import warnings

import numpy as np
import pytest

from logreg_cli import core
from logreg_cli.features import RowBlocks, scale_pixels
from logreg_cli.dataset import load_data
from logreg_cli.errors import TrainingDiverged
from test_cli import assert_user_error, run


def float32_reference_epoch(X, y, lr, epochs):
    """First epoch t whose float32 weights or scores are not finite in plain float32
    gradient descent (binary, zero start): the oracle of the issue."""
    m, n = X.shape
    W, b = np.zeros(n, dtype=np.float32), np.float32(0)
    target = (y == 1).astype(np.float32)
    with np.errstate(all="ignore"):
        for epoch in range(epochs + 1):
            z = X @ W + b
            if not (np.isfinite(W).all() and np.isfinite(b) and np.isfinite(z).all()):
                return epoch
            if epoch == epochs:
                return None
            delta = np.float32(1) / (np.float32(1) + np.exp(-z)) - target
            W = W - np.float32(lr) * (X.T @ delta) / np.float32(m)
            b = b - np.float32(lr) * delta.mean()


def train_until_diverged(X, y, k, config, **extra):
    """Train; return (epoch named by TrainingDiverged, epochs reported before it)."""
    reported = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way
        with pytest.raises(TrainingDiverged) as caught:
            core.train(X, y, k, config, on_epoch=lambda stats: reported.append(stats.epoch),
                       **extra)
    return caught.value.epoch, len(reported)


@pytest.fixture
def small_folder(make_image_folder):
    return make_image_folder({"a": 4, "b": 4})


def methods(X_uint8, X, batch_size):
    """The same problem on every path: (name, X, config options, extra train arguments)."""
    ones = np.ones(len(X))
    return [
        ("gram-lean", X, {"method": "gram"}, {}),
        ("gram-general", X, {"method": "gram"}, {"sample_weight": ones}),
        ("plain", X, {"method": "plain"}, {}),
        ("minibatch", X, {"batch_size": batch_size}, {}),
        ("streamed", RowBlocks(X_uint8, block_bytes=4 * X.shape[1] * 3), {}, {}),
        ("streamed-minibatch", RowBlocks(X_uint8), {"batch_size": batch_size}, {}),
    ]


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "3-class"])
def test_lr_1e38_diverges_at_epoch_1_on_every_method(make_image_folder, k):
    """The first update puts the weights past float32's range: epoch 1 everywhere (the lean
    Gram loop said 299, after its last epoch), and the loop stops there."""
    data = make_image_folder({name: 4 for name in "abc"[:k]})
    dataset = load_data(data, (8, 8))
    X = scale_pixels(dataset.X)
    if k == 2:
        assert float32_reference_epoch(X, dataset.y, 1e38, 300) == 1
    named = {}
    for name, features, options, extra in methods(dataset.X, X, batch_size=4):
        config = core.TrainConfig(lr=1e38, epochs=300, **options)
        epoch, reported = train_until_diverged(features, dataset.y, k, config, **extra)
        assert reported == epoch, name  # epochs 0 .. epoch - 1 ran, then it stopped
        named[name] = epoch
    assert set(named.values()) == {1}, named


@pytest.mark.parametrize("start", ["zeros", "init"])
def test_a_diverging_run_names_the_same_epoch_on_every_full_batch_method(start):
    """Divergence in the middle of a run (the L2 step multiplies W by -249 each epoch):
    Gram space, primal and streamed descent name the same epoch, from zero weights or
    from --init weights (which the Gram space carries as s W0, s < 0 here)."""
    rng = np.random.default_rng(9)
    X_uint8 = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    X = scale_pixels(X_uint8)
    y = np.array([0, 1, 1, 0])
    init = None
    if start == "init":
        init = (np.full((6, 1), 1e3, np.float32) * [[1], [-1], [1], [-1], [1], [-1]],
                np.zeros(1, np.float32))
    named = {}
    for name, features, options, extra in methods(X_uint8, X, batch_size=2)[:5]:
        if name == "minibatch":
            continue
        config = core.TrainConfig(lr=10.0, epochs=500, l2=100.0, **options)
        named[name], reported = train_until_diverged(features, y, 2, config, init=init,
                                                     **extra)
        assert reported == named[name]
    assert len(set(named.values())) == 1 and 1 < named["plain"] < 500, named


def test_the_last_update_is_checked_too(small_folder):
    """--epochs 1: the only update goes past float32; that is epoch 1 (after 1 update),
    not epoch 0, whose weights were fine."""
    dataset = load_data(small_folder, (8, 8))
    X = scale_pixels(dataset.X)
    for method in ("gram", "plain"):
        epoch, reported = train_until_diverged(X, dataset.y, 2,
                                               core.TrainConfig(lr=1e38, epochs=1, method=method))
        assert (epoch, reported) == (1, 1)


CLI_VARIANTS = {
    "default": [],
    "class-weight": ["--class-weight", "balanced"],
    "minibatch": ["--batch-size", "4"],
    "validation": ["--val-split", "0.3"],
    "l2": ["--l2", "0.001"],
}


@pytest.mark.parametrize("options", CLI_VARIANTS.values(), ids=CLI_VARIANTS.keys())
def test_train_command_names_epoch_1_and_keeps_the_old_model(tmp_path, small_folder, options):
    model = tmp_path / "model.npz"
    model.write_bytes(b"the previous model")
    result = run("train", small_folder, "-m", model, "--size", "8x8", "--lr", "1e38",
                 "--epochs", "300", *options)
    line = assert_user_error(result)
    assert line == ("Error: --lr 1e+38: training diverged at epoch 1 (the cost or the weights "
                    "are no longer finite for a float32 model); try a smaller --lr")
    assert model.read_bytes() == b"the previous model"


@pytest.mark.parametrize("batch", [[], ["--batch-size", "4"]], ids=["full-batch", "minibatch"])
def test_streamed_feature_file_names_epoch_1(tmp_path, small_folder, batch):
    features = tmp_path / "f.npz"
    assert run("flatten", small_folder, "-o", features, "--size", "8x8", "-q").exit_code == 0
    result = run("train", features, "-m", tmp_path / "m.npz", "--stream", "--lr", "1e38",
                 "--epochs", "300", "-q", *batch)
    assert "training diverged at epoch 1 " in assert_user_error(result, "--lr 1e+38")


def test_an_l2_step_that_overshoots_blames_l2(tmp_path, small_folder):
    """lr * l2 / m = 0.5 * 100 / 8 = 6.25 > 2: the penalty alone flips and grows W."""
    result = run("train", small_folder, "-m", tmp_path / "m.npz", "--size", "8x8",
                 "--lr", "0.5", "--l2", "100", "--epochs", "400")
    line = assert_user_error(result)
    assert line.startswith("Error: --l2 100: training diverged at epoch ")
    assert line.endswith("with --lr 0.5 and 8 images each step multiplies the weights by "
                         "1 - lr*l2/m = -5.25; use an --l2 below 32")
