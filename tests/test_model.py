"""The model file: round trips, atomic writes, and every kind of bad file rejected by name."""

import json
import zipfile

import numpy as np
import pytest

from logreg_cli import model as model_module
from logreg_cli.dataset import Dataset, save_features
from logreg_cli.errors import LogregError, ModelFileError
from logreg_cli.model import FORMAT_VERSION, Model, load_model, save_model
from tiny_models import CreatesFileWhenUnpickled

SIZE = (4, 3)  # width x height, not square so a swapped H/W shows up
N_FEATURES = 4 * 3 * 3


def make_model(classes=("cat", "non-cat"), standardize=False, seed=0):
    rng = np.random.default_rng(seed)
    c = 1 if len(classes) == 2 else len(classes)
    mean = scale = None
    if standardize:
        mean = rng.uniform(0, 255, size=N_FEATURES).astype(np.float32)
        scale = rng.uniform(1, 80, size=N_FEATURES).astype(np.float32)
    return Model(
        weights=rng.normal(size=(N_FEATURES, c)).astype(np.float32),
        bias=rng.normal(size=c).astype(np.float32),
        classes=list(classes),
        size=SIZE,
        feature_mean=mean,
        feature_scale=scale,
        metadata={"options": {"lr": 0.005, "epochs": 3}, "history": {"cost": [0.69, 0.5]}},
    )


def model_arrays(**changes):
    """The arrays of a valid binary model file, with some replaced (None removes a key)."""
    valid = make_model()
    arrays = {
        "format_version": np.int64(FORMAT_VERSION),
        "weights": valid.weights,
        "bias": valid.bias,
        "classes": np.array(valid.classes),
        "size": np.array([SIZE[1], SIZE[0]], dtype=np.int64),
        "feature_mean": np.zeros(0, dtype=np.float32),
        "feature_scale": np.zeros(0, dtype=np.float32),
        "metadata": np.array(json.dumps(valid.metadata)),
    }
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def assert_rejected(path, *words):
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    cause = message.removeprefix(f"{path}: ")  # the words must be in the cause, not the path
    for word in words:
        assert word in cause
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("classes", [("cat", "non-cat"), ("circle", "square", "stripes")],
                         ids=["binary", "multiclass"])
@pytest.mark.parametrize("standardize", [False, True], ids=["unit", "standardize"])
def test_save_load_round_trip(tmp_path, classes, standardize):
    original = make_model(classes, standardize)
    path = tmp_path / "model.npz"
    save_model(original, path)
    loaded = load_model(path)

    np.testing.assert_array_equal(loaded.weights, original.weights)
    np.testing.assert_array_equal(loaded.bias, original.bias)
    assert loaded.weights.dtype == np.float32 and loaded.bias.dtype == np.float32
    assert loaded.classes == list(classes)
    assert loaded.size == SIZE
    assert loaded.metadata == original.metadata
    assert loaded.scaling == ("standardize" if standardize else "unit")
    if standardize:
        np.testing.assert_array_equal(loaded.feature_mean, original.feature_mean)
        np.testing.assert_array_equal(loaded.feature_scale, original.feature_scale)
    else:
        assert loaded.feature_mean is None and loaded.feature_scale is None

    pixels = np.random.default_rng(1).integers(0, 256, size=(5, N_FEATURES), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.predict_proba(pixels), original.predict_proba(pixels))


def test_model_file_is_plain_arrays(tmp_path):
    path = tmp_path / "model.npz"
    save_model(make_model(), path)
    with np.load(path, allow_pickle=False) as archive:
        assert all(archive[key].dtype != object for key in archive.files)
        assert int(archive["format_version"]) == FORMAT_VERSION


# ---------------------------------------------------------------- atomic write


def test_save_leaves_no_temp_files(tmp_path):
    save_model(make_model(), tmp_path / "model.npz")
    save_model(make_model(seed=1), tmp_path / "model.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    save_model(make_model(), path)
    before = path.read_bytes()

    def savez_that_fails_midway(file, **arrays):
        file.write(b"PK\x03\x04 half of an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", savez_that_fails_midway)
    with pytest.raises(LogregError, match="No space left") as caught:
        save_model(make_model(seed=1), path)
    assert str(path) in str(caught.value)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_save_into_a_missing_folder_is_a_user_error(tmp_path):
    path = tmp_path / "no-such-folder" / "model.npz"
    with pytest.raises(LogregError, match="cannot write") as caught:
        save_model(make_model(), path)
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    assert_rejected(tmp_path / "nope.npz", "no such model file")


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "model.npz"
    folder.mkdir()
    assert_rejected(folder, "folder")


def test_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    save_model(make_model(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_rejected(path)


def test_empty_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"")
    assert_rejected(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_rejected(path)


def test_zip_that_is_not_npz(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert_rejected(path, "missing")


@pytest.mark.parametrize("key", ["metadata", "weights", "classes"])
def test_object_array_is_refused_without_running_its_pickle(tmp_path, key):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = CreatesFileWhenUnpickled(marker)
    path = tmp_path / "model.npz"
    np.savez(path, allow_pickle=True, **model_arrays(**{key: payload}))

    assert_rejected(path)
    assert not marker.exists()

    # Control: the payload is live, so the check above could have failed.
    with np.load(path, allow_pickle=True) as archive:
        archive[key]
    assert marker.exists()


@pytest.mark.parametrize("key", ["weights", "bias", "classes", "format_version", "metadata", "size"])
def test_missing_key(tmp_path, key):
    path = write_npz(tmp_path / "model.npz", model_arrays(**{key: None}))
    assert_rejected(path, key)


@pytest.mark.parametrize(
    "changes, word",
    [
        ({"weights": np.zeros((N_FEATURES + 1, 1), np.float32)}, "weights"),
        ({"weights": np.zeros((N_FEATURES, 2), np.float32)}, "weights"),  # 2 columns for 2 classes
        ({"weights": np.zeros(N_FEATURES, np.float32)}, "weights"),
        ({"bias": np.zeros(3, np.float32)}, "bias"),
        ({"size": np.array([3, 4, 3], np.int64)}, "size"),
        ({"size": np.array([0, 4], np.int64)}, "size"),
        ({"classes": np.array(["only"])}, "classes"),
        ({"classes": np.array(["a", "a"])}, "classes"),
        ({"weights": np.zeros((N_FEATURES, 1), np.int64)}, "weights"),
        ({"feature_mean": np.zeros(5, np.float32), "feature_scale": np.ones(5, np.float32)},
         "feature_mean"),
        ({"metadata": np.array("{not json")}, "metadata"),
        ({"metadata": np.array("[1, 2]")}, "metadata"),
        ({"format_version": np.array([1, 1])}, "format_version"),
    ],
    ids=["rows", "columns", "1-d-weights", "bias", "size-3", "size-0", "one-class",
         "duplicate-classes", "int-weights", "mean-length", "bad-json", "json-list",
         "version-array"],
)
def test_wrong_shapes_and_types(tmp_path, changes, word):
    path = write_npz(tmp_path / "model.npz", model_arrays(**changes))
    assert_rejected(path, word)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights(tmp_path, bad):
    weights = make_model().weights.copy()
    weights[3, 0] = bad
    path = write_npz(tmp_path / "model.npz", model_arrays(weights=weights))
    assert_rejected(path, "NaN")


def test_zero_feature_scale(tmp_path):
    path = write_npz(tmp_path / "model.npz", model_arrays(
        feature_mean=np.zeros(N_FEATURES, np.float32), feature_scale=np.zeros(N_FEATURES, np.float32)))
    assert_rejected(path, "feature_scale")


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0])
def test_other_format_version(tmp_path, version):
    path = write_npz(tmp_path / "model.npz", model_arrays(format_version=np.int64(version)))
    assert_rejected(path, f"version {version}")


def test_feature_file_given_as_model(tmp_path):
    X = np.zeros((2, N_FEATURES), dtype=np.uint8)
    dataset = Dataset(X, np.array([0, 1]), ["a", "b"], ["a/0.png", "b/0.png"], SIZE)
    path = tmp_path / "features.npz"
    save_features(dataset, path)
    assert_rejected(path, "feature file")


def test_check_features_names_the_training_size():
    model = make_model()
    with pytest.raises(ModelFileError, match=r"expects 36 .*--size 4x3"):
        model_module.check_features(model, 12288)
