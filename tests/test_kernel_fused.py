"""issue 13 part 2: X stays uint8 in memory and one fused kernel (core.fused_gradient) serves
float32 X, uint8 rows in memory and rows streamed from a feature file alike."""

import sys

import numpy as np
import pytest

from logreg_cli import api, core, training
from logreg_cli.features import RowBlocks, open_feature_file, scale_pixels
from logreg_cli.model import load_model

from feature_files import write_feature_file
from test_streaming import peak_rss_of


def reference_gradient(X, W, b, y, k, weights):
    """float64 numpy of the same formulas: (sum of losses, X^T dZ, sum of dZ)."""
    X = X.astype(np.float64)
    Z = X @ W + b
    if k == 2:
        a = 1 / (1 + np.exp(-Z[:, 0]))
        losses = -(y * np.log(a) + (1 - y) * np.log(1 - a))
        dZ = (a - y)[:, None]
    else:
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        losses = -np.log(P[np.arange(len(y)), y])
        dZ = P.copy()
        dZ[np.arange(len(y)), y] -= 1
    dZ *= weights[:, None]
    return float((losses * weights).sum()), X.T @ dZ, dZ.sum(axis=0)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("standardize", [False, True])
def test_fused_kernel_is_the_gradient_for_every_kind_of_rows(tmp_path, k, standardize):
    rng = np.random.default_rng(k)
    m, n = 700, 3000  # 349 rows a kernel block: two full blocks and a part
    X_uint8 = rng.integers(0, 256, (m, n), dtype=np.uint8)
    y = rng.integers(0, k, m)
    weights = rng.uniform(0.5, 2.0, m)
    mean, scale = (X_uint8.mean(axis=0).astype(np.float32),
                   X_uint8.std(axis=0).astype(np.float32) + 1) if standardize else (None, None)
    c = core.n_outputs(k)
    W32 = (rng.standard_normal((n, c)) * 0.01).astype(np.float32)
    b = rng.standard_normal(c)
    X32 = scale_pixels(X_uint8, mean, scale)
    path = tmp_path / "f.npz"
    from logreg_cli.dataset import Dataset, save_features
    save_features(Dataset(X_uint8, y, [str(i) for i in range(k)],
                          [f"{i}.png" for i in range(m)], (1000, 1)), path, {})
    kinds = {"float32": X32,
             "uint8 in memory": RowBlocks(X_uint8, mean=mean, scale=scale, in_memory=True),
             "streamed": RowBlocks(open_feature_file(path).X, mean=mean, scale=scale)}
    results = {name: core.fused_gradient(X, W32, b, y, weights) for name, X in kinds.items()}
    cost, grad_W, grad_b = reference_gradient(X32, W32.astype(np.float64), b, y, k, weights)
    for name, (got_cost, got_W, got_b) in results.items():
        assert got_W.shape == (n, c) and got_W.dtype == np.float64, name
        np.testing.assert_allclose(got_cost, cost, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(got_W, grad_W, rtol=2e-4, atol=1e-3, err_msg=name)
        np.testing.assert_allclose(got_b, grad_b, rtol=1e-6, atol=1e-6, err_msg=name)
    # the same blocks, the same arithmetic: float32, uint8 in memory and streamed agree exactly
    for name, got in results.items():
        assert got[0] == results["float32"][0], name
        np.testing.assert_array_equal(got[1], results["float32"][1], err_msg=name)


def test_fused_kernel_reuses_one_buffer_and_never_converts_x_whole(monkeypatch):
    X_uint8 = np.random.default_rng(0).integers(0, 256, (2000, 3072), dtype=np.uint8)
    rows = RowBlocks(X_uint8, in_memory=True)
    made = []
    real_empty = np.empty

    def counting_empty(shape, *args, **kwargs):
        made.append(np.prod(shape))
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(np, "empty", counting_empty)
    for _ in range(3):
        core.fused_gradient(rows, np.zeros((3072, 1), np.float32), np.zeros(1),
                            np.arange(2000) % 2)
    monkeypatch.undo()
    # one buffer of about KERNEL_BYTES for all three passes, no m x n float32 array
    assert made == [rows.block_rows * 3072]
    assert rows.block_rows * 3072 * 4 <= core.KERNEL_BYTES


@pytest.mark.parametrize("options", [{}, {"val_split": 0.2}, {"batch_size": 64}])
def test_feature_file_in_memory_stays_uint8_and_trains_as_float32_did(tmp_path, options):
    path = write_feature_file(tmp_path / "f.npz", 600, size=(16, 16))
    settings = api.train_settings(dict(stream=False, epochs=5, lr=0.01, **options))
    prepared = training.prepare(path, settings, None)
    assert isinstance(prepared.X, RowBlocks) and prepared.X.in_memory
    assert prepared.X.source.dtype == np.uint8 and isinstance(prepared.X.source, np.ndarray)
    assert prepared.X.source.shape == prepared.X.shape
    if "val_split" in options:
        assert prepared.validation.X.source.dtype == np.uint8
    config = api.descent_config(settings)
    fit, _ = training.run(prepared, config)
    as_float32 = core.train(prepared.X.to_array(), prepared.y, 2, config,
                            validation=prepared.validation and core.Validation(
                                prepared.validation.X.to_array(), prepared.validation.y))
    np.testing.assert_array_equal([h.cost for h in fit.history],
                                  [h.cost for h in as_float32.history])
    np.testing.assert_array_equal(fit.weights, as_float32.weights)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KB on Linux")
def test_training_in_memory_from_a_feature_file_peaks_near_its_uint8_size(tmp_path):
    # 147 MB of uint8 X (590 MB as float32): budget 1.1 x 147 + 150 = 312 MB
    data = write_feature_file(tmp_path / "big.npz", 12_000)
    x_bytes = 12_000 * 64 * 64 * 3
    model_path = tmp_path / "m.npz"
    for extra in ([], ["--batch-size", "512"]):
        code, stderr, peak = peak_rss_of(
            [sys.executable, "-m", "logreg_cli", "train", str(data), "--no-stream",
             "--epochs", "2", "--lr", "0.001", "-m", str(model_path), *extra], tmp_path)
        assert code == 0, stderr
        assert "in memory" in stderr
        assert peak <= 1.1 * x_bytes + (150 << 20), f"{extra}: peak RSS {peak / 2**20:.0f} MB"
        assert load_model(model_path).metadata["data"]["images"] == 12_000
