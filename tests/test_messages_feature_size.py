"""Issue 15 part 2, "messages": a feature file of the wrong size given to predict fails as one
input, in one line, not one line per row; the other inputs are still answered (exit 1)."""

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import train_model, write_class_folders


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def model_and_features(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 4)
    model = train_model(data, tmp_path / "m.npz", epochs=2)
    features = tmp_path / "f4.npz"
    assert invoke("flatten", data, "-o", features, "--size", "4x4", "-q").exit_code == 0
    return data, model, features


@pytest.mark.parametrize("from_stdin", [False, True])
def test_a_feature_file_of_another_size_is_one_line(model_and_features, from_stdin):
    data, model, features = model_and_features
    image = data / "red" / "000.png"
    if from_stdin:
        result = invoke("predict", "-m", model, "-", input=f"{features}\n{image}\n")
    else:
        result = invoke("predict", "-m", model, features, image)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {features}: has 48 features but the model expects 192 "
                             "(trained at --size 8x8)\n")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(image)]
