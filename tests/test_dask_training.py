"""train --scheduler: the same model as one machine (binary, softmax, --l2 with decay, class
weights, validation with early stopping, L-BFGS, mini-batches, uneven shards), bit-identical
reruns, a worker killed mid-run, the refusals, on ONE LocalCluster of 2 worker processes
shared by the module."""

import os
import signal
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed "
                                                        "(pip install 'logreg-cli[dask]')")

from click.testing import CliRunner  # noqa: E402

import logreg_cli  # noqa: E402
from logreg_cli import cluster  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402
from logreg_cli.dataset import Dataset, save_features  # noqa: E402
from logreg_cli.distributed import MIN_BATCH_ROWS_PER_WORKER, shard_bounds  # noqa: E402
from logreg_cli.errors import LogregError  # noqa: E402
from test_dask_cluster import dask_processes, free_port  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process handling")

M = 5001  # odd: the 2 shards hold 2500 and 2501 rows
SIZE = (4, 4)  # n = 48


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a Dask scheduler with 2 one-thread worker processes (with nannies,
    which start a killed worker again), for the whole module."""
    with dask_processes(tmp_path_factory.mktemp("cluster")) as (address, _):
        yield address


def write_features(path, m=M, classes=("a", "b"), seed=3):
    """A feature file of m made-up 4x4 images whose labels follow their first pixels."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (m, SIZE[0] * SIZE[1] * 3), dtype=np.uint8)
    score = X[:, :6].astype(np.int64).sum(axis=1) + rng.integers(0, 200, m)
    y = np.minimum(score * len(classes) // (6 * 255 + 200), len(classes) - 1)
    paths = [f"data/{i:05d}.png" for i in range(m)]
    save_features(Dataset(X, y.astype(np.int64), list(classes), paths, SIZE), path,
                  {"source": "data"})
    return path


@pytest.fixture(scope="module")
def binary_file(tmp_path_factory):
    return write_features(tmp_path_factory.mktemp("dask") / "binary.npz")


@pytest.fixture(scope="module")
def three_class_file(tmp_path_factory):
    return write_features(tmp_path_factory.mktemp("dask") / "three.npz", classes=("a", "b", "c"))


CASES = {
    "binary": ("binary", dict(epochs=25, lr=0.01)),
    "softmax": ("three", dict(epochs=25, lr=0.01)),
    "l2 and decay": ("binary", dict(epochs=25, lr=0.05, l2=50.0, decay="inverse",
                                    decay_rate=0.3)),
    "adam, class weights": ("three", dict(epochs=20, lr=0.01, optimizer="adam",
                                          class_weight="balanced")),
    "validation, early stop": ("binary", dict(epochs=300, lr=3.0, val_split=0.3,
                                              early_stop=3, standardize=True)),
    "a --val feature file": ("binary", dict(epochs=10, lr=0.01, val="VAL", early_stop=4)),
    "mini-batches": ("binary", dict(epochs=3, lr=0.01, batch_size=2 * MIN_BATCH_ROWS_PER_WORKER,
                                    optimizer="momentum")),
}


@pytest.fixture(scope="module")
def val_file(tmp_path_factory):
    return write_features(tmp_path_factory.mktemp("dask") / "val.npz", m=1001, seed=4)


def data_of(kind, binary_file, three_class_file):
    return binary_file if kind == "binary" else three_class_file


@pytest.mark.parametrize("case", list(CASES))
def test_the_cluster_trains_the_model_one_machine_trains(case, scheduler, binary_file,
                                                         three_class_file, val_file):
    kind, options = CASES[case]
    options = {name: val_file if value == "VAL" else value for name, value in options.items()}
    data = data_of(kind, binary_file, three_class_file)
    alone = logreg_cli.train(data, **options)
    spread = logreg_cli.train(data, scheduler=scheduler, **options)
    assert spread.classes == alone.classes
    np.testing.assert_allclose(spread.weights, alone.weights, rtol=1e-4,
                               atol=1e-5 * np.abs(alone.weights).max())
    np.testing.assert_allclose(spread.bias, alone.bias, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(spread.history["cost"], alone.history["cost"], rtol=1e-6)
    assert len(spread.history["cost"]) == len(alone.history["cost"])
    assert spread.metadata["method"] == "dask"
    assert spread.metadata["data"]["images"] == alone.metadata["data"]["images"]
    assert spread.metadata["train_accuracy"] == alone.metadata["train_accuracy"]
    if "val" in options:
        np.testing.assert_allclose(spread.history["val_cost"], alone.history["val_cost"],
                                   rtol=1e-6)
    if "val_split" in options:
        assert spread.metadata["validation"] == alone.metadata["validation"] | {
            "accuracy": spread.metadata["validation"]["accuracy"],
            "kept_val_cost": spread.metadata["validation"]["kept_val_cost"]}
        assert alone.metadata["validation"]["early_stopped"]
        assert spread.metadata["epochs_run"] == alone.metadata["epochs_run"] == 130
        np.testing.assert_allclose(spread.history["val_cost"], alone.history["val_cost"],
                                   rtol=1e-6)


def test_lbfgs_on_the_cluster_reaches_the_optimum_one_machine_reaches(scheduler,
                                                                     three_class_file):
    """L-BFGS's cost and gradient come from float32 products summed over other blocks of
    rows on the shards (2500 + 2501 rows) than on one machine (one block): they agree to
    float32 rounding, and L-BFGS's line search and curvature pairs amplify that along the
    way, so the iterates are not the same bit for bit. What they reach is: the same optimum
    (5e-8 relative objective measured) and the same predictions."""
    options = dict(epochs=300, optimizer="lbfgs", l2=1.0)
    alone = logreg_cli.train(three_class_file, **options)
    spread = logreg_cli.train(three_class_file, scheduler=scheduler, **options)
    assert max(alone.metadata["epochs_run"], spread.metadata["epochs_run"]) < 300  # converged
    assert spread.history["cost"][-1] == pytest.approx(alone.history["cost"][-1], rel=1e-6)
    np.testing.assert_allclose(spread.history["cost"][:4], alone.history["cost"][:4], rtol=1e-6)
    assert spread.metadata["train_accuracy"] == alone.metadata["train_accuracy"]
    assert spread.metadata["method"] == "dask"


def test_shards_are_as_even_as_the_rows_allow():
    assert shard_bounds(5001, 2).tolist() == [0, 2500, 5001]
    assert shard_bounds(7, 3).tolist() == [0, 2, 4, 7]
    assert shard_bounds(1, 2).tolist() == [0, 1]  # a shard of no rows is dropped


def test_a_rerun_gives_the_same_weights_bit_for_bit(scheduler, three_class_file):
    first = logreg_cli.train(three_class_file, scheduler=scheduler, epochs=10, lr=0.01)
    again = logreg_cli.train(three_class_file, scheduler=scheduler, epochs=10, lr=0.01)
    assert np.array_equal(first.weights, again.weights)
    assert np.array_equal(first.bias, again.bias)
    assert first.history["cost"] == again.history["cost"]


def worker_pids(address):
    with distributed.Client(address, timeout=10, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        return client.run(os.getpid)


def test_a_worker_killed_mid_run_changes_nothing(scheduler, binary_file):
    options = dict(epochs=12, lr=0.01, val_split=0.2)
    calm = logreg_cli.train(binary_file, scheduler=scheduler, **options)
    victim = sorted(worker_pids(scheduler).values())[0]

    def kill_at_epoch_4(stats):
        if stats.epoch == 4:
            os.kill(victim, signal.SIGKILL)
        return False

    hit = logreg_cli.train(binary_file, scheduler=scheduler, on_epoch=kill_at_epoch_4,
                           **options)
    assert victim not in worker_pids(scheduler).values()  # it was killed (and replaced)
    assert np.array_equal(hit.weights, calm.weights)
    assert np.array_equal(hit.bias, calm.bias)
    assert hit.history["cost"] == calm.history["cost"]
    assert hit.history["val_cost"] == calm.history["val_cost"]


def run_cli(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def test_the_command_trains_on_the_cluster_and_says_so(scheduler, binary_file, tmp_path):
    model_path = tmp_path / "m.npz"
    result = run_cli("train", binary_file, "--scheduler", scheduler, "--epochs", 5,
                     "-m", model_path)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (f"training on {M} images x 48 features from {binary_file}, in memory (X is held "
            "by 2 Dask workers, one shard each)") in result.stderr.splitlines()
    assert "trained 5 epochs in" in result.stderr and "(dask)" in result.stderr
    assert logreg_cli.load_model(model_path).metadata["method"] == "dask"


@pytest.mark.parametrize("batch_size", [1, 256, 2 * MIN_BATCH_ROWS_PER_WORKER - 1])
def test_small_mini_batches_are_refused(scheduler, binary_file, tmp_path, batch_size):
    result = run_cli("train", binary_file, "--scheduler", scheduler, "--batch-size",
                     batch_size, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --batch-size {batch_size} is too small for --scheduler: each step is a round "
        f"trip to every worker, so a batch must give each of the 2 workers at least "
        f"{MIN_BATCH_ROWS_PER_WORKER} rows (--batch-size {2 * MIN_BATCH_ROWS_PER_WORKER} or "
        "more, or full batch)\n")
    assert not (tmp_path / "m.npz").exists()


def test_images_decoded_here_are_not_shipped(scheduler, make_image_folder, tmp_path):
    folder = make_image_folder({"a": 3, "b": 3})
    result = run_cli("train", folder, "--size", "8x8", "--scheduler", scheduler,
                     "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --scheduler: DATA must be a feature file or Zarr store that the workers can "
        "read (write one with `logreg flatten DATA -o features.npz`); images decoded here "
        "are not shipped to workers\n")
    with pytest.raises(LogregError, match="^--scheduler: DATA must be a feature file"):
        X = np.zeros((4, 192), np.uint8)
        logreg_cli.train((X, np.array([0, 1, 0, 1]), ["a", "b"]), size="8x8",
                         scheduler=scheduler)


def test_an_unreachable_scheduler_is_one_line_and_exit_2(binary_file, tmp_path):
    port = free_port()
    started = time.monotonic()
    result = run_cli("train", binary_file, "--scheduler", f"tcp://127.0.0.1:{port}",
                     "-m", tmp_path / "m.npz")
    assert (result.exit_code, result.stderr) == (
        2, f"Error: --scheduler tcp://127.0.0.1:{port}: cannot reach the scheduler "
           "(Connection refused)\n")
    assert time.monotonic() - started < cluster.CONNECT_TIMEOUT
    missing = tmp_path / "scheduler.json"
    result = run_cli("train", binary_file, "--scheduler-file", missing, "-m", tmp_path / "m.npz")
    assert (result.exit_code, result.stderr) == (
        2, f"Error: --scheduler-file {missing}: no such file\n")


# ---------------------------------------------------------------- a Zarr store, the same model


@pytest.fixture(scope="module")
def npz_and_store(tmp_path_factory):
    """The same image folder (one undecodable image early in class a, so the store has an
    invalid row in the first shard) flattened to an .npz and to a Zarr store."""
    pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")
    from tiny_models import write_class_folders

    root = tmp_path_factory.mktemp("zarr")
    write_class_folders(root / "data", ["blue", "red"], 30)
    (root / "data" / "blue" / "003.png").write_bytes(b"not a png at all")
    for name in ("f.npz", "f.zarr"):
        result = run_cli("flatten", root / "data", "-o", root / name, "--size", "8x8", "-q")
        assert result.exit_code == 0, result.output
    return root / "f.npz", root / "f.zarr"


@pytest.mark.parametrize("options", [dict(epochs=15, lr=0.05),
                                     dict(epochs=15, lr=0.05, val_split=0.3, l2=1.0)])
def test_a_zarr_store_and_an_npz_of_the_same_images_train_to_the_same_model(
        scheduler, npz_and_store, options):
    npz, store = npz_and_store
    from_store = logreg_cli.train(store, scheduler=scheduler, **options)
    from_npz = logreg_cli.train(npz, scheduler=scheduler, **options)
    alone = logreg_cli.train(npz, **options)
    held_out = 0 if "val_split" not in options else from_npz.metadata["validation"]["images"]
    assert from_store.metadata["data"]["images"] == 59 - held_out  # 60 files, 1 undecodable
    assert from_store.metadata["data"]["class_counts"] == from_npz.metadata["data"]["class_counts"]
    assert np.array_equal(from_store.weights, from_npz.weights)
    assert np.array_equal(from_store.bias, from_npz.bias)
    assert from_store.history == from_npz.history
    np.testing.assert_allclose(from_store.weights, alone.weights, rtol=1e-4,
                               atol=1e-5 * np.abs(alone.weights).max())


def test_a_half_written_store_is_refused_by_name_before_any_worker_reads_it(
        scheduler, npz_and_store, tmp_path):
    import shutil

    import zarr

    from logreg_cli import zarrstore

    store = tmp_path / "half.zarr"
    shutil.copytree(npz_and_store[1], store)
    zarr.open_group(str(store), mode="r+").attrs.update({zarrstore.COMPLETE: False})
    result = run_cli("train", store, "--scheduler", scheduler, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {store}: incomplete store (no completion marker")
    assert result.stderr.count("\n") == 1


def test_validation_rows_from_a_store_are_scored_on_the_workers(scheduler, binary_file,
                                                                val_file, tmp_path):
    from logreg_cli import api
    from logreg_cli.distributed import DistributedRows, cluster_or_none, place
    from logreg_cli.features import RowBlocks

    folder = tmp_path / "val"
    from tiny_models import write_class_folders

    write_class_folders(folder, ["blue", "red"], 2, size=SIZE)
    (folder / "blue").rename(folder / "a")
    (folder / "red").rename(folder / "b")
    where = {}
    for name, options in (("--val-split", dict(val_split=0.2)), ("--val file", dict(val=val_file)),
                          ("--val folder", dict(val=folder))):
        settings = api.train_settings(options)
        with cluster_or_none(scheduler, None, None) as client:
            prepared = api.prepare(binary_file, settings, api.folder_loader(),
                                   keep_on_disk=True)
            place(client, prepared, settings)
            where[name] = (type(prepared.X), type(prepared.validation.X))
    assert where == {"--val-split": (DistributedRows, DistributedRows),
                     "--val file": (DistributedRows, DistributedRows),
                     "--val folder": (DistributedRows, RowBlocks)}


@pytest.mark.parametrize("scheduler_option", [["--scheduler", "local"],
                                              ["--scheduler-file", "scheduler.json"]])
def test_a_missing_data_is_said_before_a_cluster_is_started_or_joined(tmp_path,
                                                                      scheduler_option):
    started = time.monotonic()
    result = run_cli("train", tmp_path / "missing.npz", *scheduler_option,
                     "-m", tmp_path / "m.npz")
    assert (result.exit_code, result.stderr) == (
        2, f"Error: {tmp_path / 'missing.npz'}: no such file or folder\n")
    assert time.monotonic() - started < 2  # a LocalCluster takes seconds to start
