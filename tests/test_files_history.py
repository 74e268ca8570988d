"""The training history in the model file (issue 11, part "files").

It is the float64 `history` member (epochs x columns), which predict, evaluate, explain and
inspect never read: their cost does not grow with the epochs trained. The metadata JSON
holds the column names and the summary inspect shows. Files that keep the history inside
the metadata JSON (the earlier layout of format version 1) are still read.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.model import load_model, save_model
from tiny_models import run_measured, train_model, write_class_folders

LONG_EPOCHS = 2_000_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    data = root / "data"
    paths = write_class_folders(data, ["blue", "red"], 3)
    return train_model(data, root / "model.npz", epochs=30), data, paths[0]


def stored(path):
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def test_the_history_is_its_own_member_and_the_metadata_stays_small(tmp_path, trained):
    model, data, _ = trained
    longer = train_model(data, tmp_path / "longer.npz", epochs=3000)
    short_arrays, long_arrays = stored(model), stored(longer)

    assert long_arrays["history"].dtype == np.float64
    assert long_arrays["history"].shape == (3000, 3)
    metadata = json.loads(str(long_arrays["metadata"]))
    assert metadata["history_columns"] == ["epoch", "lr", "cost"]
    assert "history" not in metadata
    # 100 times the epochs, the same metadata give or take the digits of a few numbers
    assert len(str(long_arrays["metadata"])) - len(str(short_arrays["metadata"])) < 100

    history = load_model(longer).metadata["history"]
    assert history["epoch"] == list(range(3000))
    np.testing.assert_array_equal(history["cost"], long_arrays["history"][:, 2])
    assert "history" not in load_model(longer, history=False).metadata


def test_inspect_shows_the_summary_written_with_the_model(trained):
    model, _, _ = trained
    history = load_model(model).metadata["history"]
    best = int(np.argmin(history["cost"]))

    result = CliRunner().invoke(cli, ["inspect", str(model), "--format", "json"])

    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["best_cost"] == {"value": history["cost"][best], "epoch": history["epoch"][best]}
    assert summary["epochs_run"] == 30


def test_validation_history_round_trips_and_inspect_reports_it(tmp_path, trained):
    _, data, _ = trained
    path = tmp_path / "val.npz"
    result = CliRunner().invoke(cli, ["train", str(data), "-m", str(path), "--size", "8x8",
                                      "--epochs", "20", "--val", str(data), "-q"])
    assert result.exit_code == 0, result.stderr
    history = load_model(path).metadata["history"]
    assert set(history) == {"epoch", "lr", "cost", "val_cost", "val_accuracy"}

    summary = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--format", "json"]).stdout)

    assert summary["validation"]["final_val_cost"] == history["val_cost"][-1]
    assert summary["validation"]["final_val_accuracy"] == history["val_accuracy"][-1]
    assert summary["validation"]["best_val_cost"]["value"] == min(history["val_cost"])


def test_a_model_with_the_history_in_its_metadata_still_loads(tmp_path, trained):
    """The earlier layout of this format version: per-epoch lists inside the JSON."""
    model, _, image = trained
    arrays = stored(model)
    metadata = json.loads(str(arrays.pop("metadata")))
    arrays.pop("history")
    metadata.pop("history_columns")
    metadata.pop("history_summary")
    metadata["history"] = {"epoch": [0, 1, 2], "lr": [0.1] * 3, "cost": [0.7, 0.4, 0.5]}
    older = tmp_path / "older.npz"
    np.savez(older, **arrays, metadata=np.array(json.dumps(metadata)))

    assert load_model(older).metadata["history"]["cost"] == [0.7, 0.4, 0.5]
    result = CliRunner().invoke(cli, ["inspect", str(older), "--format", "json"])
    assert json.loads(result.stdout)["best_cost"] == {"value": 0.4, "epoch": 1}
    predicted = CliRunner().invoke(cli, ["predict", str(image), "-m", str(older)])
    assert predicted.exit_code == 0 and predicted.stdout.startswith(f"{image}\t")


def test_a_bad_history_member_is_refused(tmp_path, trained):
    model, _, _ = trained
    arrays = stored(model)
    path = tmp_path / "bad.npz"
    np.savez(path, **{**arrays, "history": np.zeros((4, 2))})
    with pytest.raises(Exception, match=f"{path}: history has dtype float64 and shape"):
        load_model(path)
    assert load_model(path, history=False).classes == ["blue", "red"]


def test_predict_and_inspect_do_not_pay_for_two_million_epochs(tmp_path, trained):
    model, _, image = trained
    loaded = load_model(model)
    epochs = np.arange(LONG_EPOCHS)
    loaded.metadata["history"] = {"epoch": epochs.tolist(), "lr": [0.05] * LONG_EPOCHS,
                                  "cost": (1.0 / (1.0 + epochs)).tolist()}
    long_model = tmp_path / "long.npz"
    save_model(loaded, long_model)
    del loaded

    for command in (["predict", image, "-m"], ["inspect"]):
        short_code, _, short_peak, short_seconds = run_measured(*command, model)
        long_code, lines, long_peak, long_seconds = run_measured(*command, long_model)
        assert short_code == long_code == 0, lines
        assert long_peak - short_peak < 20, (command[0], short_peak, long_peak)
        # generous for a busy machine: reading the history took 3 s and more
        assert long_seconds < 2 * short_seconds + 1.0, (command[0], short_seconds, long_seconds)


@pytest.mark.parametrize("bad_epoch", [np.inf, np.nan, -1.0, 0.5])
def test_a_history_whose_epochs_are_not_whole_numbers_is_refused(tmp_path, trained, bad_epoch):
    """Found by the model fuzzer: an epoch of inf crashed loading (int(inf))."""
    arrays = stored(trained[0])
    history = arrays["history"].copy()
    history[0, 0] = bad_epoch
    path = tmp_path / "bad.npz"
    np.savez(path, **{**arrays, "history": history})
    with pytest.raises(Exception, match=f"{path}: history's epoch column must hold whole"):
        load_model(path)
