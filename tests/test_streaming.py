"""Training from a feature file larger than the memory it may use: row blocks are read from the
memory-mapped uint8 X and converted one at a time, so the peak RSS stays bounded."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli import core
from logreg_cli.features import RowBlocks, open_feature_file, scale_pixels
from logreg_cli.cli import cli
from logreg_cli.dataset import Dataset, save_features
from logreg_cli.model import load_model

from feature_files import write_feature_file
from tiny_models import subprocess_env




def peak_rss_of(command, cwd):
    """Run command in a fresh helper process and return (exit code, stderr, the peak RSS in
    bytes of the command alone), read from getrusage(RUSAGE_CHILDREN) in that helper."""
    helper = ("import resource, subprocess, sys\n"
              "done = subprocess.run(sys.argv[1:], stderr=subprocess.PIPE, text=True)\n"
              "sys.stderr.write(done.stderr)\n"
              "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", helper, *command], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(), timeout=300)
    code, kilobytes = done.stdout.split()
    return int(code), done.stderr, int(kilobytes) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KB on Linux")
def test_streaming_a_feature_file_keeps_peak_memory_bounded(tmp_path):
    # 400 MB of uint8 X (1.6 GB as float32); the training process must stay under 250 MB
    data = write_feature_file(tmp_path / "big.npz", 34_000)
    assert data.stat().st_size > 400 << 20
    model_path = tmp_path / "m.npz"
    code, stderr, peak = peak_rss_of(
        [sys.executable, "-m", "logreg_cli", "train", str(data), "--stream", "--batch-size", "512",
         "--epochs", "1", "--lr", "0.001", "-m", str(model_path)], tmp_path)
    assert code == 0, stderr
    assert "streaming row blocks" in stderr
    assert peak < 250 << 20, f"peak RSS {peak / 2**20:.0f} MB"
    model = load_model(model_path)
    assert model.metadata["options"]["stream"] is True and model.metadata["method"] == "stream"
    assert model.metadata["data"]["images"] == 34_000


def small_file(tmp_path, m=300, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (m, 48), dtype=np.uint8)
    y = (X[:, :6].mean(axis=1) > 127.5).astype(np.int64) + (X[:, 6] > 200)
    paths = [f"data/{i:05d}.png" for i in range(m)]
    save_features(Dataset(X, y, ["a", "b", "c"], paths, (4, 4)), tmp_path / "f.npz",
                  {"source": "data"})
    return tmp_path / "f.npz"


def train(*args):
    result = CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


def test_streamed_mini_batches_give_the_in_memory_weights_bit_for_bit(tmp_path):
    data = small_file(tmp_path)
    common = [data, "--epochs", "6", "--lr", "0.05", "--batch-size", "32", "--seed", "7",
              "--val-split", "0.2", "--standardize"]
    streamed = train(*common, "--stream", "-m", tmp_path / "s.npz")
    in_memory = train(*common, "--no-stream", "-m", tmp_path / "n.npz")
    assert "streaming row blocks" in streamed.stderr and "in memory" in in_memory.stderr
    s, n = load_model(tmp_path / "s.npz"), load_model(tmp_path / "n.npz")
    assert s.weights.tobytes() == n.weights.tobytes() and s.bias.tobytes() == n.bias.tobytes()
    np.testing.assert_allclose(s.metadata["history"]["val_cost"],
                               n.metadata["history"]["val_cost"], rtol=1e-6)
    assert s.metadata["validation"]["kept_epoch"] == n.metadata["validation"]["kept_epoch"]


def test_streamed_full_batch_matches_in_memory(tmp_path):
    data = small_file(tmp_path)
    train(data, "--epochs", "30", "--lr", "0.1", "--stream", "-m", tmp_path / "s.npz")
    train(data, "--epochs", "30", "--lr", "0.1", "--no-stream", "-m", tmp_path / "n.npz")
    s, n = load_model(tmp_path / "s.npz"), load_model(tmp_path / "n.npz")
    np.testing.assert_allclose(s.weights, n.weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s.metadata["history"]["cost"], n.metadata["history"]["cost"],
                               rtol=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_full_batch_over_many_row_blocks_equals_one_block(k):
    """Each block adds its rows' cost and share of X^T dZ: 7 blocks must give the one-block
    descent (with image weights, so every term of the sum is weighted)."""
    rng = np.random.default_rng(k)
    X_uint8 = rng.integers(0, 256, (100, 48), dtype=np.uint8)
    y = np.arange(100) % k
    weights = rng.uniform(0.5, 2.0, size=100)
    blocks = RowBlocks(X_uint8, block_bytes=15 * 48 * 4)  # 15 rows a block
    assert len(list(blocks.blocks())) == 7
    config = core.TrainConfig(lr=0.2, epochs=40)
    streamed = core.train(blocks, y, k, config, sample_weight=weights)
    in_memory = core.train(scale_pixels(X_uint8), y, k,
                           core.TrainConfig(lr=0.2, epochs=40, method="plain"),
                           sample_weight=weights)
    assert (streamed.method, in_memory.method) == ("stream", "plain")
    np.testing.assert_allclose([h.cost for h in streamed.history],
                               [h.cost for h in in_memory.history], rtol=1e-6)
    np.testing.assert_allclose(streamed.weights, in_memory.weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(streamed.bias, in_memory.bias, rtol=1e-5, atol=1e-6)


def test_row_blocks_cover_the_selected_rows_in_order():
    X = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5)
    released = []
    blocks = RowBlocks(X, rows=[0, 2, 3, 6], block_bytes=2 * 4 * 5,
                            release=lambda: released.append(1))
    assert blocks.shape == (4, 5)
    got = [(start, block) for start, block in blocks.blocks()]
    assert [start for start, _ in got] == [0, 2]
    np.testing.assert_array_equal(np.vstack([b for _, b in got]), X[[0, 2, 3, 6]] / np.float32(255))
    assert len(released) == 2
    np.testing.assert_array_equal(blocks.take([1, 3]), X[[2, 6]] / np.float32(255))


def test_feature_file_rows_are_read_on_demand(tmp_path):
    data = small_file(tmp_path)
    features = open_feature_file(data)
    with np.load(data) as archive:
        X = archive["X"]
    assert features.X.shape == X.shape and not isinstance(features.X, np.ndarray)
    np.testing.assert_array_equal(features.X[5:40], X[5:40])
    rows = [0, 1, 2, 7, 100, 101, 299]
    np.testing.assert_array_equal(features.X[rows], X[rows])
    assert features.classes == ["a", "b", "c"] and features.size == (4, 4)
    with pytest.raises(IndexError):
        features.X[[300]]
    features.X.close()


def test_truncated_feature_file_is_a_clear_error(tmp_path):
    data = small_file(tmp_path)
    features = open_feature_file(data)
    features.X.close()
    whole = data.read_bytes()
    data.write_bytes(whole[: features.X.offset + 1000])
    result = CliRunner().invoke(cli, ["train", str(data), "-m", str(tmp_path / "m.npz")])
    assert result.exit_code == 2 and str(data) in result.stderr
    assert "Traceback" not in result.stderr
