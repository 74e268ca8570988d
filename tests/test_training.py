"""`logreg train` as a user steers it: schedules, determinism, validation, early stopping,
class weights, --positive, --standardize, --init, history, plots and the summary."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli import core, training
from logreg_cli.features import choose_streaming
from logreg_cli.cli import cli
from logreg_cli.dataset import Dataset, save_features
from logreg_cli.model import load_model

# ---------------------------------------------------------------- helpers


def make_images(root, counts, size=(4, 4), seed=0, start=0):
    """Class folders of tiny PNGs whose mean colour depends on the class (learnable)."""
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(start, start + count):
            base = np.array([60, 120, 180])[[label % 3, (label + 1) % 3, (label + 2) % 3]]
            pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / f"{index:04d}.png")
    return root


def make_features(path, X, y, classes, size, paths=None):
    paths = paths or [f"data/{classes[label]}/{i:05d}.png" for i, label in enumerate(y)]
    save_features(Dataset(X, np.asarray(y), list(classes), paths, size), path,
                  {"source": "data"})
    return path


def run(args, **kwargs):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)
    return result


def train_ok(*args):
    result = run(["train", *args])
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture
def folder(tmp_path):
    return make_images(tmp_path / "images", {"cat": 12, "dog": 12})


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule, rate, steps, epoch, expected", [
    ("inverse", 1.0, 1, 2, 0.5 / 3),          # the course's 0.1667
    ("inverse", 0.3, 100, 100, 0.5 / 1.3),    # the course's 0.3846
    ("inverse", 0.3, 100, 99, 0.5),           # staircase: still on the first step
    ("exponential", 0.95, 1, 3, 0.5 * 0.95**3),
    ("exponential", 0.5, 4, 9, 0.5 * 0.5**2),
    ("sqrt", 1.0, 1, 3, 0.5 / 2.0),
    ("sqrt", 0.8, 2, 7, 0.5 * 0.8 / 2.0),
    ("linear", 0.3, 7, 25, 0.5 * (1 - 25 / 100)),
    ("none", 0.3, 7, 25, 0.5),
])
def test_schedules_follow_the_course_formulas(schedule, rate, steps, epoch, expected):
    lr = core.learning_rate(schedule, 0.5, epoch, 100, rate, steps)
    assert lr == pytest.approx(expected, rel=1e-12)


def test_course_values_to_four_places():
    assert round(core.learning_rate("inverse", 0.5, 2, 10, 1.0, 1), 4) == 0.1667
    assert round(core.learning_rate("inverse", 0.5, 100, 1000, 0.3, 100), 4) == 0.3846


def test_history_shows_the_learning_rate_used(folder, tmp_path):
    history = tmp_path / "h.csv"
    train_ok(folder, "--size", "4x4", "--epochs", "6", "--lr", "0.2", "--decay", "inverse",
             "--decay-rate", "0.5", "--decay-steps", "2", "--history", history,
             "-m", tmp_path / "m.npz")
    rows = list(csv.DictReader(history.read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert [float(r["lr"]) for r in rows] == pytest.approx(
        [0.2 / (1 + 0.5 * (t // 2)) for t in range(6)], rel=1e-12)
    costs = [float(r["cost"]) for r in rows]
    assert costs[0] == pytest.approx(np.log(2)) and costs[-1] < costs[0]


# ---------------------------------------------------------------- determinism


def weights_of(path):
    model = load_model(path)
    return model.weights.tobytes() + model.bias.tobytes()


def test_same_seed_gives_the_same_weights_bit_for_bit_across_jobs(folder, tmp_path,
                                                                  monkeypatch):
    # 24 images are too few for decoding processes; let --jobs 2 use them all the same
    monkeypatch.setattr("logreg_cli.images.PROCESS_MIN_IMAGES", 1)
    common = [folder, "--size", "4x4", "--epochs", "15", "--lr", "0.05", "--batch-size", "5"]
    train_ok(*common, "--seed", "3", "--jobs", "1", "-m", tmp_path / "a.npz")
    train_ok(*common, "--seed", "3", "--jobs", "2", "-m", tmp_path / "b.npz")
    train_ok(*common, "--seed", "4", "--jobs", "2", "-m", tmp_path / "c.npz")
    assert weights_of(tmp_path / "a.npz") == weights_of(tmp_path / "b.npz")
    assert weights_of(tmp_path / "a.npz") != weights_of(tmp_path / "c.npz")


# ---------------------------------------------------------------- validation split


def test_split_is_stable_when_images_are_added(tmp_path):
    root = make_images(tmp_path / "d", {"a": 30, "b": 30})
    from logreg_cli.dataset import list_folder

    paths, y, _, _ = list_folder(root)
    side = dict(zip(map(str, paths), training.validation_mask(paths, y, 0.3, root)))
    make_images(root, {"a": 25, "b": 10}, seed=1, start=30)
    more_paths, more_y, _, _ = list_folder(root)
    more_side = dict(zip(map(str, more_paths),
                         training.validation_mask(more_paths, more_y, 0.3, root)))
    assert len(more_side) == 95
    assert all(more_side[p] == s for p, s in side.items())
    # the same side whatever the folder is called: only the relative path counts
    moved = training.validation_mask([root.parent / "elsewhere" / p.relative_to(root) for p in paths],
                                     y, 0.3, root.parent / "elsewhere")
    assert list(moved) == list(side.values())


def test_split_is_stratified_per_class():
    paths = [f"{name}/{i:05d}.png" for name, count in (("a", 2000), ("b", 400)) for i in range(count)]
    y = np.array([0] * 2000 + [1] * 400)
    mask = training.validation_mask(paths, y, 0.2, "")
    assert mask[y == 0].mean() == pytest.approx(0.2, abs=0.03)
    assert mask[y == 1].mean() == pytest.approx(0.2, abs=0.05)


def test_every_class_keeps_images_on_both_sides():
    paths = ["a/1.png", "a/2.png", "b/1.png", "b/2.png", "b/3.png"]
    y = np.array([0, 0, 1, 1, 1])
    for fraction in (0.01, 0.99):
        mask = training.validation_mask(paths, y, fraction, "")
        for label in (0, 1):
            assert 0 < mask[y == label].sum() < (y == label).sum()


def test_val_split_history_and_summary(folder, tmp_path):
    history, model_path = tmp_path / "h.csv", tmp_path / "m.npz"
    result = train_ok(folder, "--size", "4x4", "--epochs", "8", "--lr", "0.05",
                      "--val-split", "0.25", "--history", history, "-m", model_path)
    rows = list(csv.DictReader(history.read_text().splitlines()))
    assert list(rows[0]) == ["epoch", "lr", "cost", "val_cost", "val_accuracy"]
    assert len(rows) == 8 and all(0 <= float(r["val_accuracy"]) <= 1 for r in rows)
    meta = load_model(model_path).metadata
    assert meta["data"]["images"] + meta["validation"]["images"] == 24
    best = min(range(8), key=lambda t: float(rows[t]["val_cost"]))
    assert meta["validation"]["kept_epoch"] == best
    assert result.stdout == ""
    for text in ("trained 8 epochs", "final cost", "train accuracy", "validation accuracy",
                 f"kept the weights of epoch {best}", f"model written to {model_path}", " s "):
        assert text in result.stderr


def test_val_data_folder(folder, tmp_path):
    val = make_images(tmp_path / "val", {"cat": 3, "dog": 4}, seed=5)
    model_path = tmp_path / "m.npz"
    result = train_ok(folder, "--size", "4x4", "--epochs", "5", "--val", val, "-m", model_path)
    assert "validation accuracy" in result.stderr
    assert load_model(model_path).metadata["validation"]["images"] == 7


def test_val_with_an_unknown_class_is_a_clear_error(folder, tmp_path):
    val = make_images(tmp_path / "val", {"cat": 2, "horse": 2})
    result = run(["train", folder, "--size", "4x4", "--epochs", "2", "--val", val,
                  "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2 and "horse" in result.stderr and "Traceback" not in result.stderr


def test_early_stop_needs_validation(folder, tmp_path):
    result = run(["train", folder, "--early-stop", "3", "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2
    assert "--early-stop needs validation" in result.stderr
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------- early stopping


def overfitting_set(seed=0):
    """One informative feature among 400 and only 20 training images: the validation cost
    falls while the signal is learnt, then rises as the noise features are fitted."""
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(60, 400)) / 20).astype(np.float32)
    X[:, 0] *= 20
    y = (X[:, 0] + rng.normal(size=60) * 0.7 > 0).astype(np.int64)
    return X[:20], y[:20], X[20:], y[20:]


@pytest.mark.parametrize("method", ["plain", "gram"])
def test_early_stop_keeps_the_best_epoch(method):
    X, y, X_val, y_val = overfitting_set()
    config = core.TrainConfig(lr=2.0, epochs=2000, early_stop=5, method=method)
    fit = core.train(X, y, 2, config, validation=core.Validation(X_val, y_val))
    val_costs = [h.val_cost for h in fit.history]
    assert fit.early_stopped and 10 < fit.best_epoch and fit.stopped_at == fit.best_epoch + 5
    assert fit.history[-1].cost < fit.history[fit.best_epoch].cost  # training kept improving
    assert fit.best_epoch == int(np.argmin(val_costs))
    # the kept weights are those after best_epoch updates of the same descent
    plain = core.train(X, y, 2, core.TrainConfig(lr=2.0, epochs=fit.best_epoch, method=method))
    np.testing.assert_array_equal(fit.weights, plain.weights)
    np.testing.assert_array_equal(fit.bias, plain.bias)


def test_gram_and_plain_agree_with_validation():
    X, y, X_val, y_val = overfitting_set(1)
    runs = [core.train(X, y, 2, core.TrainConfig(lr=0.3, epochs=40, l2=0.7, method=m),
                       validation=core.Validation(X_val, y_val)) for m in ("plain", "gram")]
    np.testing.assert_allclose([h.val_cost for h in runs[0].history],
                               [h.val_cost for h in runs[1].history], rtol=1e-6)
    assert runs[0].best_epoch == runs[1].best_epoch


def test_early_stop_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 48), dtype=np.uint8)
    y = (X[:, 0].astype(int) - 128 + rng.normal(size=60) * 60 > 0).astype(np.int64)
    features = make_features(tmp_path / "f.npz", X, y, ["a", "b"], (4, 4))
    model_path = tmp_path / "m.npz"
    result = train_ok(features, "--epochs", "3000", "--lr", "0.5", "--val-split", "0.5",
                      "--early-stop", "4", "-m", model_path)
    meta = load_model(model_path).metadata
    kept = meta["validation"]["kept_epoch"]
    assert meta["validation"]["early_stopped"] and meta["epochs_run"] == kept + 4 < 3000
    assert kept > 0
    assert "early stop" in result.stderr
    assert f"kept the weights of epoch {kept}" in result.stderr


# ---------------------------------------------------------------- class weights, positive


def test_balanced_weights_equal_duplicating_the_minority(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    y = np.array([0] * 10 + [1] * 30)
    weighted = make_features(tmp_path / "w.npz", X, y, ["few", "many"], (4, 4))
    X_dup = np.vstack([X[:10]] * 3 + [X[10:]])
    duplicated = make_features(tmp_path / "d.npz", X_dup, np.array([0] * 30 + [1] * 30),
                               ["few", "many"], (4, 4))
    common = ["--epochs", "30", "--lr", "0.1"]
    train_ok(weighted, *common, "--class-weight", "balanced", "-m", tmp_path / "a.npz")
    train_ok(duplicated, *common, "-m", tmp_path / "b.npz")
    train_ok(weighted, *common, "-m", tmp_path / "c.npz")
    a, b, c = (load_model(tmp_path / f"{name}.npz") for name in "abc")
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-4, atol=1e-6)
    assert not np.allclose(a.weights, c.weights, rtol=1e-4, atol=1e-6)
    assert a.metadata["data"]["class_weights"] == pytest.approx([2.0, 2 / 3])


def test_positive_class_comes_last(folder, tmp_path):
    train_ok(folder, "--size", "4x4", "--epochs", "5", "--positive", "cat", "-m", tmp_path / "p.npz")
    train_ok(folder, "--size", "4x4", "--epochs", "5", "-m", tmp_path / "d.npz")
    positive, default = load_model(tmp_path / "p.npz"), load_model(tmp_path / "d.npz")
    assert positive.classes == ["dog", "cat"] and default.classes == ["cat", "dog"]
    # the same classifier seen from the other side: w and b change sign
    np.testing.assert_allclose(positive.weights, -default.weights, atol=1e-6)
    result = run(["predict", "--format", "jsonl", "-m", tmp_path / "p.npz",
                  str(next((folder / "cat").iterdir()))])
    line = json.loads(result.stdout)
    other = run(["predict", "--format", "jsonl", "-m", tmp_path / "d.npz",
                 str(next((folder / "cat").iterdir()))])
    assert line["probabilities"]["cat"] == pytest.approx(
        json.loads(other.stdout)["probabilities"]["cat"], abs=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["--positive", "horse"], "'horse' is not a class"),
])
def test_positive_errors(folder, tmp_path, extra, message):
    result = run(["train", folder, "--size", "4x4", "--epochs", "1", *extra, "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2 and message in result.stderr


def test_positive_needs_two_classes(tmp_path):
    three = make_images(tmp_path / "three", {"a": 3, "b": 3, "c": 3})
    result = run(["train", three, "--size", "4x4", "--epochs", "1", "--positive", "a",
                  "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2 and "--positive applies to two classes" in result.stderr


# ---------------------------------------------------------------- standardize


def test_standardize_stores_mean_and_scale_and_survives_constant_features(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (30, 48), dtype=np.uint8)
    X[:, :6] = 77  # features that never vary
    y = rng.integers(0, 3, 30)
    features = make_features(tmp_path / "f.npz", X, y, ["a", "b", "c"], (4, 4))
    train_ok(features, "--epochs", "20", "--lr", "0.1", "--standardize", "-m", tmp_path / "m.npz")
    model = load_model(tmp_path / "m.npz")
    assert model.scaling == "standardize" and np.isfinite(model.weights).all()
    np.testing.assert_allclose(model.feature_mean, X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.feature_scale[6:], X[:, 6:].std(axis=0), rtol=1e-4)
    assert (model.feature_scale[:6] == 1).all()
    features_scaled = model.features(X)
    assert np.abs(features_scaled.mean(axis=0)).max() < 1e-4
    assert np.isfinite(model.predict_proba(X)).all()


def test_standardize_uses_only_the_training_side(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (60, 48), dtype=np.uint8)
    y = rng.integers(0, 2, 60)
    features = make_features(tmp_path / "f.npz", X, y, ["a", "b"], (4, 4))
    train_ok(features, "--epochs", "2", "--standardize", "--val-split", "0.3", "-m", tmp_path / "m.npz")
    model = load_model(tmp_path / "m.npz")
    mask = training.validation_mask([f"data/{'ab'[l]}/{i:05d}.png" for i, l in enumerate(y)], y, 0.3, "data")
    np.testing.assert_allclose(model.feature_mean, X[~mask].mean(axis=0), rtol=1e-5)


# ---------------------------------------------------------------- --init


def test_resume_in_the_core_is_exact():
    rng = np.random.default_rng(3)
    X = rng.random((50, 30), dtype=np.float32)
    y = rng.integers(0, 3, 50)
    config = core.TrainConfig(lr=0.3, epochs=20, l2=0.1, method="plain")
    whole = core.train(X, y, 3, config)
    first = core.train(X, y, 3, core.TrainConfig(lr=0.3, epochs=10, l2=0.1, method="plain"))
    second = core.train(X, y, 3, core.TrainConfig(lr=0.3, epochs=10, l2=0.1, method="plain"),
                        init=(first.weights64, first.bias64))
    assert [h.cost for h in first.history + second.history] == [h.cost for h in whole.history]
    np.testing.assert_array_equal(second.weights, whole.weights)


def test_resume_from_a_model_file_equals_an_uninterrupted_run(folder, tmp_path):
    common = [folder, "--size", "4x4", "--lr", "0.05"]
    train_ok(*common, "--epochs", "20", "--history", tmp_path / "whole.csv", "-m", tmp_path / "whole.npz")
    train_ok(*common, "--epochs", "10", "--history", tmp_path / "a.csv", "-m", tmp_path / "half.npz")
    train_ok(folder, "--lr", "0.05", "--epochs", "10", "--init", tmp_path / "half.npz",
             "--history", tmp_path / "b.csv", "-m", tmp_path / "resumed.npz")
    costs = lambda name: [float(r["cost"]) for r in csv.DictReader((tmp_path / name).read_text().splitlines())]
    # the model file stores float32 weights: the only difference is that rounding
    np.testing.assert_allclose(costs("a.csv") + costs("b.csv"), costs("whole.csv"), rtol=1e-6)
    whole, resumed = load_model(tmp_path / "whole.npz"), load_model(tmp_path / "resumed.npz")
    np.testing.assert_allclose(resumed.weights, whole.weights, rtol=1e-5, atol=1e-7)
    assert resumed.size == (4, 4) and resumed.metadata["options"]["init"].endswith("half.npz")


def test_init_and_model_may_name_one_file_to_continue_it_in_place(folder, tmp_path):
    """--init read whole before training; -m the same file replaces it with the continued model."""
    common = [folder, "--size", "4x4", "--lr", "0.05", "--epochs", "10"]
    train_ok(*common, "-m", tmp_path / "m.npz")
    train_ok(*common, "-m", tmp_path / "copy.npz")
    train_ok(folder, "--lr", "0.05", "--epochs", "10", "--init", tmp_path / "copy.npz",
             "-m", tmp_path / "resumed.npz")
    train_ok(folder, "--lr", "0.05", "--epochs", "10", "--init", tmp_path / "m.npz",
             "-m", tmp_path / "m.npz")
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").weights,
                                  load_model(tmp_path / "resumed.npz").weights)


def test_init_with_other_classes_or_size_is_a_clear_error(folder, tmp_path):
    train_ok(folder, "--size", "4x4", "--epochs", "2", "-m", tmp_path / "m.npz")
    other = make_images(tmp_path / "other", {"cat": 2, "emu": 2})
    result = run(["train", other, "--size", "4x4", "--init", tmp_path / "m.npz", "-m", tmp_path / "n.npz"])
    assert result.exit_code == 2 and "classes cat, dog" in result.stderr and "emu" in result.stderr
    result = run(["train", folder, "--size", "8x8", "--init", tmp_path / "m.npz", "-m", tmp_path / "n.npz"])
    assert result.exit_code == 2 and "--size 4x4" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "n.npz").exists()


# ---------------------------------------------------------------- plots


def test_plot_is_a_png_of_the_stated_size(folder, tmp_path):
    plot = tmp_path / "curve.png"
    train_ok(folder, "--size", "4x4", "--epochs", "12", "--val-split", "0.3", "--plot", plot,
             "-m", tmp_path / "m.npz")
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size == (800, 500)
        pixels = np.asarray(image.convert("RGB"))
    colours = {tuple(int(v) for v in Image.new("RGB", (1, 1), c).getpixel((0, 0)))
               for c in ("#1f77b4", "#d62728")}
    for colour in colours:  # both curves (cost, validation cost) are drawn
        assert (pixels == colour).all(axis=2).sum() > 50


def test_compare_lr_writes_one_model_per_rate_and_one_plot(folder, tmp_path):
    plot = tmp_path / "rates.png"
    result = train_ok(folder, "--size", "4x4", "--epochs", "10", "--compare-lr", "0.1,0.01",
                      "--plot", plot, "-m", tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    fast, slow = load_model(tmp_path / "m.lr0.1.npz"), load_model(tmp_path / "m.lr0.01.npz")
    assert fast.metadata["options"]["lr"] == 0.1 and slow.metadata["options"]["lr"] == 0.01
    assert fast.metadata["final_cost"] < slow.metadata["final_cost"]
    with Image.open(plot) as image:
        assert image.size == (800, 500)
    assert f"plot written to {plot}" in result.stderr


def test_nice_ticks_are_round_and_cover_the_range():
    from logreg_cli.plots import nice_ticks

    assert nice_ticks(0, 2000) == [0, 500, 1000, 1500, 2000]
    ticks = nice_ticks(0.137, 0.693)
    assert ticks[0] >= 0.137 and ticks[-1] <= 0.693 and len(ticks) >= 4
    assert all(round(t / 0.1, 9) == round(t / 0.1) for t in ticks)


# ---------------------------------------------------------------- memory choice


def test_memory_choice_says_why():
    assert choose_streaming(1000, 12288, available=8 << 30)[0] is False
    streamed, reason = choose_streaming(100_000, 12288, available=1 << 30)
    assert streamed and "exceeds" in reason and "1.1 GB as uint8" in reason
    assert choose_streaming(10, 10, forced=True) == (True, "X is 100 B as uint8; --stream given")


def test_stream_needs_a_feature_file(folder, tmp_path):
    result = run(["train", folder, "--stream", "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2 and "logreg flatten" in result.stderr


def test_size_cannot_change_a_feature_file(tmp_path):
    X = np.zeros((4, 48), dtype=np.uint8)
    features = make_features(tmp_path / "f.npz", X, [0, 1, 0, 1], ["a", "b"], (4, 4))
    result = run(["train", features, "--size", "8x8", "-m", tmp_path / "m.npz"])
    assert result.exit_code == 2 and "holds 4x4 images" in result.stderr


def test_a_folder_and_its_feature_file_train_the_same_model(folder, tmp_path):
    flattened = run(["flatten", folder, "--size", "4x4", "-o", tmp_path / "f.npz"])
    assert flattened.exit_code == 0, flattened.stderr
    common = ["--epochs", "10", "--lr", "0.05", "--val-split", "0.3"]
    train_ok(folder, "--size", "4x4", *common, "-m", tmp_path / "a.npz")
    train_ok(tmp_path / "f.npz", *common, "-m", tmp_path / "b.npz")
    a, b = load_model(tmp_path / "a.npz"), load_model(tmp_path / "b.npz")
    assert a.metadata["validation"]["images"] == b.metadata["validation"]["images"]
    assert a.weights.tobytes() == b.weights.tobytes()
    assert a.metadata["history"] == b.metadata["history"]
