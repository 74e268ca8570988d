"""Issue 15 part 2, "messages": the positive class of two classes where one is the rest of the
other (cat / non-cat, dog / background) is the other one; --positive decides; the summary says
which; explain explains the predicted class, and --class NAME that class's own score."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.model import load_model
from logreg_cli.names import default_positive


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("classes, positive", [
    (["cat", "non-cat"], "cat"), (["cat", "not-cat"], "cat"), (["cat", "not_cat"], "cat"),
    (["cat", "no-cat"], "cat"), (["Cat", "Non-Cat"], "Cat"), (["background", "dog"], "dog"),
    (["aircraft", "other"], "aircraft"), (["negative", "tumour"], "tumour"),
    (["none", "smoke"], "smoke"), (["cat", "dog"], None), (["none", "other"], None),
    (["cat", "noncat"], None), (["a", "b", "non-a"], None),
])
def test_the_rest_rule(classes, positive):
    assert default_positive(classes) == positive


@pytest.fixture
def cats(make_image_folder, tmp_path):
    data = make_image_folder({"cat": 5, "non-cat": 5}, name="cats")
    return data


@pytest.mark.parametrize("options, positive", [([], "cat"), (["--positive", "non-cat"], "non-cat")])
def test_cat_is_positive_by_default_and_positive_decides(cats, tmp_path, options, positive):
    model_path = tmp_path / "m.npz"
    result = invoke("train", cats, "-m", model_path, "--size", "8x8", "--epochs", "20",
                    *options)
    assert result.exit_code == 0, result.output
    assert load_model(model_path).classes[1] == positive
    assert (f"positive class {positive} (the score, --threshold and explain are about it; "
            "--positive chooses another)") in result.stderr.splitlines()
    summary = json.loads(invoke("inspect", model_path, "--format", "json").stdout)
    assert summary["positive_class"] == summary["options"]["positive"] == positive
    image = cats / "cat" / "000.png"
    predicted = invoke("predict", "-m", model_path, "--threshold", "0.5", image).stdout
    assert predicted.split("\t")[1] == "cat"


def test_a_multiclass_summary_names_no_positive_class(make_image_folder, tmp_path):
    data = make_image_folder({"a": 3, "b": 3, "c": 3})
    result = invoke("train", data, "-m", tmp_path / "m.npz", "--size", "8x8", "--epochs", "3")
    assert "positive class" not in result.stderr


@pytest.fixture
def cat_model(cats, tmp_path):
    model_path = tmp_path / "m.npz"
    assert invoke("train", cats, "-m", model_path, "--size", "8x8", "--epochs", "30",
                  "-q").exit_code == 0
    return model_path


def explained(model_path, image, *options):
    result = invoke("explain", image, "-m", model_path, "--format", "json", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("folder", ["cat", "non-cat"])
def test_explain_explains_the_predicted_class_by_default(cats, cat_model, folder):
    facts = explained(cat_model, cats / folder / "000.png")
    assert facts["predicted"] == folder and facts["class"] == folder
    assert facts["probability"] == facts["probabilities"][folder] > 0.5
    assert facts["z"] > 0  # the explained class's own score is for it
    assert facts["negated"] == (folder == "non-cat")


def test_explain_class_gives_each_class_its_own_score(cats, cat_model):
    image = cats / "cat" / "000.png"
    cat, non_cat = (explained(cat_model, image, "--class", name) for name in ("cat", "non-cat"))
    assert (cat["class"], non_cat["class"]) == ("cat", "non-cat")
    assert non_cat["z"] == -cat["z"] and non_cat["b"] == -cat["b"]
    assert cat["probability"] == cat["probabilities"]["cat"]
    assert non_cat["probability"] == non_cat["probabilities"]["non-cat"]
    np.testing.assert_allclose(1 / (1 + np.exp(-non_cat["z"])), non_cat["probability"],
                               rtol=1e-5)
    assert [p["contribution"] for p in non_cat["strongest_negative"]] == \
        [-p["contribution"] for p in cat["strongest_positive"]]
    text = invoke("explain", image, "-m", cat_model, "--class", "non-cat").stdout.splitlines()
    assert text[2] == ("explained    non-cat (the negative class of a binary model: z here is "
                       "minus the score of cat, P = sigmoid(z))")
