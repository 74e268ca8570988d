"""Issue 10, "folders": a class is a folder with images in it, each real image belongs to one
class and is read once, and names a person reads as the same are one class.

Checked through every command that reads DATA: flatten (its feature file shows the exact
classes, labels and paths), train (the model's classes), evaluate, check, predict, explain.
"""

import json
import os
import unicodedata

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.model import load_model
from tiny_models import train_model, write_class_folders

NFC_U = unicodedata.normalize("NFC", "Über")
NFD_U = unicodedata.normalize("NFD", "Über")


def run(*args, input=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def flattened(data, tmp_path, *options):
    """flatten DATA -> (classes, {path relative to DATA: class name}, stderr lines)."""
    out = tmp_path / "features.npz"
    result = run("flatten", data, "-o", out, "--size", "8x8", *options)
    assert result.exit_code == 0, result.stderr
    with np.load(out, allow_pickle=False) as arrays:
        classes = arrays["classes"].tolist()
        base = data if data.is_dir() else data.parent
        labels = {os.path.relpath(path, base): classes[y]
                  for path, y in zip(arrays["paths"].tolist(), arrays["y"].tolist())}
    return classes, labels, result.stderr.splitlines()


def warnings_of(lines):
    return [line for line in lines if line.startswith("Warning: ")]


# ---------------------------------------------------------------- 4. a class has images


@pytest.fixture
def with_empty_classes(tmp_path):
    """blue/ and red/ with 3 images each; bird/ empty, fish/ only notes, green/ one bad PNG."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    (data / "bird").mkdir()
    (data / "fish").mkdir()
    (data / "fish" / "notes.txt").write_text("no images here\n")
    (data / "green").mkdir()
    (data / "green" / "only.png").write_bytes(b"\x89PNG\r\n\x1a\n and nothing more")
    return data


def left_out_warnings(data):
    return [f"Warning: {data / 'bird'}: holds no images; class 'bird' left out",
            f"Warning: {data / 'fish'}: holds no images; class 'fish' left out",
            f"Warning: {data / 'green'}: none of its 1 image file(s) could be read; "
            "class 'green' left out"]


def test_flatten_keeps_only_the_classes_with_images(with_empty_classes, tmp_path):
    data = with_empty_classes
    classes, labels, lines = flattened(data, tmp_path)
    assert classes == ["blue", "red"]
    assert sorted(set(labels.values())) == ["blue", "red"]
    assert [w for w in warnings_of(lines) if "left out" in w] == left_out_warnings(data)


def test_train_makes_a_binary_model_that_threshold_and_positive_accept(with_empty_classes,
                                                                       tmp_path):
    data, model = with_empty_classes, tmp_path / "m.npz"
    result = run("train", data, "-m", model, "--size", "8x8", "--epochs", "5",
                 "--positive", "blue")
    assert result.exit_code == 0, result.stderr
    assert [w for w in warnings_of(result.stderr.splitlines()) if "left out" in w] == \
        left_out_warnings(data)
    assert load_model(model).classes == ["red", "blue"]
    predicted = run("predict", "-m", model, "--threshold", "0.5", data / "blue" / "000.png")
    assert predicted.exit_code == 0, predicted.stderr
    assert predicted.stdout.split("\t")[1] in ("red", "blue")


def test_strict_refuses_a_class_folder_without_images(with_empty_classes, tmp_path):
    data = with_empty_classes
    (data / "fish" / "notes.txt").unlink()
    (data / "green" / "only.png").unlink()
    (data / "green").rmdir()
    for command, target in (("train", "-m"), ("flatten", "-o")):
        result = run(command, data, target, tmp_path / "out.npz", "--size", "8x8", "--strict")
        assert result.exit_code == 2
        assert result.stderr == (f"Error: {data / 'bird'}: holds no images; --strict stopped "
                                 "the run\n")
        assert not (tmp_path / "out.npz").exists()


def test_a_labels_file_class_whose_every_row_is_unreadable_is_left_out(tmp_path):
    data = tmp_path / "data"
    paths = write_class_folders(data, ["blue", "red"], 2)
    (data / "bad.png").write_bytes(b"not a png")
    listing = data / "labels.csv"
    rows = [f"{p.relative_to(data)},{p.parent.name}" for p in paths]
    listing.write_text("path,label\n" + "\n".join(rows + ["bad.png,fish", "gone.png,fish"]) + "\n")
    classes, labels, lines = flattened(listing, tmp_path)
    assert classes == ["blue", "red"]
    assert warnings_of(lines)[-1] == (f"Warning: {listing}: none of its 2 image file(s) could be "
                                      "read; class 'fish' left out")
    report = json.loads(run("check", listing, "--format", "json").stdout)
    assert report["left_out"] == [{"class": "fish", "path": str(listing),
                                   "cause": "none of its 2 image file(s) could be read; class "
                                            "'fish' left out"}]


def test_check_lists_every_class_left_out(with_empty_classes):
    data = with_empty_classes
    result = run("check", data, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["classes"] == {"blue": 3, "red": 3}
    assert [item["path"] for item in report["left_out"]] == [str(data / name) for name in
                                                             ("bird", "fish", "green")]
    assert [p for p in report["problems"] if "left out" in p] == \
        [w.removeprefix("Warning: ") for w in left_out_warnings(data)]
    text = run("check", data).stdout
    assert "classes left out (no image to learn from): 3" in text


def test_evaluate_data_lacking_a_model_class_or_holding_an_unknown_one(tmp_path):
    train = tmp_path / "train"
    write_class_folders(train, ["blue", "green", "red"], 3)
    model = train_model(train, tmp_path / "m.npz", epochs=5)
    lacking = tmp_path / "lacking"
    write_class_folders(lacking, ["blue", "red"], 2, seed=3)
    (lacking / "green").mkdir()  # empty: left out, the model's class just has no support
    result = run("evaluate", lacking, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (f"Warning: {lacking / 'green'}: holds no images; class 'green' "
                             "left out\n")
    report = json.loads(result.stdout)
    assert report["classes"] == ["blue", "green", "red"]
    assert report["per_class"]["green"]["support"] == 0
    unknown = tmp_path / "unknown"
    write_class_folders(unknown, ["blue", "red"], 2, seed=4)
    (unknown / "bird").mkdir()
    (unknown / "bird" / "x.png").write_bytes((lacking / "blue" / "000.png").read_bytes())
    result = run("evaluate", unknown, "-m", model)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {unknown}: class folder 'bird' is not one of the model's "
                             "classes (blue, green, red)\n")


# ---------------------------------------------------------------- 5. one class, read once


@pytest.fixture
def two_classes(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    return data


EXPECTED_PLAIN = {f"{name}/{i:03d}.png": name for name in ("blue", "red") for i in range(3)}


def test_a_link_up_the_tree_does_not_read_another_class_again(two_classes, tmp_path):
    data = two_classes
    os.symlink("..", data / "blue" / "up")
    classes, labels, lines = flattened(data, tmp_path)
    assert labels == EXPECTED_PLAIN
    assert warnings_of(lines) == [f"Warning: {data / 'blue' / 'up'}: a link to DATA itself or a "
                                  "folder above it; not followed"]
    result = run("train", data, "-m", tmp_path / "m.npz", "--size", "8x8", "--epochs", "5")
    assert result.exit_code == 0
    assert "train accuracy" in result.stderr and "(6 images)" in result.stderr
    assert "skipped" not in result.stderr  # a link is no unreadable file


@pytest.mark.parametrize("kind, make, warning", [
    ("into-other-class", lambda d: os.symlink("../red", d / "blue" / "r"),
     "{data}/blue/r: a link into the folder of class 'red'; not followed"),
    ("above-data", lambda d: os.symlink("../..", d / "blue" / "top"),
     "{data}/blue/top: a link to DATA itself or a folder above it; not followed"),
    ("class-is-link", lambda d: os.symlink("red", d / "kitty"),
     "{data}/kitty: a link into the folder of class 'red'; not a class"),
    ("class-is-data", lambda d: os.symlink(".", d / "all"),
     "{data}/all: a link to DATA itself or a folder above it; not a class"),
    ("loop", lambda d: (os.mkdir(d / "blue" / "deep"),
                        os.symlink("..", d / "blue" / "deep" / "back")),
     "{data}/blue/deep/back: a link to a folder already read in this class; not followed"),
])
def test_links_that_would_read_a_folder_again_are_skipped(two_classes, tmp_path, kind, make,
                                                          warning):
    data = two_classes
    make(data)
    classes, labels, lines = flattened(data, tmp_path)
    assert classes == ["blue", "red"]
    assert labels == EXPECTED_PLAIN
    assert warnings_of(lines) == ["Warning: " + warning.format(data=data)]


def test_a_folder_outside_data_is_walked_once(two_classes, tmp_path):
    data = two_classes
    outside = tmp_path / "outside"
    write_class_folders(outside, ["green"], 2)
    os.symlink(outside / "green", data / "blue" / "more")
    os.symlink(outside / "green", data / "blue" / "again")
    classes, labels, lines = flattened(data, tmp_path)
    assert labels == {**EXPECTED_PLAIN, "blue/again/000.png": "blue", "blue/again/001.png": "blue"}
    assert warnings_of(lines) == [f"Warning: {data / 'blue' / 'more'}: a link to a folder already "
                                  "read in this class; not followed"]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_file_under_two_classes_is_left_out_and_reported(two_classes, tmp_path, link):
    data = two_classes
    (os.symlink if link == "symlink" else os.link)(data / "red" / "001.png",
                                                    data / "blue" / "also.png")
    os.symlink("000.png", data / "blue" / "same.png")  # the same class: read once, quietly
    classes, labels, lines = flattened(data, tmp_path)
    expected = dict(EXPECTED_PLAIN)
    del expected["red/001.png"]
    assert labels == expected
    assert warnings_of(lines) == [
        f"Warning: {data / 'red' / '001.png'}: the same file as {data / 'blue' / 'also.png'}, "
        "which is under class 'blue' and again under 'red'; left out of both"]
    result = run("check", data, "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["shared_files"] == [{"path": str(data / "red" / "001.png"),
                                       "same_as": str(data / "blue" / "also.png"),
                                       "classes": ["blue", "red"]}]
    assert f"1 file(s) under two classes in {data} (left out of training)" in report["problems"]


# ---------------------------------------------------------------- 6. names read the same


def test_nfd_folder_names_are_the_classes_typed_in_nfc(tmp_path):
    """A folder written on macOS (NFD), then --positive, a labels file (BOM, CRLF, a trailing
    space) and --class typed in NFC: one class everywhere."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    os.rename(data / "red", data / NFD_U)
    model = tmp_path / "m.npz"
    result = run("train", data, "-m", model, "--size", "8x8", "--epochs", "30", "--lr", "0.05",
                 "--positive", NFC_U + " ")
    assert result.exit_code == 0, result.stderr
    assert load_model(model).classes == ["blue", NFC_U]
    listing = tmp_path / "labels.csv"
    rows = [f"{data / 'blue' / '000.png'},blue", f"{data / NFD_U / '000.png'},{NFC_U} "]
    listing.write_bytes(("\ufeffpath,label\r\n" + "\r\n".join(rows) + "\r\n").encode())
    evaluated = run("evaluate", listing, "-m", model, "--format", "json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["per_class"][NFC_U]["support"] == 1
    explained = run("explain", data / NFD_U / "000.png", "-m", model, "--class", NFD_U,
                    "--format", "json")
    assert explained.exit_code == 0, explained.stderr
    assert json.loads(explained.stdout)["class"] == NFC_U


def test_two_folders_spelling_one_name_are_one_class(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    os.rename(data / "red", data / NFC_U)
    write_class_folders(tmp_path / "more", ["green"], 1)
    (data / NFD_U).mkdir()
    os.rename(tmp_path / "more" / "green" / "000.png", data / NFD_U / "extra.png")
    classes, labels, lines = flattened(data, tmp_path)
    assert classes == ["blue", NFC_U]
    assert sorted(path for path, name in labels.items() if name == NFC_U) == \
        sorted([f"{NFC_U}/000.png", f"{NFC_U}/001.png", f"{NFD_U}/extra.png"])
    assert warnings_of(lines) == []


def test_labels_with_spaces_cr_and_nfd_are_one_class(tmp_path):
    data = tmp_path / "data"
    paths = write_class_folders(data, ["blue", "red"], 2)
    spellings = ["blue", " blue\r", NFC_U, NFD_U + "\t"]
    listing = tmp_path / "labels.tsv"
    listing.write_text("path\tlabel\n" + "".join(f"{p}\t{s}\n" for p, s in zip(paths, spellings)))
    classes, labels, _ = flattened(listing, tmp_path)
    assert classes == ["blue", NFC_U]


def test_a_labels_file_naming_one_real_file_under_two_labels(two_classes, tmp_path):
    """The labels-file layout agrees with the folder layout: a file named again (another
    spelling of its path, a link) under the same label is read once; under another label it
    is left out of both, with a warning, and check reports it."""
    data = two_classes
    os.link(data / "red" / "002.png", data / "copy.png")
    listing = data / "labels.csv"
    rows = [f"{name}/{i:03d}.png,{name}" for name in ("blue", "red") for i in range(3)]
    rows += ["./blue/000.png,blue", "copy.png,blue"]
    listing.write_text("path,label\n" + "\n".join(rows) + "\n")
    classes, labels, lines = flattened(listing, tmp_path)
    expected = dict(EXPECTED_PLAIN)
    del expected["red/002.png"]
    assert labels == expected
    assert warnings_of(lines) == [
        f"Warning: {data / 'copy.png'}: the same file as {data / 'red' / '002.png'}, which is "
        "under class 'red' and again under 'blue'; left out of both"]
    report = json.loads(run("check", listing, "--format", "json").stdout)
    assert [item["path"] for item in report["shared_files"]] == [str(data / "copy.png")]


def test_a_model_saved_with_nfd_class_names_meets_nfc_data(tmp_path):
    """A model (or --init model) whose classes were stored in NFD evaluates and continues on
    data whose folder names are NFC: the same classes."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    os.rename(data / "red", data / NFC_U)
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    with np.load(model, allow_pickle=False) as stored:
        arrays = dict(stored)
    arrays["classes"] = np.array(["blue", NFD_U])
    np.savez(model, **arrays)
    evaluated = run("evaluate", data, "-m", model, "--format", "json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["per_class"][NFD_U]["support"] == 3
    continued = run("train", data, "--init", model, "-m", tmp_path / "m2.npz", "--epochs", "2",
                    "--positive", NFC_U)
    assert continued.exit_code == 0, continued.stderr
    assert load_model(tmp_path / "m2.npz").classes == ["blue", NFC_U]


def old_feature_file(path):
    """A feature file written before classes were left out: it names classes without rows."""
    rows = np.arange(48, dtype=np.uint8).reshape(4, 12)
    np.savez(path, X=rows, y=np.array([1, 1, 3, 3]), classes=np.array(["bird", "blue", "fish",
                                                                        "red"]),
             paths=np.array(["a.png", "b.png", "c.png", "d.png"]), size=np.array([2, 2]),
             metadata=np.array("{}"))
    return path


def test_check_lists_the_empty_classes_of_a_feature_file(tmp_path):
    features = old_feature_file(tmp_path / "old.npz")
    report = json.loads(run("check", features, "--format", "json").stdout)
    assert report["classes"] == {"blue": 2, "red": 2}
    assert report["left_out"] == [
        {"class": name, "path": str(features), "cause": f"holds no images; class '{name}' left out"}
        for name in ("bird", "fish")]


def test_explain_class_typed_in_nfd_picks_that_column_of_a_multiclass_model(tmp_path):
    data = tmp_path / "data"
    paths = write_class_folders(data, ["blue", "green", "red"], 2)
    os.rename(data / "red", data / NFC_U)
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    image = paths[0]

    def explained(name):
        result = run("explain", image, "-m", model, "--class", name, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    typed_nfd, typed_nfc, other = explained(NFD_U + " "), explained(NFC_U), explained("green")
    assert typed_nfd["class"] == NFC_U
    assert typed_nfd["z"] == typed_nfc["z"] != other["z"]


def test_training_on_a_feature_file_leaves_its_empty_classes_out(tmp_path):
    features, model = old_feature_file(tmp_path / "old.npz"), tmp_path / "m.npz"
    result = run("train", features, "-m", model, "--epochs", "3", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"Warning: {features}: holds no images; class '{name}' left out" for name in ("bird", "fish")]
    assert load_model(model).classes == ["blue", "red"]
    strict = run("train", features, "-m", tmp_path / "strict.npz", "--strict")
    assert strict.exit_code == 2
    assert strict.stderr == f"Error: {features}: holds no images; --strict stopped the run\n"
    assert not (tmp_path / "strict.npz").exists()


def test_a_name_of_only_spaces_or_a_bom_is_no_class_name(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    os.rename(data / "red", data / " \ufeff")
    result = run("train", data, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {data / ' '}\ufeff: a class folder name must hold more "
                             "than spaces; rename the folder\n")
    listing = tmp_path / "labels.csv"
    listing.write_text(f"path,label\n{data / 'blue' / '000.png'},blue\n"
                       f"{data / 'blue' / '001.png'},\ufeff\n")
    result = run("train", listing, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {listing}, line 3: empty label\n"
