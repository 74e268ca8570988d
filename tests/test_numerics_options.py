"""Every numeric option of every command declares its range with a click type, so click
refuses a bad value with one usage line naming the option (issue 11, cases 15 and 17)."""

import click
import pytest

from logreg_cli.cli import cli
from test_cli import assert_user_error, run

LARGEST_COUNT = 2**63 - 1  # counts and seeds go into numpy int64 arithmetic


def numeric_options(kind):
    """(command, option name, its type) of every option of every command whose type is a
    number of this kind (click.INT or click.FLOAT, ranges included)."""
    return [(name, param.opts[0], param.type)
            for name, command in sorted(cli.commands.items())
            for param in command.params
            if isinstance(param, click.Option)
            and param.type.name in (kind.name, f"{kind.name} range")]


FLOATS = numeric_options(click.FLOAT)
INTS = numeric_options(click.INT)

# A command line that reaches option parsing: the options are converted before any file
# is looked at, so DATA and IMAGE need not exist.
ARGUMENTS = {"train": ["no-data"], "predict": ["no-image.png"], "evaluate": ["no-data"],
             "check": ["no-data"], "flatten": ["no-data", "-o", "f.npz"],
             "explain": ["no-image.png"], "inspect": [], "report": ["no-data", "-o", "r.html"]}


def refused(command, option, value):
    result = run(command, *ARGUMENTS[command], f"{option}={value}")
    line = assert_user_error(result, f"Invalid value for '{option}'")
    assert line.endswith(f"(see 'logreg {command} -h')")
    return line


def test_the_audit_finds_the_options_it_must():
    assert {(c, o) for c, o, _ in FLOATS} == {
        ("train", "--lr"), ("train", "--decay-rate"), ("train", "--l2"),
        ("train", "--val-split"), ("predict", "--threshold"), ("predict", "--min-confidence"),
        ("check", "--max-imbalance"), ("train", "--tol")}
    assert {("train", "--seed"), ("train", "--epochs"), ("train", "--batch-size"),
            ("train", "--decay-steps"), ("train", "--early-stop"), ("predict", "--top-k"),
            ("evaluate", "--misclassified")} <= {(c, o) for c, o, _ in INTS}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "+Infinity"])
@pytest.mark.parametrize("command, option", [(c, o) for c, o, _ in FLOATS],
                         ids=[f"{c} {o}" for c, o, _ in FLOATS])
def test_every_float_option_refuses_nan_and_infinity(command, option, value):
    line = refused(command, option, value)
    assert "not a finite number" in line or "not in the range" in line


def test_the_issue_cases_name_the_option(tmp_path):
    assert refused("predict", "--threshold", "nan") == (
        "Error: Invalid value for '--threshold': 'nan' is not a finite number. "
        "(see 'logreg predict -h')")
    assert refused("check", "--max-imbalance", "nan") == (
        "Error: Invalid value for '--max-imbalance': 'nan' is not a finite number. "
        "(see 'logreg check -h')")
    result = run("train", "no-data", "--seed", "-1", "--batch-size", "4")
    assert assert_user_error(result) == (
        "Error: Invalid value for '--seed': -1 is not in the range x>=0. "
        "(see 'logreg train -h')")


@pytest.mark.parametrize("command, option, kind", INTS, ids=[f"{c} {o}" for c, o, _ in INTS])
def test_every_int_option_has_a_range_from_its_minimum_to_int64(command, option, kind):
    """Each one is a range: one below its minimum and 2**63 are refused by click (a seed
    of -1 was a traceback from numpy, a --decay-steps of 10**23 an OverflowError)."""
    assert isinstance(kind, click.IntRange) and kind.min is not None, option
    refused(command, option, kind.min - 1)
    assert "too large" in refused(command, option, LARGEST_COUNT + 1)


@pytest.mark.parametrize("options", [
    ["--lr", "0"], ["--lr", "-0.1"], ["--decay-rate", "0"], ["--l2", "-1"],
    ["--val-split", "0"], ["--val-split", "1"], ["--val-split", "1.5"]])
def test_train_float_ranges(options):
    assert_user_error(run("train", "no-data", *options), f"Invalid value for '{options[0]}")


def test_the_largest_counts_run(tmp_path, make_image_folder):
    """The other side of the bound: the largest accepted values train (no OverflowError)."""
    data = make_image_folder({"a": 3, "b": 3})
    largest = str(LARGEST_COUNT)
    result = run("train", data, "-m", tmp_path / "m.npz", "--size", "2x2", "--epochs", "3",
                 "--decay", "inverse", "--decay-steps", largest, "--seed", largest,
                 "--batch-size", "2", "-q")
    assert (result.exit_code, result.stderr) == (0, "")
