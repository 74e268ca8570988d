"""The command line over the library: options declared once (options.py) and read by both,
and `logreg inspect -m MODEL` like every other command."""

import json

import pytest
from click.testing import CliRunner

import logreg_cli
from logreg_cli.cli import cli
from logreg_cli.options import OPTIONS, TRAIN_OPTIONS
from tiny_models import train_model, write_class_folders


def invoke(*args, **settings):
    return CliRunner().invoke(cli, [str(arg) for arg in args], **settings)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_class_folders(root / "data", ["green", "red"], 6)
    return root / "data"


def test_train_help_shows_the_declared_defaults_and_help():
    text = " ".join(invoke("train", "--help").stdout.split())
    for name in TRAIN_OPTIONS:
        option = OPTIONS[name]
        assert " ".join(option.help.split()) in text, name
        if option.show_default and option.default not in (None, False):
            assert f"{option.flags[0]}" in text and f"[default: {option.default}" in text, name


BAD_VALUES = [("lr", "0"), ("lr", "nan"), ("lr", "inf"), ("epochs", "-1"), ("decay", "cosine"),
              ("decay_rate", "0"), ("decay_steps", "0"), ("batch_size", "0"), ("l2", "-1"),
              ("val_split", "1"), ("val_split", "0"), ("early_stop", "0"),
              ("class_weight", "equal"), ("size", "8"), ("size", "0x4")]


@pytest.mark.parametrize("name, text", BAD_VALUES)
def test_the_cli_and_the_library_refuse_the_same_values(data, tmp_path, name, text):
    flag = OPTIONS[name].flags[0]
    result = invoke("train", data, "-m", tmp_path / "m.npz", flag, text)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and flag in result.stderr
    kind = OPTIONS[name].kind
    value = text if kind in ("choice", "size") else float(text) if kind == "float" else int(text)
    with pytest.raises(logreg_cli.OptionError, match=flag):
        logreg_cli.train(data, **{name: value})
    assert not (tmp_path / "m.npz").exists()


def test_inspect_takes_the_model_as_dash_m_like_every_command(data, tmp_path, monkeypatch):
    model = train_model(data, tmp_path / "m.npz", epochs=5)
    by_argument = invoke("inspect", model, "--format", "json")
    by_option = invoke("inspect", "-m", model, "--format", "json")
    both_same = invoke("inspect", model, "--model", model, "--format", "json")
    assert by_argument.exit_code == by_option.exit_code == both_same.exit_code == 0
    assert json.loads(by_option.stdout) == json.loads(by_argument.stdout) == \
        json.loads(both_same.stdout)
    monkeypatch.setenv("LOGREG_MODEL", str(model))
    from_env = invoke("inspect", "--format", "json")
    assert json.loads(from_env.stdout) == json.loads(by_argument.stdout)
    other = invoke("inspect", model, "-m", tmp_path / "other.npz")
    assert other.exit_code == 2 and other.stdout == ""
    assert other.stderr.startswith(f"Error: MODEL {model} and --model {tmp_path / 'other.npz'} "
                                   "differ; give one")
    assert len(other.stderr.splitlines()) == 1
