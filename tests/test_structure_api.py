"""The public Python API (logreg_cli.train, load_model, Model.predict/predict_proba/save,
evaluate, flatten, load_images, explain) gives exactly what the commands give."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import logreg_cli
from logreg_cli.cli import cli
from tiny_models import subprocess_env, write_class_folders

TIMESTAMPS = ("created", "seconds")


def run(*args):
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def arrays_of(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def assert_same_model_file(cli_path, api_path):
    """Every array equal bit for bit; metadata equal apart from timings."""
    ours, theirs = arrays_of(cli_path), arrays_of(api_path)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        if key == "metadata":
            a, b = json.loads(str(ours[key])), json.loads(str(theirs[key]))
            for stamp in TIMESTAMPS:
                a.pop(stamp), b.pop(stamp)
            assert a == b
        else:
            assert ours[key].dtype == theirs[key].dtype and ours[key].tobytes() == theirs[key].tobytes(), key


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    write_class_folders(root / "two", ["green", "red"], 12, seed=1)
    write_class_folders(root / "three", ["blue", "green", "red"], 8, seed=2)
    write_class_folders(root / "test", ["green", "red"], 5, seed=3)
    return root


CASES = {
    "binary-gram": ("two", ["--epochs", "30", "--lr", "0.05"], dict(epochs=30, lr=0.05)),
    "binary-validation-l2": ("two", ["--epochs", "25", "--lr", "0.05", "--val-split", "0.3",
                                     "--l2", "0.5", "--early-stop", "5"],
                             dict(epochs=25, lr=0.05, val_split=0.3, l2=0.5, early_stop=5)),
    "multiclass-minibatch-standardize": (
        "three", ["--epochs", "12", "--batch-size", "5", "--seed", "3", "--standardize",
                  "--decay", "inverse", "--class-weight", "balanced"],
        dict(epochs=12, batch_size=5, seed=3, standardize=True, decay="inverse",
             class_weight="balanced")),
    "positive-size": ("two", ["--epochs", "10", "--size", "6x4", "--positive", "green"],
                      dict(epochs=10, size="6x4", positive="green")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_train_through_the_api_writes_the_model_the_cli_writes(folders, tmp_path, case):
    data, cli_options, api_options = CASES[case]
    size = [] if "--size" in cli_options else ["--size", "8x8"]
    run("train", folders / data, "-m", tmp_path / "cli.npz", "-q", *size, *cli_options)
    if not size == []:
        api_options = dict(api_options, size="8x8")
    model = logreg_cli.train(folders / data, **api_options)
    model.save(tmp_path / "api.npz")
    assert_same_model_file(tmp_path / "cli.npz", tmp_path / "api.npz")


def test_train_on_a_feature_file_and_on_its_arrays(folders, tmp_path):
    run("flatten", folders / "three", "-o", tmp_path / "f.npz", "--size", "8x8", "-q")
    api_features = logreg_cli.flatten(folders / "three", tmp_path / "g.npz", size="8x8")
    assert api_features.X.shape == (24, 192)
    assert arrays_of(tmp_path / "f.npz")["X"].tobytes() == arrays_of(tmp_path / "g.npz")["X"].tobytes()
    run("train", tmp_path / "f.npz", "-m", tmp_path / "cli.npz", "-q", "--epochs", "15")
    from_file = logreg_cli.train(tmp_path / "f.npz", epochs=15)
    from_file.save(tmp_path / "api.npz")
    assert_same_model_file(tmp_path / "cli.npz", tmp_path / "api.npz")
    arrays = arrays_of(tmp_path / "f.npz")
    from_arrays = logreg_cli.train((arrays["X"], arrays["y"], arrays["classes"].tolist()),
                                   epochs=15, size=(8, 8))
    assert from_arrays.weights.tobytes() == from_file.weights.tobytes()
    assert from_arrays.bias.tobytes() == from_file.bias.tobytes()
    floats = logreg_cli.train((arrays["X"] / np.float32(255), arrays["y"],
                               arrays["classes"].tolist()), epochs=15, size=(8, 8))
    assert floats.weights.tobytes() == from_file.weights.tobytes()


def test_predict_evaluate_explain_through_the_api_match_the_cli(folders, tmp_path):
    model_path = tmp_path / "m.npz"
    run("train", folders / "two", "-m", model_path, "-q", "--size", "8x8", "--epochs", "40",
        "--lr", "0.05")
    model = logreg_cli.load_model(model_path)
    assert model.history["epoch"] == list(range(40))
    images = sorted(str(p) for p in (folders / "test").rglob("*.png"))

    lines = run("predict", *images, "-m", model_path).stdout.splitlines()
    labels, proba = model.predict(images), model.predict_proba(images)
    assert proba.shape == (10, 2) and proba.dtype == np.float64
    assert lines == [f"{path}\t{label}\t{p.max():.6f}"
                     for path, label, p in zip(images, labels, proba)]
    # the other forms of images give the same probabilities, bit for bit
    pixels = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in images])
    assert model.predict_proba(pixels).tobytes() == proba.tobytes()
    assert model.predict_proba(pixels[3]).tobytes() == proba[3:4].tobytes()
    assert model.predict_proba([Image.open(p) for p in images]).tobytes() == proba.tobytes()
    assert model.predict(images[0]) == labels[:1]

    report = json.loads(run("evaluate", folders / "test", "-m", model_path,
                            "--format", "json", "--misclassified", "3").stdout)
    assert logreg_cli.evaluate(model, folders / "test", misclassified=3) == report
    assert logreg_cli.evaluate(model_path, folders / "test", misclassified=3) == report

    explained = json.loads(run("explain", images[2], "-m", model_path, "--format",
                               "json").stdout)
    assert logreg_cli.explain(model, images[2]).as_dict() == explained


def test_load_images_returns_rows_and_failures(folders, tmp_path):
    images = sorted((folders / "test").rglob("*.png"))[:3]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    X, failures = logreg_cli.load_images([images[0], tmp_path / "bad.png", images[1]], "8x8")
    assert X.dtype == np.uint8 and X.shape == (2, 192)
    assert X[1].tobytes() == np.asarray(Image.open(images[1]).convert("RGB")).tobytes()
    assert [failure.path for failure in failures] == [str(tmp_path / "bad.png")]
    assert isinstance(failures[0], logreg_cli.LogregError)


@pytest.mark.parametrize("options, flag", [
    (dict(lr=0), "--lr"), (dict(lr=float("nan")), "--lr"), (dict(epochs=-1), "--epochs"),
    (dict(decay="cosine"), "--decay"), (dict(size="8"), "--size"),
    (dict(size="100000x100000"), "--size"), (dict(val_split=1.0), "--val-split"),
    (dict(batch_size=0), "--batch-size"), (dict(early_stop=3), "--early-stop"),
    (dict(val_split=0.2, val="x"), "--val-split and --val"), (dict(colour="red"), "colour"),
])
def test_the_api_checks_options_once_with_one_line_errors(folders, options, flag):
    with pytest.raises(logreg_cli.OptionError) as caught:
        logreg_cli.train(folders / "two", **options)
    message = str(caught.value)
    assert flag in message and "\n" not in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, logreg_cli.LogregError)


def test_the_library_stops_on_a_callback_and_records_it(folders):
    seen = []
    model = logreg_cli.train(folders / "two", size="8x8", epochs=50,
                             on_epoch=lambda stats: seen.append(stats.epoch) or stats.epoch == 6)
    assert seen == list(range(7))
    assert model.metadata["epochs_run"] == 6
    assert (model.metadata["interrupted"], model.metadata["interrupted_by"]) == (True, "on_epoch")


def test_import_is_cheap_and_the_library_imports_no_click_or_tqdm(folders, tmp_path):
    probe = ("import sys, logreg_cli\n"
             "heavy = sorted(m for m in ('numpy', 'PIL', 'click', 'tqdm') if m in sys.modules)\n"
             "print(','.join(heavy))\n"
             f"m = logreg_cli.train({str(folders / 'two')!r}, size='8x8', epochs=3)\n"
             f"m.save({str(tmp_path / 'x.npz')!r})\n"
             f"logreg_cli.evaluate(logreg_cli.load_model({str(tmp_path / 'x.npz')!r}), "
             f"{str(folders / 'test')!r})\n"
             "print(','.join(m for m in ('click', 'tqdm') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == ["", ""]


def test_explain_reports_the_probabilities_predict_prints(folders, tmp_path):
    """One score function: explain's probabilities and predicted class are predict's, bit for
    bit (its z stays the exact float64 sum of the contributions plus b)."""
    model_path = tmp_path / "m.npz"
    run("train", folders / "three", "-m", model_path, "-q", "--size", "8x8", "--epochs", "30",
        "--lr", "0.05")
    images = sorted(str(p) for p in (folders / "three").rglob("*.png"))
    predicted = [json.loads(line) for line in
                 run("predict", *images, "-m", model_path, "--format", "jsonl").stdout.splitlines()]
    for path, prediction in zip(images, predicted):
        facts = json.loads(run("explain", path, "-m", model_path, "--format", "json").stdout)
        assert (facts["predicted"], facts["probabilities"]) == \
            (prediction["label"], prediction["probabilities"])
        assert facts["sum_of_contributions"] + facts["b"] == pytest.approx(facts["z"], abs=1e-9)


@pytest.mark.parametrize("make, options, message", [
    (lambda X, y: (X[:, :100], y, ["a", "b"]), {}, "X has 100 features but size 8x8 gives 192"),
    (lambda X, y: (X, y[:-1], ["a", "b"]), {}, "y m integer labels"),
    (lambda X, y: (X, y + 5, ["a", "b"]), {}, "y must index the 2 classes"),
    (lambda X, y: (X.astype(np.int32), y, ["a", "b"]), {}, "X must be uint8 pixels or float"),
    (lambda X, y: (X / np.float32(255), y, ["a", "b"]), {"standardize": True},
     "float features are taken as pixel / 255"),
    (lambda X, y: (np.where(X > 0, np.nan, 0.0), y, ["a", "b"]), {}, "NaN or infinity"),
    (lambda X, y: (X, y, ["a", "b"]), {"stream": True}, "--stream needs a feature file"),
    (lambda X, y: (X, np.zeros_like(y), ["a", "b"]), {}, "found only one class: 'a'"),
])
def test_training_arrays_refuses_what_it_cannot_use_in_one_line(make, options, message):
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (12, 192), dtype=np.uint8), np.arange(12) % 2
    with pytest.raises(logreg_cli.LogregError, match=message) as caught:
        logreg_cli.train(make(X, y), size=(8, 8), epochs=2, **options)
    assert "\n" not in str(caught.value)


def test_evaluate_takes_arrays_and_feature_files_alike(folders, tmp_path):
    model = logreg_cli.train(folders / "two", size="8x8", epochs=20, lr=0.05)
    logreg_cli.flatten(folders / "test", tmp_path / "test.npz", size="8x8")
    arrays = arrays_of(tmp_path / "test.npz")
    from_file = logreg_cli.evaluate(model, tmp_path / "test.npz")
    from_arrays = logreg_cli.evaluate(model, (arrays["X"], arrays["y"],
                                              arrays["classes"].tolist()))
    assert from_arrays == from_file == logreg_cli.evaluate(model, folders / "test")
    with pytest.raises(logreg_cli.DataError, match="'blue' is not one of the model's classes"):
        logreg_cli.evaluate(model, (arrays["X"], arrays["y"], ["blue", "red"]))


def test_inputs_of_the_wrong_type_are_one_line_errors(folders):
    model = logreg_cli.train(folders / "two", size="8x8", epochs=2)
    with pytest.raises(logreg_cli.DataError, match="data must be a path or a tuple"):
        logreg_cli.train(["not", "a", "path"], size="8x8")
    with pytest.raises(logreg_cli.LogregError, match="an image must be a path.*got int"):
        model.predict([3])
    with pytest.raises(logreg_cli.LogregError, match="H x W x 3 uint8, got float64"):
        model.predict(np.zeros((8, 8, 3)))
    with pytest.raises(logreg_cli.ImageError, match="no such file"):
        model.predict(str(folders / "missing.png"))
