"""`logreg check`: what it reports, and exit 1 exactly when it found a problem."""

import json

from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.dataset import load_data, save_features


def put(path, colour, size=(4, 4), fmt=None, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, fmt)
    return path


def clean_set(root, offset=0):
    """Two classes of 3 distinct images each."""
    for index in range(3):
        put(root / "cat" / f"{index}.png", (offset + index + 1, 0, 0))
        put(root / "dog" / f"{index}.png", (0, offset + index + 1, 0))
    return root


def run(*args):
    """`logreg check ARGS`; exit 1 must mean "problems found", never a crash."""
    result = CliRunner().invoke(cli, ["check", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def check_json(*args):
    result = run(*args, "--format", "json")
    return result, json.loads(result.stdout)


def test_clean_set_exits_0(tmp_path):
    data = clean_set(tmp_path / "train")
    put(data / "dog" / "big.jpg", (0, 0, 200), size=(10, 8))
    put(data / "dog" / "grey.png", 90, mode="L")
    result, report = check_json(data)
    assert result.exit_code == 0, result.output
    assert report["classes"] == {"cat": 3, "dog": 5}
    assert report["sizes"] == {"4x4": 7, "10x8": 1}
    assert report["modes"] == {"RGB": 7, "L": 1}
    assert report["problems"] == [] and report["duplicates"] == [] and report["unreadable"] == []
    text = run(data)
    assert text.exit_code == 0
    assert "no problems found" in text.stdout and "  cat         3" in text.stdout


def test_identical_pixels_found_across_formats_and_classes(tmp_path):
    data = clean_set(tmp_path / "train")
    put(data / "dog" / "same as cat 0.bmp", (1, 0, 0), fmt="BMP")  # same pixels as cat/0.png
    result, report = check_json(data)
    assert result.exit_code == 1
    assert report["duplicates"] == [{"paths": [str(data / "cat" / "0.png"),
                                               str(data / "dog" / "same as cat 0.bmp")],
                                     "labels": ["cat", "dog"]}]
    assert report["problems"] == [
        f"1 group(s) of identical images in {data}, 1 of them under different classes"]


def test_train_test_leak_with_against(tmp_path):
    train = clean_set(tmp_path / "train")
    test = clean_set(tmp_path / "test", offset=100)
    put(test / "dog" / "leaked.png", (0, 3, 0))  # = train/dog/2.png
    result, report = check_json(train, "--against", test)
    assert result.exit_code == 1
    assert report["against"]["shared"] == [{"path": str(train / "dog" / "2.png"), "label": "dog",
                                           "other_paths": [str(test / "dog" / "leaked.png")]}]
    assert "(a train/test leak)" in report["problems"][0]
    clean = run(train, "--against", clean_set(tmp_path / "fresh", offset=200))
    assert clean.exit_code == 0, clean.stdout


def test_unreadable_files_are_listed(tmp_path):
    data = clean_set(tmp_path / "train")
    (data / "cat" / "broken.jpg").write_text("no")
    (data / "cat" / "empty.png").write_bytes(b"")
    result = run(data)
    assert result.exit_code == 1
    assert f"  {data / 'cat' / 'broken.jpg'}: not an image Pillow can read" in result.stdout
    assert f"  {data / 'cat' / 'empty.png'}: empty file (0 bytes)" in result.stdout
    assert f"  - 2 unreadable file(s) in {data}" in result.stdout


def test_imbalance_beyond_the_limit(tmp_path):
    data = tmp_path / "train"
    put(data / "rare" / "0.png", (1, 1, 1))
    for index in range(4):
        put(data / "common" / f"{index}.png", (index, 50, 50))
    result, report = check_json(data)
    assert result.exit_code == 1
    assert report["imbalance"] == {"limit": 3.0, "largest": "common", "smallest": "rare",
                                   "ratio": 4.0}
    assert report["problems"][0].startswith("class imbalance: 'common' has 4.0x the images of 'rare'")
    assert run(data, "--max-imbalance", "4").exit_code == 0


def test_feature_file_can_be_checked(tmp_path):
    data = clean_set(tmp_path / "train")
    features = tmp_path / "f.npz"
    save_features(load_data(data, (2, 2), jobs=1), features)
    result, report = check_json(features)
    assert result.exit_code == 0, result.stdout
    assert report["classes"] == {"cat": 3, "dog": 3} and report["sizes"] == {"2x2": 6}


def test_missing_data_is_a_usage_error(tmp_path):
    result = run(tmp_path / "nowhere")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nowhere'}: no such file or folder\n"
    assert result.stdout == ""


def test_stray_files_are_listed_but_not_a_problem(tmp_path):
    data = clean_set(tmp_path / "train")
    (data / "cat" / "notes.txt").write_text("x")
    result, report = check_json(data)
    assert result.exit_code == 0
    assert report["ignored"] == [{"path": str(data / "cat" / "notes.txt"),
                                  "cause": "not an image file ('.txt' is not an image extension); "
                                           "skipped"}]


def test_the_exercise_data_has_one_train_test_leak(shared_data):
    folder = shared_data
    result, report = check_json(folder / "train", "--against", folder / "test")
    assert result.exit_code == 1
    assert report["classes"] == {"cat": 72, "non-cat": 137}
    assert report["sizes"] == {"64x64": 209} and report["duplicates"] == []
    assert report["against"]["shared"] == [{
        "path": str(folder / "train" / "cat" / "146.png"), "label": "cat",
        "other_paths": [str(folder / "test" / "cat" / "017.png")]}]


def test_labels_file_listing_one_image_twice(tmp_path):
    put(tmp_path / "a.png", (1, 2, 3))
    put(tmp_path / "b.png", (4, 5, 6))
    listing = tmp_path / "labels.tsv"
    listing.write_text("path\tlabel\na.png\tx\nb.png\ty\na.png\ty\n")
    result, report = check_json(listing)
    assert result.exit_code == 1
    # a.png under x and y has no known label: left out of both, and with it class x
    assert report["classes"] == {"y": 1}
    assert report["shared_files"] == [{"path": str(tmp_path / "a.png"),
                                       "same_as": str(tmp_path / "a.png"), "classes": ["x", "y"]}]
    assert report["left_out"] == [{"class": "x", "path": str(listing), "cause": "each of its "
                                   "images is also under another label; class 'x' left out"}]
    assert report["duplicates"] == []


def test_labels_file_listing_one_image_twice_warns_when_training(tmp_path):
    put(tmp_path / "a.png", (1, 2, 3))
    put(tmp_path / "b.png", (4, 5, 6))
    put(tmp_path / "c.png", (7, 8, 9))
    listing = tmp_path / "labels.tsv"
    listing.write_text("path\tlabel\na.png\tx\nb.png\ty\na.png\ty\nc.png\tx\n")
    result = CliRunner().invoke(cli, ["flatten", str(listing), "-o", str(tmp_path / "f.npz"),
                                      "--size", "2x2"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (f"Warning: {tmp_path / 'a.png'}: listed under class "
                                             "'x' and again under 'y'; left out of both")
