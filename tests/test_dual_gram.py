"""--optimizer lbfgs in the Gram space (m < n): W = s W0 + X^T A, inner products through
K = X X^T. The same L-BFGS as on the features: the same iterates up to rounding, the same
optimum, with validation, early stopping, --init and class weights; chosen by itself when
there are fewer images than features, and it never runs the O(m n) kernel per iteration."""

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli import core
from logreg_cli.cli import cli
from logreg_cli.features import scale_pixels
from logreg_cli.model import load_model
from test_dual_kernel import kernel_calls, pixels_problem  # noqa: F401 (a fixture)
from test_optim_lbfgs import FLOAT32_GAP, objective_gap
from tiny_models import write_class_folders

M, N = 60, 640


@pytest.fixture(scope="module")
def wide():
    """60 images of 640 features: fewer images than features, as 64x64 photos."""
    X_uint8, y = pixels_problem(3, M, N)
    return scale_pixels(X_uint8), y


def variants():
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.5, 2, size=M)
    init = (0.01 * rng.normal(size=(N, 3)), rng.normal(size=3))
    return {
        "binary": (2, 1.0, None, None),
        "softmax": (3, 1.0, None, None),
        "softmax no l2": (3, 0.0, None, None),
        "class weights": (3, 5.0, weights, None),
        "binary weights": (2, 5.0, weights, None),
        "init": (3, 1.0, None, init),
        "binary init": (2, 1.0, None, (init[0][:, :1], init[1][:1])),
    }


def both(X, y, k, sample_weight=None, init=None, validation=None, **options):
    """{method: Fit} of lbfgs on the features and in the Gram space."""
    return {method: core.train(X, y, k, core.TrainConfig(optimizer="lbfgs", method=method,
                                                         **options),
                               sample_weight=sample_weight, init=init, validation=validation)
            for method in ("plain", "gram")}


@pytest.mark.parametrize("name", variants())
def test_gram_space_follows_the_features_iterates(wide, name):
    X, y = wide
    k, l2, sample_weight, init = variants()[name]
    y = y % k
    fits = both(X, y, k, sample_weight, init, l2=l2, epochs=8)
    plain, gram = fits["plain"], fits["gram"]
    assert (plain.method, gram.method) == ("plain", "gram") and gram.epochs_run == 8
    # float32 products know J to about 1e-7 of its start (log k), however low it gets
    np.testing.assert_allclose([h.cost for h in gram.history],
                               [h.cost for h in plain.history], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([h.lr for h in gram.history],  # the step lengths
                               [h.lr for h in plain.history], rtol=1e-3)
    scale = np.abs(plain.weights64).max()
    np.testing.assert_allclose(gram.weights64, plain.weights64, atol=1e-5 * scale)
    np.testing.assert_allclose(gram.bias64, plain.bias64, atol=1e-5 * max(1, scale))


@pytest.mark.parametrize("name", ["binary weights", "init"])
def test_gram_space_reaches_the_same_optimum(wide, name):
    X, y = wide
    k, l2, sample_weight, init = variants()[name]
    y = y % k
    fits = both(X, y, k, sample_weight, init, l2=l2, epochs=1000, tol=1e-9)
    for fit in fits.values():
        assert fit.epochs_run < 1000  # stopped on --tol or on rounding
        assert abs(objective_gap(X, y, k, l2, fit, sample_weight)) <= FLOAT32_GAP


def test_gram_space_keeps_the_best_validation_epoch_and_stops_early(wide):
    X, y = wide
    rng = np.random.default_rng(7)
    X_val = scale_pixels(rng.integers(0, 256, size=(20, N), dtype=np.uint8))
    y_val = rng.integers(0, 3, size=20)  # noise: the validation cost soon rises
    validation = core.Validation(X_val, y_val)
    fits = both(X, y, 3, validation=validation, l2=0.1, epochs=100, early_stop=3)
    plain, gram = fits["plain"], fits["gram"]
    assert gram.early_stopped and plain.early_stopped
    assert gram.best_epoch == plain.best_epoch and gram.stopped_at == plain.stopped_at
    assert gram.stopped_at == gram.best_epoch + 3
    np.testing.assert_allclose([h.val_cost for h in gram.history],
                               [h.val_cost for h in plain.history], rtol=1e-6)
    # the kept weights are those of the best epoch, scored as the history says
    kept = core.log_loss(core.scores(X_val, gram.weights, gram.bias), y_val)
    assert abs(kept - gram.best.val_cost) < 1e-5
    np.testing.assert_allclose(gram.weights64, plain.weights64,
                               atol=1e-5 * np.abs(plain.weights64).max())


def test_fewer_images_than_features_run_in_the_gram_space(wide, kernel_calls):  # noqa: F811
    X, y = wide
    fit = core.train(X, y, 3, core.TrainConfig(optimizer="lbfgs", l2=1.0, epochs=50))
    assert fit.method == "gram" and kernel_calls == []
    tall = core.train(X[:, :40], y, 3, core.TrainConfig(optimizer="lbfgs", l2=1.0, epochs=5))
    assert tall.method == "plain" and len(kernel_calls) >= 6
    assert core.choose_method(209, 12288, 1, core.TrainConfig(optimizer="lbfgs")) == "gram"
    assert core.choose_method(4000, 3072, 4, core.TrainConfig(optimizer="lbfgs")) == "plain"
    core.TrainConfig(optimizer="lbfgs", method="gram").validate()  # allowed, as for gd


def test_the_command_line_records_the_gram_space(tmp_path):
    write_class_folders(tmp_path / "data", ["blue", "green", "red"], 6)  # 18 images, n 192
    result = CliRunner().invoke(cli, ["train", str(tmp_path / "data"), "-m",
                                      str(tmp_path / "m.npz"), "--size", "8x8",
                                      "--optimizer", "lbfgs", "--l2", "1", "-q"])
    assert result.exit_code == 0, result.output
    metadata = load_model(tmp_path / "m.npz").metadata
    assert metadata["method"] == "gram" and metadata["options"]["optimizer"] == "lbfgs"
    assert metadata["epochs_run"] < 2000
