"""logreg inspect (summary, JSON, weights PNG) and logreg explain (exact contributions)."""

import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli import core
from logreg_cli.cli import cli
from logreg_cli.explaining import explain, model_summary
from logreg_cli.images import load_image
from logreg_cli.model import Model, load_model, save_model
from logreg_cli.plots import TILE_MIN_SIDE, diverging_colours, signed_rgb
from tiny_models import train_model, write_class_folders


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    root = tmp_path_factory.mktemp("binary")
    paths = write_class_folders(root / "data", ["blue", "red"], 6)
    return train_model(root / "data", root / "model.npz", epochs=25), paths


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    paths = write_class_folders(root / "data", ["blue", "green", "red"], 4, seed=1)
    return train_model(root / "data", root / "model.npz", epochs=25), paths


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [*map(str, args)], input=input)


# ---------------------------------------------------------------- inspect


def test_inspect_json_reports_training(binary):
    model, _ = binary
    result = invoke("inspect", model, "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    summary = json.loads(result.stdout)
    assert summary["classes"] == ["blue", "red"]
    assert summary["positive_class"] == "red"
    assert (summary["size"], summary["features"], summary["scaling"]) == ("8x8", 192, "unit")
    assert summary["format_version"] == 1
    assert summary["epochs_run"] == 25
    assert summary["options"]["epochs"] == 25
    history = load_model(model).metadata["history"]["cost"]
    # the cost of the weights saved, after the last update (history[-1] is before it)
    assert (summary["saved_epoch"], summary["final_cost"]) == \
        (25, load_model(model).metadata["final_cost"])
    assert summary["final_cost"] < history[-1]
    assert summary["best_cost"] == {"value": min(history), "epoch": int(np.argmin(history))}
    assert summary["validation"] is None


def test_inspect_text_has_one_aligned_line_per_fact(binary):
    model, _ = binary
    lines = invoke("inspect", model).stdout.splitlines()
    facts = [re.match(r"^(\S+(?: \S+)*)  +(\S.*)$", line) for line in lines]
    assert all(facts), lines
    assert len({fact.start(2) for fact in facts}) == 1  # values start in one column
    table = {fact.group(1): fact.group(2) for fact in facts}
    assert table["classes"] == "blue, red"
    assert table["positive_class"] == "red"
    assert table["size"] == "8x8"
    assert table["option epochs"] == "25"
    assert table["best_cost"].endswith("(epoch 24)")


def test_inspect_shows_validation_figures_when_recorded(tmp_path):
    weights = np.zeros((3, 1), dtype=np.float32)
    metadata = {"history": {"epoch": [0, 1, 2], "cost": [0.7, 0.5, 0.6],
                            "val_cost": [0.8, 0.55, 0.65], "val_accuracy": [0.5, 0.75, 0.7]},
                "validation": {"kept_epoch": 1}}  # as `train` writes it
    save_model(Model(weights, np.zeros(1, np.float32), ["a", "b"], (1, 1), metadata=metadata),
               tmp_path / "m.npz")
    summary = model_summary(load_model(tmp_path / "m.npz"), tmp_path / "m.npz")
    assert summary["final_cost"] == 0.6
    assert summary["best_cost"] == {"value": 0.5, "epoch": 1}
    assert summary["validation"] == {"kept_epoch": 1, "final_val_cost": 0.65,
                                     "best_val_cost": {"value": 0.55, "epoch": 1},
                                     "final_val_accuracy": 0.7}
    text = invoke("inspect", tmp_path / "m.npz").stdout
    assert "validation best_val_cost" in text and "0.55 (epoch 1)" in text


@pytest.mark.parametrize("fixture, tiles", [("binary", 1), ("multiclass", 3)])
def test_weights_png_has_one_tile_per_class_and_the_stated_size(fixture, tiles, request,
                                                                  tmp_path):
    model, _ = request.getfixturevalue(fixture)
    png = tmp_path / "weights.png"
    result = invoke("inspect", model, "--weights-png", png)
    assert result.exit_code == 0
    with Image.open(png) as picture:
        picture.load()
    stated = result.stderr.strip()
    assert stated.startswith(f"wrote {png} ({picture.width}x{picture.height} px, {tiles} tile")
    assert picture.format == "PNG" and picture.mode == "RGB"
    # Two rows of TILE_MIN_SIDE-pixel tiles (8x8 enlarged TILE_MIN_SIDE / 8 times) fit.
    assert picture.height > 2 * TILE_MIN_SIDE
    assert picture.width >= max(tiles * TILE_MIN_SIDE, 512)
    step = TILE_MIN_SIDE // 8
    # The top-left tile is the first class's weights drawn with grey = 0.
    loaded = load_model(model)
    w = loaded.weights[:, 0].reshape(8, 8, 3)
    expected = signed_rgb(w.astype(np.float64), float(np.abs(loaded.weights).max()))
    tile = np.asarray(picture)[8:8 + TILE_MIN_SIDE, :, :]
    left = int(np.flatnonzero((tile != 255).any(axis=(0, 2)))[0])
    drawn = tile[::step, left:left + TILE_MIN_SIDE:step]
    assert np.array_equal(drawn, expected)


def test_binary_weights_png_says_it_shows_the_positive_class(binary, tmp_path):
    model, _ = binary
    result = invoke("inspect", model, "--weights-png", tmp_path / "w.png")
    assert "1 tile: the positive class's weights" in result.stderr


def test_diverging_colours_are_white_at_zero_and_saturate():
    colours = diverging_colours(np.array([-2.0, -1.0, 0.0, 0.5, 1.0]), 1.0)
    assert colours[2].tolist() == [255, 255, 255]
    assert colours[0].tolist() == colours[1].tolist()
    assert colours[4][0] > colours[4][2] and colours[1][2] > colours[1][0]
    assert 255 > colours[3][1] > colours[4][1]


# ---------------------------------------------------------------- explain


def test_contributions_plus_b_are_z_exactly(multiclass):
    model_path, paths = multiclass
    model = load_model(model_path)
    row = load_image(paths[0], model.size)
    expected = core.scores(model.features(row[None, :]), model.weights, model.bias)[0]
    for name in model.classes:
        result = explain(model, row, paths[0], name)
        column = model.classes.index(name)
        assert result.contributions.shape == (8, 8)
        assert result.contributions.sum() + result.bias == pytest.approx(result.z, abs=1e-9)
        assert result.z == pytest.approx(float(expected[column]), abs=1e-5)
    by_hand = (model.weights[:, 0] * (row / 255.0)).reshape(8, 8, 3).sum(axis=2)
    assert np.allclose(explain(model, row, "x", "blue").contributions, by_hand, atol=1e-6)


def test_explain_binary_prints_z_b_and_the_probability_predict_gives(binary):
    model, paths = binary
    result = invoke("explain", "-m", model, paths[-1], "--format", "json")
    assert (result.exit_code, result.stderr) == (0, "")
    facts = json.loads(result.stdout)
    assert facts["class"] == "red" and facts["binary"] is True
    assert facts["sum_of_contributions"] + facts["b"] == pytest.approx(facts["z"], abs=1e-9)
    assert facts["probability"] == pytest.approx(1 / (1 + math.exp(-facts["z"])))
    predicted = invoke("predict", "-m", model, "--format", "jsonl", paths[-1]).stdout
    assert facts["probability"] == pytest.approx(
        json.loads(predicted)["probabilities"]["red"], abs=1e-6)
    text = invoke("explain", "-m", model, paths[-1]).stdout.splitlines()
    assert text[3] == f"z            {facts['z']:.6f}"
    assert text[4] == f"b            {facts['b']:.6f}"
    assert text[6] == f"probability  {facts['probability']:.6f}"


def test_explain_heat_map_png_has_the_stated_size(binary, tmp_path):
    model, paths = binary
    png = tmp_path / "heat.png"
    result = invoke("explain", "-m", model, paths[0], "-o", png)
    assert result.exit_code == 0
    with Image.open(png) as picture:
        picture.load()
    assert result.stderr == f"wrote {png} ({picture.width}x{picture.height} px)\n"
    assert picture.width >= 3 * TILE_MIN_SIDE and picture.height > TILE_MIN_SIDE
    # The first panel is the image as the model saw it, enlarged TILE_MIN_SIDE / 8 times.
    seen = load_image(paths[0], (8, 8)).reshape(8, 8, 3)
    step = TILE_MIN_SIDE // 8
    panel = np.asarray(picture)[8:8 + TILE_MIN_SIDE:step, 8:8 + TILE_MIN_SIDE:step]
    assert np.array_equal(panel, seen)


def test_explain_reads_image_bytes_from_stdin(binary):
    model, paths = binary
    from_file = json.loads(invoke("explain", "-m", model, paths[0], "--format", "json").stdout)
    piped = invoke("explain", "-m", model, "-", "--format", "json", input=paths[0].read_bytes())
    facts = json.loads(piped.stdout)
    assert facts["image"] == "-"
    assert facts["z"] == from_file["z"]


def test_explain_unknown_class_is_a_usage_error(multiclass):
    model, paths = multiclass
    result = invoke("explain", "-m", model, "--class", "purple", paths[0])
    assert result.exit_code == 2
    assert result.stderr == ("Error: --class 'purple' is not one of the model's classes "
                             "(blue, green, red)\n")


def test_explain_help_says_it_is_exact():
    text = " ".join(invoke("explain", "--help").stdout.split())
    assert "this explanation is exact" in text
    assert "the contributions plus b add up to z" in text
