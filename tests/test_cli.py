"""The `logreg` commands through click's CliRunner: outputs, options, and bad input."""

import csv
import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli import __version__
from logreg_cli.cli import cli
from logreg_cli.model import FORMAT_VERSION, load_model

TRAIN = ["--size", "8x8", "--epochs", "50", "--lr", "0.5"]


def run(*args, env=None, input=None):
    """Invoke logreg; fail the test on any exception other than the exit itself."""
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_user_error(result, *words):
    """Exit 2, stdout empty, exactly one stderr line 'Error: ...' holding every word."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert str(word) in lines[0]
    return lines[0]


@pytest.fixture
def trained(tmp_path, three_classes):
    """A model trained on three_classes (a, b, c): its path."""
    path = tmp_path / "model.npz"
    result = run("train", three_classes, "-m", path, *TRAIN)
    assert result.exit_code == 0, result.stderr
    return path


@pytest.fixture
def test_folder(make_image_folder):
    """Unseen images of the same three classes."""
    return make_image_folder({"a": 3, "b": 3, "c": 3}, name="test")


# ---------------------------------------------------------------- train


def test_train_writes_model_and_history(tmp_path, three_classes):
    model_path, history = tmp_path / "out.npz", tmp_path / "h.csv"
    result = run("train", three_classes, "-m", model_path, "--history", history, *TRAIN)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "train accuracy" in result.stderr and str(model_path) in result.stderr

    model = load_model(model_path)
    assert model.classes == ["a", "b", "c"]
    assert model.size == (8, 8) and model.weights.shape == (192, 3)
    assert model.metadata["train_accuracy"] == 1.0

    with open(history, newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["epoch", "lr", "cost"]
    assert len(rows) == 1 + 50
    assert [int(r[0]) for r in rows[1:]] == list(range(50))
    assert {float(r[1]) for r in rows[1:]} == {0.5}
    costs = [float(r[2]) for r in rows[1:]]
    assert costs[0] == pytest.approx(np.log(3))  # zero weights: uniform over 3 classes
    assert costs[-1] < costs[0] / 2
    assert costs == model.metadata["history"]["cost"]


def test_train_quiet_prints_nothing(tmp_path, three_classes):
    result = run("train", three_classes, "-m", tmp_path / "m.npz", "-q", *TRAIN)
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def test_learning_rate_alias(tmp_path, three_classes):
    path = tmp_path / "m.npz"
    result = run("train", three_classes, "-m", path, "--size", "8x8", "--epochs", "3",
                 "--learning-rate", "0.05", "-q")
    assert result.exit_code == 0, result.stderr
    metadata = load_model(path).metadata
    assert metadata["options"]["lr"] == 0.05
    assert metadata["history"]["lr"] == [0.05] * 3


def test_model_defaults_to_model_npz_in_the_current_folder(tmp_path, three_classes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGREG_MODEL", raising=False)
    result = run("train", three_classes, "-q", *TRAIN)
    assert result.exit_code == 0, result.stderr
    assert load_model(tmp_path / "model.npz").classes == ["a", "b", "c"]
    image = three_classes / "b" / "000.png"
    assert run("predict", image).stdout.split("\t")[1] == "b"
    assert json.loads(run("inspect", "--format", "json").stdout)["model"] == "model.npz"


def test_model_from_environment(tmp_path, three_classes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "elsewhere.npz"
    env = {"LOGREG_MODEL": str(path)}
    assert run("train", three_classes, "-q", *TRAIN, env=env).exit_code == 0
    assert path.exists() and not (tmp_path / "model.npz").exists()
    image = three_classes / "c" / "001.png"
    assert run("predict", image, env=env).stdout.split("\t")[1] == "c"
    inspect = json.loads(run("inspect", "--format", "json", env=env).stdout)
    assert inspect["model"] == str(path)


# ---------------------------------------------------------------- evaluate


def test_evaluate_json(trained, test_folder):
    result = run("evaluate", test_folder, "-m", trained, "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"accuracy", "log_loss", "classes", "confusion_matrix", "per_class"} <= set(report)
    assert report["classes"] == ["a", "b", "c"]
    assert report["accuracy"] == 1.0  # one colour per class: easy
    assert report["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert 0 < report["log_loss"] < np.log(3)
    for name in "abc":
        row = report["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == (1.0, 1.0, 1.0)


def test_evaluate_json_counts_mistakes(tmp_path, trained, make_image_folder):
    # Put class-b images in folder c: the confusion matrix and recall must show it.
    folder = make_image_folder({"a": 2, "b": 2}, name="mixed")
    (folder / "b").rename(folder / "c")
    report = json.loads(run("evaluate", folder, "-m", trained, "--format", "json").stdout)
    assert report["accuracy"] == 0.5
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 0, 0], [0, 2, 0]]
    assert report["per_class"]["c"]["recall"] == 0.0
    assert report["per_class"]["a"]["f1"] == 1.0


def test_evaluate_text(trained, test_folder):
    result = run("evaluate", test_folder, "-m", trained)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("accuracy") and "100.00 %" in lines[0] and "(9/9)" in lines[0]
    assert lines[1].startswith("log-loss")
    assert "confusion matrix" in result.stdout
    assert any(line.split() == ["a", "3", "0", "0"] for line in lines)


# ---------------------------------------------------------------- predict


def test_predict_prints_path_label_probability(trained, test_folder):
    images = [test_folder / c / "001.png" for c in "cab"]
    result = run("predict", *images, "-m", trained)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for image, line, expected in zip(images, lines, "cab"):
        path, label, probability = line.split("\t")
        assert path == str(image)
        assert label == expected
        assert 1 / 3 < float(probability) <= 1.0


def test_predict_reads_paths_from_stdin(trained, test_folder):
    images = [test_folder / "b" / "002.png", test_folder / "a" / "000.png"]
    stdin = "".join(f"{image}\n" for image in images)
    result = run("predict", "-", "-m", trained, input=stdin)
    assert result.exit_code == 0, result.stderr
    assert [line.split("\t")[:2] for line in result.stdout.splitlines()] == [
        [str(images[0]), "b"], [str(images[1]), "a"]]


def test_predict_jsonl_carries_every_probability(trained, test_folder):
    image = test_folder / "c" / "000.png"
    result = run("predict", image, "-m", trained, "--format", "jsonl")
    record = json.loads(result.stdout)
    assert record["path"] == str(image) and record["label"] == "c"
    assert set(record["probabilities"]) == {"a", "b", "c"}
    assert sum(record["probabilities"].values()) == pytest.approx(1.0)
    assert record["probability"] == max(record["probabilities"].values())


def test_predict_csv_has_a_header(trained, test_folder):
    images = [test_folder / "a" / "000.png", test_folder / "b" / "000.png"]
    rows = list(csv.reader(run("predict", *images, "-m", trained, "--format", "csv")
                           .stdout.splitlines()))
    assert rows[0] == ["path", "label", "probability"]
    assert [row[:2] for row in rows[1:]] == [[str(images[0]), "a"], [str(images[1]), "b"]]


def test_predict_names_unreadable_files_and_goes_on(tmp_path, trained, test_folder):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = test_folder / "a" / "000.png"
    result = run("predict", bad, good, "-m", trained)
    assert result.exit_code == 1
    assert result.stdout.split("\t")[:2] == [str(good), "a"]
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- inspect


def test_inspect_json(trained):
    result = run("inspect", trained, "--format", "json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    history = load_model(trained).metadata["history"]
    assert info["classes"] == ["a", "b", "c"]
    assert info["size"] == "8x8"
    assert info["format_version"] == FORMAT_VERSION
    assert info["options"]["lr"] == 0.5 and info["options"]["epochs"] == 50
    assert info["epochs_run"] == 50
    # the cost of the weights saved, after the last update (history holds the cost before it)
    assert (info["saved_epoch"], info["final_cost"]) == \
        (50, load_model(trained).metadata["final_cost"])
    assert info["final_cost"] < history["cost"][-1]


def test_inspect_text(trained):
    result = run("inspect", trained)
    assert result.exit_code == 0, result.stderr
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()
              if not line.startswith("option")}
    assert fields["classes"] == "a, b, c"
    assert fields["size"] == "8x8"
    assert fields["epochs_run"] == "50"


# ---------------------------------------------------------------- flatten


def test_flatten_writes_plain_npz_that_train_accepts(tmp_path, three_classes):
    features = tmp_path / "features.npz"
    result = run("flatten", three_classes, "-o", features, "--size", "8x8")
    assert result.exit_code == 0, result.stderr
    with np.load(features, allow_pickle=False) as archive:
        X, y = archive["X"], archive["y"]
        assert X.dtype == np.uint8 and X.shape == (18, 8 * 8 * 3)
        assert archive["classes"].tolist() == ["a", "b", "c"]
        assert y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
        assert archive["paths"][0].endswith("000.png")
        assert archive["size"].tolist() == [8, 8]

    from_features, from_folder = tmp_path / "f.npz", tmp_path / "d.npz"
    assert run("train", features, "-m", from_features, "-q", *TRAIN).exit_code == 0
    assert run("train", three_classes, "-m", from_folder, "-q", *TRAIN).exit_code == 0
    np.testing.assert_array_equal(load_model(from_features).weights, load_model(from_folder).weights)
    assert load_model(from_features).classes == ["a", "b", "c"]


def test_python_dash_m_runs_the_cli(tmp_path):
    """The real entry point: --version, and a bad input that is one line, exit 2."""
    import subprocess
    import sys

    version = subprocess.run([sys.executable, "-m", "logreg_cli", "--version"],
                             capture_output=True, text=True)
    assert version.returncode == 0 and __version__ in version.stdout
    missing = tmp_path / "nowhere"
    bad = subprocess.run([sys.executable, "-m", "logreg_cli", "train", str(missing)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines() == [f"Error: {missing}: no such file or folder"]


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert "logreg" in result.stdout and __version__ in result.stdout


# ---------------------------------------------------------------- bad input
# (one-line errors of missing or unusable data, bad option values and unwritable outputs are
# in the table of tests/test_error_paths.py)


@pytest.mark.parametrize("empty_second_class", [False, True], ids=["one-folder", "other-empty"])
def test_train_single_class(tmp_path, make_image_folder, empty_second_class):
    folder = make_image_folder({"only": 3})
    if empty_second_class:
        (folder / "zzz").mkdir()
    result = run("train", folder, "-m", tmp_path / "m.npz", "--size", "8x8")
    if empty_second_class:  # the empty folder is left out with a warning, then the error
        warning = f"Warning: {folder / 'zzz'}: holds no images; class 'zzz' left out\n"
        assert result.stderr.startswith(warning)
        result.stderr_bytes = result.stderr_bytes[len(warning.encode()):]
    line = assert_user_error(result, folder, "only")
    assert not (tmp_path / "m.npz").exists()
    assert "one class" in line


def corrupt_model(path):
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    return path


def other_version_model(path, trained):
    with np.load(trained, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays["format_version"] = np.int64(FORMAT_VERSION + 1)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("kind", ["missing", "corrupt", "other-version", "folder"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect"])
def test_bad_model_file(tmp_path, trained, test_folder, kind, command):
    path = tmp_path / "bad.npz"
    if kind == "corrupt":
        corrupt_model(path)
    elif kind == "other-version":
        other_version_model(path, trained)
    elif kind == "folder":
        path.mkdir()
    args = {"predict": ["predict", test_folder / "a" / "000.png", "-m", path],
            "evaluate": ["evaluate", test_folder, "-m", path],
            "inspect": ["inspect", path]}[command]
    line = assert_user_error(run(*args), path)
    if kind == "other-version":
        assert f"version {FORMAT_VERSION + 1}" in line


def test_evaluate_unknown_class_folder(trained, make_image_folder):
    folder = make_image_folder({"a": 1, "zebra": 1}, name="other")
    assert_user_error(run("evaluate", folder, "-m", trained), "zebra")


def test_evaluate_with_a_model_of_another_size(tmp_path, trained, make_image_folder):
    features = tmp_path / "features.npz"
    run("flatten", make_image_folder({"a": 1, "b": 1}, name="big"), "-o", features,
        "--size", "16x16", "-q")
    assert_user_error(run("evaluate", features, "-m", trained), "8x8")


# ---------------------------------------------------------------- nothing half-written


def test_diverging_train_keeps_the_old_model(tmp_path, trained, three_classes):
    before = trained.read_bytes()
    result = run("train", three_classes, "-m", trained, "--size", "8x8", "--epochs", "50",
                 "--lr", "1e38")
    line = assert_user_error(result, "diverged", "--lr")
    assert "epoch" in line
    assert trained.read_bytes() == before
    assert sorted(p.name for p in trained.parent.iterdir() if p.name.startswith(".")) == []


def test_failed_save_keeps_the_old_model(tmp_path, trained, three_classes, monkeypatch):
    before = trained.read_bytes()

    def savez_that_fails_midway(file, **arrays):
        file.write(b"PK\x03\x04 half of an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_that_fails_midway)
    result = run("train", three_classes, "-m", trained, "-q", *TRAIN)
    assert_user_error(result, trained, "No space left")
    assert trained.read_bytes() == before
    assert [p.name for p in trained.parent.iterdir() if p.name.startswith(".")] == []


def test_model_file_is_a_zip_not_a_model(tmp_path, test_folder):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert_user_error(run("predict", test_folder / "a" / "000.png", "-m", path), path)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"y": np.array([0] * 6 + [1] * 6 + [2] * 5 + [7])}, ["y"]),
        ({"y": np.array([-1] + [0] * 5 + [1] * 6 + [2] * 6)}, ["y"]),
        ({"y": np.array([0.0] * 6 + [1.0] * 6 + [2.0] * 6)}, ["y"]),
        ({"size": np.array([8])}, ["size"]),
        ({"size": np.array([0, 8])}, ["size"]),
        ({"classes": np.array([1, 2, 3])}, ["classes"]),
        ({"X": np.zeros((18, 10), np.uint8)}, ["X"]),
        ({"X": np.zeros((18, 192), np.float32)}, ["X"]),
        ({"paths": None}, ["paths"]),
    ],
    ids=["y-too-big", "y-negative", "y-float", "size-1", "size-0", "int-classes", "X-width",
         "X-float", "no-paths"],
)
def test_train_rejects_bad_feature_files(tmp_path, three_classes, change, words):
    features = tmp_path / "features.npz"
    assert run("flatten", three_classes, "-o", features, "--size", "8x8", "-q").exit_code == 0
    with np.load(features, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(change)
    np.savez(features, **{key: value for key, value in arrays.items() if value is not None})
    assert_user_error(run("train", features, "-m", tmp_path / "m.npz", "-q", *TRAIN),
                      features, *words)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("args, cause", [
    (["train"], "Missing argument 'DATA'."),
    (["predict", "--formt", "csv", "x.png"], "No such option '--formt'. Did you mean '--format'?"),
])
def test_usage_errors_are_one_line_pointing_to_the_help(args, cause):
    result = run(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == f"Error: {cause} (see 'logreg {args[0]} -h')\n"


@pytest.mark.parametrize("option", ["-m", "--history", "--plot"])
def test_train_refuses_a_missing_output_folder_before_training(three_classes, tmp_path, option):
    target = tmp_path / "nowhere" / "out"
    result = run("train", three_classes, "--size", "8x8", "--epochs", "5", option, target)
    assert result.exit_code == 2 and result.stdout == ""
    # the early check's message, not the one the save would give after training
    assert result.stderr == (f"Error: {target}: cannot write there, folder "
                             f"{target.parent} does not exist\n")
