"""Issue 10 re-tested (probe10), case 4: a class is a folder with images in it, for the
commands that read DATA against a model (evaluate, train --val) as for train itself.

A class folder (or a label) none of whose image files can be read is left out by train with
one warning; evaluating the same DATA with that model must leave it out the same way, not
refuse it as a class the model does not know.
"""

import json
import os

import numpy as np

from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import train_model, write_class_folders


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def data_with_unreadable_class(root):
    """root/{blue,red}/ with images, root/green/ holding only a file that is no image."""
    write_class_folders(root, ["blue", "red"], 3)
    (root / "green").mkdir()
    (root / "green" / "bad.png").write_bytes(b"not a png at all")
    return root


def test_evaluate_leaves_out_a_class_folder_whose_images_all_fail(tmp_path):
    data = data_with_unreadable_class(tmp_path / "data")
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    result = run("evaluate", data, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["classes"] == ["blue", "red"]
    assert {name: row["support"] for name, row in report["per_class"].items()} == \
        {"blue": 3, "red": 3}
    assert (f"Warning: {data / 'green'}: none of its 1 image file(s) could be read; class "
            "'green' left out") in result.stderr.splitlines()
    strict = run("evaluate", data, "-m", model, "--strict")
    assert strict.exit_code == 2
    assert strict.stderr == f"Error: {data / 'green' / 'bad.png'}: not an image Pillow can read\n"


def test_evaluate_a_labels_file_whose_label_has_no_readable_image(tmp_path):
    data = data_with_unreadable_class(tmp_path / "data")
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    labels = data / "labels.csv"
    labels.write_text("path,label\nblue/000.png,blue\nred/000.png,red\ngreen/bad.png,green\n")
    result = run("evaluate", labels, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["per_class"]["red"]["support"] == 1
    assert (f"Warning: {labels}: none of its 1 image file(s) could be read; class 'green' "
            "left out") in result.stderr.splitlines()


def test_train_val_data_with_a_class_folder_whose_images_all_fail(tmp_path):
    train = tmp_path / "train"
    write_class_folders(train, ["blue", "red"], 3)
    val = data_with_unreadable_class(tmp_path / "val")
    result = run("train", train, "--val", val, "-m", tmp_path / "m.npz", "--size", "8x8",
                 "--epochs", "3", "-q")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m.npz").exists()


def test_a_class_the_model_lacks_with_a_readable_image_is_still_refused(tmp_path):
    data = data_with_unreadable_class(tmp_path / "data")
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    (data / "green" / "good.png").write_bytes((data / "blue" / "000.png").read_bytes())
    result = run("evaluate", data, "-m", model)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"Error: {data}: class folder 'green' is not one "
                                              "of the model's classes (blue, red)")
    labels = data / "labels.csv"
    labels.write_text("path,label\nblue/000.png,blue\ngreen/good.png,green\n")
    result = run("evaluate", labels, "-m", model)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (f"Error: {labels}: label 'green' is not one of "
                                              "the model's classes (blue, red)")


# ---------------------------------------------------------------- case 5: one class, read once


def folder_linked_from_two_classes(tmp_path, first_target, second_target):
    """data/{blue,red}/ with two images each; outside/ (two images, and one in outside/sub/)
    linked as data/blue/ext -> first_target and data/red/ext -> second_target."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    outside = tmp_path / "outside"
    write_class_folders(outside, ["green"], 2, seed=7)
    write_class_folders(outside / "green", ["blue"], 1, seed=8)  # outside/green/blue/000.png
    (data / "blue" / "ext").symlink_to(tmp_path / first_target)
    (data / "red" / "ext").symlink_to(tmp_path / second_target)
    return data


def test_a_folder_outside_data_linked_from_two_classes_is_under_neither(tmp_path):
    data = folder_linked_from_two_classes(tmp_path, "outside/green", "outside/green")
    out = tmp_path / "features.npz"
    result = run("flatten", data, "-o", out, "--size", "8x8")
    assert result.exit_code == 0, result.stderr
    with np.load(out, allow_pickle=False) as arrays:
        listed = sorted(os.path.relpath(path, data) for path in arrays["paths"].tolist())
    assert listed == ["blue/000.png", "blue/001.png", "red/000.png", "red/001.png"]
    assert (f"Warning: {data}/red/ext/000.png: the same file as {data}/blue/ext/000.png, which "
            "is under class 'blue' and again under 'red'; left out of both"
            ) in result.stderr.splitlines()
    report = run("check", data, "--format", "json")
    assert report.exit_code == 1
    shared = json.loads(report.stdout)["shared_files"]
    assert len(shared) == 3


def test_a_subfolder_of_a_folder_read_under_another_class_is_under_neither(tmp_path):
    # blue reaches outside/green/blue only; red reaches all of outside/green, that subfolder too
    data = folder_linked_from_two_classes(tmp_path, "outside/green/blue", "outside/green")
    out = tmp_path / "features.npz"
    result = run("flatten", data, "-o", out, "--size", "8x8")
    assert result.exit_code == 0, result.stderr
    with np.load(out, allow_pickle=False) as arrays:
        classes = arrays["classes"].tolist()
        labels = {os.path.relpath(path, data): classes[y]
                  for path, y in zip(arrays["paths"].tolist(), arrays["y"].tolist())}
    assert labels == {"blue/000.png": "blue", "blue/001.png": "blue", "red/000.png": "red",
                      "red/001.png": "red", "red/ext/000.png": "red", "red/ext/001.png": "red"}
    model = train_model(data, tmp_path / "m.npz", epochs=3)
    trained = run("train", data, "-m", tmp_path / "m2.npz", "--size", "8x8", "--epochs", "3")
    assert trained.exit_code == 0
    assert (f"Warning: {data}/red/ext/blue/000.png: the same file as {data}/blue/ext/000.png, "
            "which is under class 'blue' and again under 'red'; left out of both"
            ) in trained.stderr.splitlines()
    assert model.exists()


def test_evaluate_a_feature_file_holding_a_class_without_rows(tmp_path):
    """A feature file written before flatten left such classes out: train leaves the class
    out with a warning, and so must evaluate with that model."""
    from logreg_cli.dataset import Dataset, save_features

    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    X = np.random.default_rng(0).integers(0, 256, (4, 8 * 8 * 3), dtype=np.uint8)
    old = tmp_path / "old.npz"
    save_features(Dataset(X, np.array([1, 1, 2, 2]), ["bird", "blue", "red"],
                          ["a.png", "b.png", "c.png", "d.png"], (8, 8)), old)
    result = run("evaluate", old, "-m", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"Warning: {old}: holds no images; class 'bird' left out\n"
    assert {name: row["support"] for name, row in
            json.loads(result.stdout)["per_class"].items()} == {"blue": 2, "red": 2}
    strict = run("evaluate", old, "-m", model, "--strict")
    assert strict.exit_code == 2
    assert strict.stderr == f"Error: {old}: holds no images; --strict stopped the run\n"
    unknown = tmp_path / "unknown.npz"
    save_features(Dataset(X, np.array([0, 1, 1, 2]), ["bird", "blue", "red"],
                          ["a.png", "b.png", "c.png", "d.png"], (8, 8)), unknown)
    result = run("evaluate", unknown, "-m", model)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {unknown}: class 'bird' is not one of the model's "
                             "classes (blue, red)\n")


def test_a_link_back_into_data_below_a_folder_read_twice_is_not_followed(tmp_path):
    """outside/ is reached from blue and red; outside/back leads into green's folder (walked
    after both): green keeps its images, only outside's own image is under two classes."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "green", "red"], 2)
    outside = tmp_path / "outside"
    write_class_folders(outside, ["red"], 1, seed=9)  # outside/red/000.png
    (outside / "back").symlink_to(data / "green")
    (data / "blue" / "ext").symlink_to(outside)
    (data / "red" / "ext").symlink_to(outside)
    report = run("check", data, "--format", "json")
    assert report.exit_code == 1
    found = json.loads(report.stdout)
    assert found["classes"] == {"blue": 2, "green": 2, "red": 2}
    assert [entry["classes"] for entry in found["shared_files"]] == [["blue", "red"]]
