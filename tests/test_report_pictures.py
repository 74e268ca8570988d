"""Pictures a person can read: weights and heat maps at least 512 px wide with readable text
and a colour bar of their scale; learning curves that mark the kept epoch and stay readable
when the cost zigzags."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.explaining import explain
from logreg_cli.images import load_image
from logreg_cli.model import load_model
from logreg_cli.plots import (CURVE_COLOURS, CURVE_SIZE, _MARGIN, diverging_colours,
                              learning_curve_image)
from tiny_models import write_class_folders

MARK = (90, 90, 90)  # the dashed kept-epoch line
BAR_WIDTH = 320  # px, the colour bar's strip
PALE_BLUE = (177, 207, 229)  # CURVE_COLOURS[0] mixed 65 % with white


def invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A binary 8x8 model trained with validation, its learning curve PNG and its images."""
    root = tmp_path_factory.mktemp("pictures")
    paths = write_class_folders(root / "data", ["blue", "red"], 10, seed=5)
    result = invoke("train", root / "data", "-m", root / "m.npz", "--size", "8x8", "--epochs",
                    60, "--lr", 0.05, "--val-split", 0.3, "-q", "--plot", root / "curve.png")
    assert result.exit_code == 0, result.output
    return root / "m.npz", root / "curve.png", paths


def opened(path):
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


def has_colour_bar(pixels, limit):
    """True when some row holds the diverging scale from -limit to +limit, BAR_WIDTH wide."""
    bar = diverging_colours(np.linspace(-limit, limit, BAR_WIDTH), limit)
    blue = np.flatnonzero((pixels[:, :, :] == bar[0]).all(axis=2).any(axis=1))
    for row in blue:
        for left in np.flatnonzero((pixels[row] == bar[0]).all(axis=1)):
            if np.array_equal(pixels[row, left:left + BAR_WIDTH], bar):
                return True
    return False


def tallest_text(pixels, top, bottom):
    """Rows from top to bottom that hold dark ink in one run: the height of a text line."""
    inked = (pixels[top:bottom] < 90).all(axis=2).any(axis=1)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], inked, [0]]))))[::2]
    return int(runs.max()) if runs.size else 0


def test_weights_png_is_wide_with_readable_text_and_a_colour_bar(trained, tmp_path):
    model_path, _, _ = trained
    png = tmp_path / "w.png"
    assert invoke("inspect", model_path, "--weights-png", png).exit_code == 0
    pixels = opened(png)
    assert pixels.shape[1] >= 512
    model = load_model(model_path)
    sums = model.weights[:, 0].reshape(8, 8, 3).astype(np.float64).sum(axis=2)
    assert has_colour_bar(pixels, float(np.abs(sums).max()))
    tiles_bottom = 8 + 2 * 256 + 8
    assert tallest_text(pixels, tiles_bottom, tiles_bottom + 30) >= 12  # the class caption


def test_explain_png_is_wide_and_has_the_colour_bar_of_its_contributions(trained, tmp_path):
    model_path, _, paths = trained
    png = tmp_path / "e.png"
    result = invoke("explain", "-m", model_path, paths[0], "-o", png)
    assert result.exit_code == 0
    pixels = opened(png)
    assert pixels.shape[1] >= 512
    model = load_model(model_path)
    contributions = explain(model, load_image(paths[0], (8, 8)), paths[0]).contributions
    assert has_colour_bar(pixels, float(np.abs(contributions).max()))
    assert tallest_text(pixels, 8 + 256, 8 + 256 + 30) >= 12  # the panel captions


def epoch_column(epoch, epochs):
    """The x pixel of an epoch on an 800-px curve whose x axis runs over epochs."""
    left, right = _MARGIN["left"], CURVE_SIZE[0] - _MARGIN["right"]
    return round(left + (epoch - epochs[0]) / (epochs[-1] - epochs[0]) * (right - left))


def test_train_plot_marks_the_kept_epoch(trained):
    model_path, curve, _ = trained
    model = load_model(model_path)
    kept = model.metadata["validation"]["kept_epoch"]
    epochs = model.history["epoch"]
    pixels = opened(curve)
    marked = [x for x in range(pixels.shape[1]) if (pixels[:, x] == MARK).all(axis=1).sum() > 100]
    assert marked and all(abs(x - epoch_column(kept, epochs)) <= 1 for x in marked)


@pytest.mark.parametrize("kept", [10, 150])
def test_curve_marks_any_kept_epoch_where_it_is(kept):
    epochs = list(range(200))
    image = learning_curve_image([("cost", epochs, np.linspace(1, 0.2, 200))],
                                 marks=[(kept, f"kept: epoch {kept}")])
    pixels = np.asarray(image)
    column = epoch_column(kept, epochs)
    assert (pixels[:, column] == MARK).all(axis=1).sum() > 100
    assert (pixels[:, column + 30] == MARK).all(axis=1).sum() < 20  # the text, not a line


def test_a_zigzagging_cost_is_drawn_pale_under_its_trend():
    epochs = np.arange(300)
    trend = np.linspace(2.0, 1.0, 300)
    cost = trend + np.where(epochs % 2 == 0, 0.8, -0.8)  # a too-high rate: up, down, up...
    pixels = np.asarray(learning_curve_image([("cost", epochs, cost)]))
    full = (pixels == np.array([31, 119, 180])).all(axis=2)  # CURVE_COLOURS[0] at full strength
    assert CURVE_COLOURS[0] == "#1f77b4"
    top, bottom = _MARGIN["top"], CURVE_SIZE[1] - _MARGIN["bottom"]
    left = _MARGIN["left"] + 10
    plot = full[top:bottom, left:left + 200]  # left of the legend
    # full colour only along the trend, a line a few pixels thick, not over the whole band of
    # the zigzag, which stays readable behind it in a pale tint
    spans = [np.ptp(np.flatnonzero(column)) for column in plot.T if column.any()]
    assert len(spans) > 150 and np.median(spans) <= 6
    y_low, y_high = cost.min() - 0.05 * np.ptp(cost), cost.max() + 0.05 * np.ptp(cost)
    x_low, x_high = _MARGIN["left"], CURVE_SIZE[0] - _MARGIN["right"]
    for x in (20, 180):  # the trend is where the cost's middle is
        epoch = (left + x - x_low) / (x_high - x_low) * 299
        expected = (y_high - np.interp(epoch, epochs, trend)) / (y_high - y_low) * (bottom - top)
        assert abs(np.flatnonzero(plot[:, x]).mean() - expected) <= 4
    pale = (pixels[top:bottom, left:left + 200] == PALE_BLUE).all(axis=2)
    assert pale.any(axis=1).sum() > 0.4 * (bottom - top)  # each epoch's cost, behind it
