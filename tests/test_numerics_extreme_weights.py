"""Finite but extreme weights (issue 11, case 9): a model some image could score past
float32's range is refused when it is loaded, by every command, and the scoring function
never returns NaN nor lets numpy warn."""

import json
import subprocess
import warnings

import numpy as np
import pytest
from PIL import Image

from logreg_cli import core
from logreg_cli.errors import LogregError
from logreg_cli.model import Model, load_model, save_model
from test_cli import assert_user_error, run
from tiny_models import logreg_command, subprocess_env, write_class_folders

N = 8 * 8 * 3


def alternating(value, c=1):
    """+value, -value, ... (N x c float32): finite, but sum |w| = N * value."""
    signs = np.where(np.arange(N * c) % 2 == 0, 1.0, -1.0).reshape(N, c)
    return (signs * value).astype(np.float32)


def extreme_models():
    """Each kind of model whose scores cannot all be finite in float32."""
    classes2, classes3 = ["blue", "red"], ["blue", "green", "red"]
    three = np.zeros((N, 3), np.float32)
    three[:, 1] = 2e36  # one class's column: 192 * 2e36 = 3.8e38
    mean = np.full(N, 100.0, np.float32)
    return {
        "alternating-3e38": Model(alternating(3e38), np.zeros(1, np.float32), classes2, (8, 8)),
        "sum-past-limit": Model(np.full((N, 1), 1e36, np.float32), np.zeros(1, np.float32),
                                classes2, (8, 8)),
        "3-class-column": Model(three, np.zeros(3, np.float32), classes3, (8, 8)),
        "standardized-tiny-scale": Model(np.full((N, 1), 1e30, np.float32),
                                         np.zeros(1, np.float32), classes2, (8, 8),
                                         mean, np.full(N, 1e-10, np.float32)),
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("extreme")
    paths = write_class_folders(root / "data", ["blue", "green", "red"], 2)
    return root / "data", paths[0]


def command_line(command, model, data, image, tmp_path):
    return {
        "predict-jsonl": ["predict", image, "-m", model, "--format", "jsonl"],
        "predict-tsv": ["predict", image, "-m", model, "--all-probabilities"],
        "evaluate": ["evaluate", data, "-m", model],
        "explain": ["explain", image, "-m", model],
        "inspect": ["inspect", model],
        "train-init": ["train", data, "--init", model, "--epochs", "1", "-m",
                       tmp_path / "next.npz"],
    }[command]


@pytest.mark.parametrize("command", ["predict-jsonl", "predict-tsv", "evaluate", "explain",
                                     "inspect", "train-init"])
@pytest.mark.parametrize("kind", sorted(extreme_models()))
def test_a_model_that_cannot_score_finitely_is_refused(tmp_path, folder, kind, command):
    data, image = folder
    model = tmp_path / "extreme.npz"
    save_model(extreme_models()[kind], model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        result = run(*command_line(command, model, data, image, tmp_path))
    line = assert_user_error(result, f"{model}: weights too large: an image could get a score")
    assert "past the 1.7e+38 that float32 scores can hold" in line


def test_the_issue_case_prints_no_nan_and_no_warning(tmp_path, folder):
    """predict --format jsonl printed "probability": NaN and four RuntimeWarnings."""
    _, image = folder
    model = tmp_path / "extreme.npz"
    save_model(extreme_models()["alternating-3e38"], model)
    done = subprocess.run(logreg_command("predict", image, "-m", model, "--format", "jsonl"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "Warning" not in done.stderr
    assert done.stderr.startswith(f"Error: {model}: weights too large")


@pytest.mark.parametrize("weight, accepted", [(5e37, True), (6e37, False)])
def test_the_limit_is_every_possible_image_within_half_float32(tmp_path, weight, accepted):
    """A 1x1 model with w = (v, v, v): a white pixel scores 3v. 1.5e38 is within the limit
    (1.7e38) and predicts finitely; 1.8e38 is refused, though float32 still holds it."""
    model = tmp_path / "edge.npz"
    save_model(Model(np.full((3, 1), weight, np.float32), np.zeros(1, np.float32),
                     ["neg", "pos"], (1, 1)), model)
    image = tmp_path / "white.png"
    Image.fromarray(np.full((1, 1, 3), 255, np.uint8)).save(image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run("predict", image, "-m", model, "--format", "jsonl")
    if accepted:
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["probabilities"] == {"neg": 0.0, "pos": 1.0}
        assert load_model(model).weights[0, 0] == np.float32(weight)
    else:
        assert_user_error(result, "score of 1.8e+38")


def test_scores_raise_instead_of_returning_nan():
    """The Python API: a Model made in memory (never loaded) with such weights."""
    model = extreme_models()["alternating-3e38"]
    X = np.full((2, N), 255, np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LogregError, match="scores are not finite"):
            model.predict_proba(X)
        with pytest.raises(LogregError, match="scores are not finite"):
            core.scores(model.features(X), model.weights, model.bias)
