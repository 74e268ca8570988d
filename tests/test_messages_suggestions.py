"""Issue 15 part 3, "messages": usage errors that say what to type instead."""

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import train_model, write_class_folders


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def pets(tmp_path, monkeypatch):
    """tmp_path/pets.npz trained on tmp_path/data; the working folder is tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGREG_MODEL", raising=False)
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    train_model(data, tmp_path / "pets.npz", epochs=3)
    return data


@pytest.mark.parametrize("command", [["predict", "data/red/000.png"], ["evaluate", "data"],
                                     ["inspect"], ["explain", "data/red/000.png"]])
def test_a_model_named_without_npz_is_suggested(pets, command):
    result = invoke(*command, "-m", "pets")
    assert result.exit_code == 2
    assert result.stderr == "Error: pets: no such model file (did you mean -m pets.npz?)\n"


def test_a_missing_model_with_no_npz_beside_it_says_how_to_train_one(pets):
    result = invoke("predict", "-m", "dogs", "data/red/000.png")
    assert result.exit_code == 2
    assert result.stderr == ("Error: dogs: no such model file (train one with: logreg train DATA "
                             "-m dogs)\n")


@pytest.mark.parametrize("model_option", [[], ["-m", "pets.npz"]])
def test_a_model_given_as_the_first_input_suggests_m(pets, model_option):
    result = invoke("predict", *model_option, "pets.npz", "data/red/000.png")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("Error: pets.npz: is a model, not an image or feature file; give it "
                             "with -m (logreg predict -m pets.npz data/red/000.png)\n")


@pytest.mark.parametrize("args, rates", [
    (["--compare-lr", "0.01", "0.001"], "0.01,0.001"),
    (["--compare-lr=0.1", "0.01", "0.001"], "0.1,0.01,0.001"),
])
def test_compare_lr_given_separate_values_says_the_list_is_comma_separated(pets, args, rates):
    result = invoke("train", "data", *args, "-m", "x.npz")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: --compare-lr takes one comma-separated list, not separate "
                             f"values: --compare-lr {rates} (see 'logreg train -h')\n")


def test_a_second_rate_taken_as_data_is_named_too(pets):
    result = invoke("train", "--compare-lr", "0.01", "0.001")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --compare-lr takes one comma-separated list, not separate "
                             "values: --compare-lr 0.01,0.001 (see 'logreg train -h')\n")


def test_an_unrelated_extra_argument_keeps_clicks_message(pets):
    result = invoke("train", "data", "--compare-lr", "0.01", "extra")
    assert result.exit_code == 2
    assert result.stderr == "Error: Got unexpected extra argument (extra) (see 'logreg train -h')\n"


def test_paths_piped_to_predict_without_inputs_suggest_dash(pets):
    result = invoke("predict", "-m", "pets.npz", input="data/red/000.png\n")
    assert result.exit_code == 2
    assert result.stderr == ("Error: Missing argument 'INPUTS...'; to read the paths (or the "
                             "image) piped in, give - as INPUTS (see 'logreg predict -h')\n")
    dashed = invoke("predict", "-m", "pets.npz", "-", input="data/red/000.png\n")
    assert dashed.exit_code == 0 and dashed.stdout.startswith("data/red/000.png\t")


def test_predict_accepts_quiet(pets):
    from PIL import Image

    Image.new("RGB", (80, 20), (200, 0, 0)).save("wide.png")
    noted = invoke("predict", "-m", "pets.npz", "-v", "wide.png")
    assert noted.exit_code == 0 and noted.stderr.startswith("Note: wide.png: ")
    result = invoke("predict", "-q", "-m", "pets.npz", "-v", "wide.png")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith("wide.png\t")
