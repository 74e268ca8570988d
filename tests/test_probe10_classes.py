"""Issue 10 re-tested (probe10), case 4: a class is a folder with images in it, for the
commands that read DATA against a model (evaluate, train --val) as for train itself.

A class folder (or a label) none of whose image files can be read is left out by train with
one warning; evaluating the same DATA with that model must leave it out the same way, not
refuse it as a class the model does not know.
"""

import json

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
