"""dataset.py and the CLI around it: layouts, labels files, feature files and their memmap."""

import json
import os
import zipfile

import numpy as np
import pytest

from logreg_cli.errors import LogregError
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.dataset import (
    Dataset,
    image_files,
    load_data,
    load_features,
    open_feature_matrix,
    save_features,
)
from logreg_cli.errors import DataError, ModelFileError


def put(path, colour=(10, 20, 30), size=(4, 4), fmt=None):
    """Write a solid-colour image at path (folders made), return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)
    return path


def first_pixels(dataset):
    """The first pixel's RGB of each row, as tuples (identifies the solid-colour images)."""
    return [tuple(int(v) for v in row[:3]) for row in dataset.X]


# ---------------------------------------------------------------- class folders


def test_nested_hidden_case_and_unicode(tmp_path):
    root = tmp_path / "data"
    put(root / "cat" / "a.png", (1, 0, 0))
    put(root / "cat" / "deeper" / "still" / "B.PNG", (2, 0, 0))  # nested, upper-case extension
    put(root / "cat" / "photo one.JPEG", (3, 0, 0), fmt="PNG")  # spaces; Pillow sniffs content
    put(root / "chat noir é" / "ünïcode 猫.png", (4, 0, 0))
    put(root / "cat" / ".hidden.png", (99, 0, 0))
    put(root / "cat" / ".ipynb_checkpoints" / "c.png", (99, 0, 0))
    put(root / ".DS_Store_folder" / "d.png", (99, 0, 0))
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "cat" / "notes.txt").write_text("not an image")
    data = load_data(root, (2, 2), jobs=1)
    assert data.classes == ["cat", "chat noir é"]
    assert data.y.tolist() == [0, 0, 0, 1]
    assert sorted(first_pixels(data)) == [(1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0)]
    assert str(root / "chat noir é" / "ünïcode 猫.png") in data.paths


def test_symlinks_followed_and_loops_stopped(tmp_path):
    elsewhere = put(tmp_path / "elsewhere" / "x.png", (7, 0, 0)).parent
    put(elsewhere / "y.png", (8, 0, 0))
    root = tmp_path / "data"
    put(root / "a" / "1.png", (1, 0, 0))
    put(root / "b" / "2.png", (2, 0, 0))
    (root / "a" / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "b" / "3.png").symlink_to(elsewhere / "x.png")
    (root / "b" / "loop").symlink_to(root / "b", target_is_directory=True)
    data = load_data(root, (2, 2), jobs=1)
    # x.png is under a (through the link) and b: its label is unknown, so it is left out
    assert sorted(first_pixels(data)) == [(1, 0, 0), (2, 0, 0), (8, 0, 0)]
    assert [type(e).__name__ for e in data.skipped] == ["SharedFile"]
    assert len(image_files(root / "b")) == 2  # the loop adds nothing


def test_loose_images_in_root_are_explained(tmp_path):
    put(tmp_path / "one.png")
    with pytest.raises(DataError, match="found 0 images; its 1 image file"):
        load_data(tmp_path, (2, 2))


def test_unknown_class_folder_when_evaluating(tmp_path):
    put(tmp_path / "dog" / "a.png")
    with pytest.raises(DataError, match="class folder 'dog' is not one of the model's classes"):
        load_data(tmp_path, (2, 2), classes=["cat", "non-cat"])


def test_bad_files_are_skipped_and_reported(tmp_path):
    put(tmp_path / "a" / "good.png", (5, 0, 0))
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    put(tmp_path / "b" / "good.png", (6, 0, 0))
    errors = []
    data = load_data(tmp_path, (2, 2), jobs=2, on_error=errors.append)
    assert first_pixels(data) == [(5, 0, 0), (6, 0, 0)] and data.y.tolist() == [0, 1]
    assert [str(e) for e in errors] == [f"{tmp_path / 'a' / 'empty.png'}: empty file (0 bytes)"]
    assert data.skipped == errors


# ---------------------------------------------------------------- labels files


@pytest.mark.parametrize("name, delimiter", [("labels.csv", ","), ("labels.tsv", "\t")])
def test_labels_file_paths_relative_to_its_folder(tmp_path, name, delimiter):
    put(tmp_path / "imgs" / "a b.png", (1, 0, 0))
    put(tmp_path / "imgs" / "c.png", (2, 0, 0))
    absolute = put(tmp_path / "other" / "d.png", (3, 0, 0))
    listing = tmp_path / "meta" / name
    listing.parent.mkdir()
    rows = [["path", "label"], ["../imgs/a b.png", "dog"], ["../imgs/c.png", "cat"],
            [str(absolute), "dog"], ["", ""]]
    listing.write_text("\n".join(delimiter.join(row) for row in rows) + "\n")
    data = load_data(listing, (2, 2), jobs=1)
    assert data.classes == ["cat", "dog"]
    assert data.y.tolist() == [1, 0, 1]
    assert first_pixels(data) == [(1, 0, 0), (2, 0, 0), (3, 0, 0)]


def test_labels_file_needs_its_header(tmp_path):
    listing = tmp_path / "labels.csv"
    listing.write_text("a.png,cat\n")
    with pytest.raises(DataError, match=r"labels.csv: the first line must be the header 'path,label'"):
        load_data(listing, (2, 2))


def test_labels_file_row_errors_name_the_line(tmp_path):
    listing = tmp_path / "labels.csv"
    listing.write_text("path,label\na.png,cat\nb.png\n")
    with pytest.raises(DataError, match=r"labels.csv, line 3: expected 2 columns, got 1"):
        load_data(listing, (2, 2))


def test_labels_file_missing_image_is_skipped(tmp_path):
    put(tmp_path / "a.png")
    put(tmp_path / "b.png")
    listing = tmp_path / "labels.csv"
    listing.write_text("label,path\ncat,a.png\ndog,gone.png\ndog,b.png\n")  # columns in any order
    errors = []
    data = load_data(listing, (2, 2), jobs=1, on_error=errors.append)
    assert data.paths == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert [str(e) for e in errors] == [f"{tmp_path / 'gone.png'}: no such file"]


def test_load_images_turns_named_paths_into_rows(tmp_path):
    from logreg_cli import load_images

    paths = [put(tmp_path / f"{i}.png", (i, 0, 0)) for i in range(3)]
    (tmp_path / "bad.jpg").write_text("x")
    X, failures = load_images([paths[2], tmp_path / "bad.jpg", paths[0]], (2, 2), jobs=2)
    assert X.shape == (2, 12) and X[:, 0].tolist() == [2, 0]
    assert [e.path for e in failures] == [str(tmp_path / "bad.jpg")]
    assert [e.cause for e in failures] == ["not an image Pillow can read"]


# ---------------------------------------------------------------- feature files


def small_dataset(m=5, size=(3, 2)):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (m, size[0] * size[1] * 3), dtype=np.uint8)
    y = np.arange(m, dtype=np.int64) % 2
    return Dataset(X, y, ["cat", "dög"], [f"img {i}.png" for i in range(m)], size)


def test_feature_file_loads_with_plain_numpy(tmp_path):
    path = tmp_path / "f.npz"
    data = small_dataset()
    save_features(data, path, {"source": "somewhere"})
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["X", "classes", "metadata", "paths", "size", "y"]
        assert archive["X"].dtype == np.uint8 and archive["X"].shape == (5, 18)
        assert archive["y"].dtype == np.int64
        assert archive["classes"].tolist() == ["cat", "dög"]
        assert archive["paths"].tolist()[1] == "img 1.png"
        assert archive["size"].tolist() == [2, 3]  # (H, W)
        metadata = json.loads(archive["metadata"].item())
    assert metadata["source"] == "somewhere" and metadata["images"] == 5
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


@pytest.mark.parametrize("m", [0, 1, 7, 300])
def test_feature_matrix_memmap_equals_np_load(tmp_path, m):
    path = tmp_path / "f.npz"
    save_features(small_dataset(m, (8, 5)), path)
    mapped = open_feature_matrix(path)
    with np.load(path, allow_pickle=False) as archive:
        expected = archive["X"]
    assert mapped.shape == expected.shape == (m, 120) and mapped.dtype == np.uint8
    assert np.array_equal(mapped, expected)
    if m:
        assert isinstance(mapped, np.memmap)
        assert np.array_equal(mapped[m // 2 : m // 2 + 3], expected[m // 2 : m // 2 + 3])


def test_load_features_maps_x_and_reindexes_classes(tmp_path):
    path = tmp_path / "f.npz"
    save_features(small_dataset(), path)
    data = load_features(path)
    assert isinstance(data.X, np.memmap) and data.size == (3, 2)
    remapped = load_features(path, classes=["ant", "cat", "dög"])
    assert remapped.y.tolist() == [1, 2, 1, 2, 1]
    with pytest.raises(DataError, match="class 'dög' is not one of the model's classes"):
        load_features(path, classes=["cat"])


def test_compressed_feature_file_still_loads_but_cannot_be_mapped(tmp_path):
    path = tmp_path / "c.npz"
    data = small_dataset()
    np.savez_compressed(path, X=data.X, y=data.y, classes=np.array(data.classes),
                        paths=np.array(data.paths), size=np.array([2, 3]),
                        metadata=np.array("{}"))
    assert np.array_equal(load_features(path).X, data.X)
    with pytest.raises(ModelFileError, match="X is compressed, so it cannot be memory-mapped"):
        open_feature_matrix(path)


def test_model_file_is_not_a_feature_file(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, weights=np.zeros(3), bias=np.zeros(1))
    with pytest.raises(ModelFileError, match="a model file, not a logreg feature file"):
        load_data(path, (2, 2))


@pytest.mark.parametrize("change, message", [
    ({"y": np.array([0, 1, 5, 0, 1])}, "y must index the 2 classes"),
    ({"y": np.zeros(5)}, "y must hold 5 integer labels"),
    ({"y": np.zeros(4, np.int64)}, "y must hold 5 integer labels"),
    ({"size": np.array([2])}, "size must be two positive integers"),
    ({"size": np.array([0, 3])}, "size must be two positive integers"),
    ({"size": np.array([3, 3])}, "X must be m x 27 uint8 (size 3x3)"),
    ({"classes": np.array([1, 2])}, "classes must be a list of names"),
    ({"classes": np.array(["a", "a"])}, "classes must be distinct"),
    ({"X": np.zeros((5, 18), np.float32)}, "X must be a C-ordered m x n uint8 array"),
    ({"paths": np.array(["a"])}, "paths must name the 5 images"),
])
def test_inconsistent_feature_file(tmp_path, change, message):
    data = small_dataset()
    arrays = {"X": data.X, "y": data.y, "classes": np.array(data.classes),
              "paths": np.array(data.paths), "size": np.array([2, 3]), "metadata": np.array("{}")}
    path = tmp_path / "bad.npz"
    np.savez(path, **{**arrays, **change})
    with pytest.raises(ModelFileError) as caught:
        load_features(path)
    assert str(caught.value).startswith(f"{path}: {message}")


# ---------------------------------------------------------------- CLI


def make_two_class_folder(root, per_class=6):
    for index in range(per_class):
        put(root / "dark" / f"{index}.png", (20 + index, 20, 20), size=(6, 6))
        put(root / "light" / f"{index}.png", (220 - index, 230, 230), size=(6, 6))
    return root


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_flatten_then_train_and_evaluate_from_the_feature_file(tmp_path):
    data = make_two_class_folder(tmp_path / "data")
    (data / "dark" / "broken.png").write_text("oops")
    features = tmp_path / "features.npz"
    result = run("flatten", data, "-o", features, "--size", "4x4", "--jobs", "2")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"Warning: {data / 'dark' / 'broken.png'}: not an image Pillow can read" in result.stderr
    assert f"skipped 1 unreadable file(s) in {data}" in result.stderr
    loaded = load_features(features)
    assert loaded.X.shape == (12, 48) and loaded.classes == ["dark", "light"]
    direct = load_data(data, (4, 4), jobs=1)
    assert np.array_equal(loaded.X, direct.X) and loaded.paths == direct.paths

    model = tmp_path / "m.npz"
    result = run("train", features, "-m", model, "--epochs", "200", "--lr", "0.5", "-q")
    assert result.exit_code == 0, result.stderr
    result = run("evaluate", features, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == 1.0


def test_train_from_a_labels_file(tmp_path):
    data = make_two_class_folder(tmp_path / "data")
    listing = tmp_path / "labels.tsv"
    listing.write_text("path\tlabel\n" + "".join(
        f"data/{cls}/{i}.png\t{cls}\n" for cls in ("dark", "light") for i in range(6)))
    model = tmp_path / "m.npz"
    result = run("train", listing, "-m", model, "--size", "4x4", "--epochs", "20")
    assert result.exit_code == 0, result.stderr
    # the in-memory/streaming line is about feature files, not labels files
    assert result.stderr.startswith("trained 20 epochs"), result.stderr
    result = run("evaluate", data, "-m", model, "--format", "json")
    assert json.loads(result.stdout)["images"] == 12


def test_strict_flatten_stops_at_the_first_bad_file_and_writes_nothing(tmp_path):
    data = make_two_class_folder(tmp_path / "data", per_class=2)
    (data / "light" / "zero.png").write_bytes(b"")
    features = tmp_path / "features.npz"
    result = run("flatten", data, "-o", features, "--strict")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {data / 'light' / 'zero.png'}: empty file (0 bytes)\n"
    assert not features.exists()
    assert os.listdir(tmp_path) == ["data"]  # no temporary file left behind either


def test_labels_file_with_bom_crlf_and_quoted_commas(tmp_path):
    put(tmp_path / "a, b.png", (1, 0, 0))
    put(tmp_path / "c.png", (2, 0, 0))
    listing = tmp_path / "labels.csv"
    listing.write_bytes('\ufeffpath,label\r\n"a, b.png",cat\r\nc.png,"dog, big"\r\n'.encode())
    data = load_data(listing, (2, 2), jobs=1)
    assert data.classes == ["cat", "dog, big"] and first_pixels(data) == [(1, 0, 0), (2, 0, 0)]


def test_flatten_into_a_missing_folder_fails_before_decoding(tmp_path):
    data = make_two_class_folder(tmp_path / "data", per_class=1)
    target = tmp_path / "nowhere" / "f.npz"
    result = run("flatten", data, "-o", target, "-q")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"Error: {target}: cannot write there, folder "
                             f"{tmp_path / 'nowhere'} does not exist\n")


def test_evaluate_feature_file_of_another_size_names_the_file(tmp_path):
    path = tmp_path / "f16.npz"
    save_features(small_dataset(2, (4, 4)), path)
    with pytest.raises(DataError) as caught:
        load_data(path, (2, 2), classes=["cat", "dög"])
    assert str(caught.value) == (f"{path}: the data has 48 features (4x4 images) but the model "
                                 "expects 12 (trained at --size 2x2)")
    assert load_data(path, (64, 64)).size == (4, 4)  # training keeps the file's own size


def test_empty_feature_file_is_an_error_for_training(tmp_path):
    path = tmp_path / "empty.npz"
    save_features(small_dataset(0), path)
    with pytest.raises(DataError, match="empty.npz: found 0 images"):
        load_data(path, (3, 2))


def test_too_large_size_fails_before_decoding(tmp_path):
    data = make_two_class_folder(tmp_path / "data", per_class=1)
    result = run("flatten", data, "-o", tmp_path / "f.npz", "--size", "100000x100000")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: --size 100000x100000 is too large")
    assert result.stderr.count("\n") == 1


def test_pixels_larger_than_memory_fail_before_decoding(tmp_path, monkeypatch):
    from logreg_cli import images

    data = make_two_class_folder(tmp_path / "data", per_class=1)
    paths = sorted(data.rglob("*.png"))
    monkeypatch.setattr(images.os, "sysconf", lambda name: 1 if name == "SC_PAGE_SIZE" else 1000)
    monkeypatch.setattr(images, "load_image", lambda *args, **kwargs: pytest.fail("decoded"))
    with pytest.raises(LogregError, match=r"not enough memory: --size 64x64 is too large for 2 images"):
        images.load_images(paths, (64, 64), jobs=1)


def test_stray_files_are_skipped_with_a_warning_each(tmp_path):
    put(tmp_path / "cat" / "a.png", (1, 0, 0))
    put(tmp_path / "dog" / "b.png", (2, 0, 0))
    (tmp_path / "cat" / "notes.txt").write_text("shot in May")
    (tmp_path / "dog" / "README").write_text("dogs")
    (tmp_path / "dog" / "Thumbs.db").write_bytes(b"\0")  # Windows' own: ignored silently
    put(tmp_path / "loose.png", (3, 0, 0))
    (tmp_path / "labels.csv").write_text("path,label\n")  # files beside the classes: ignored
    errors = []
    data = load_data(tmp_path, (2, 2), jobs=1, on_error=errors.append)
    assert first_pixels(data) == [(1, 0, 0), (2, 0, 0)]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'loose.png'}: an image directly in DATA belongs to no class; skipped",
        f"{tmp_path / 'cat' / 'notes.txt'}: not an image file ('.txt' is not an image "
        "extension); skipped",
        f"{tmp_path / 'dog' / 'README'}: not an image file (no image extension); skipped",
    ]
    assert data.skipped == errors
    result = run("flatten", tmp_path, "-o", tmp_path / "f.npz", "--strict")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / 'loose.png'}: an image directly")
