"""Issue 15 part 2, "messages": --strict errors say the run stopped, not "skipped" or
"left out" (which the same problem's warning says when the run goes on)."""

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import train_model, write_class_folders


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def data_and_model(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 3)
    return data, train_model(data, tmp_path / "model.npz", epochs=2)


def command_args(command, model, tmp_path):
    return {"train": ["-m", tmp_path / "out.npz", "--size", "8x8"],
            "flatten": ["-o", tmp_path / "out.npz", "--size", "8x8"],
            "evaluate": ["-m", model]}[command]


@pytest.mark.parametrize("command", ["train", "flatten", "evaluate"])
@pytest.mark.parametrize("make, problem, consequence", [
    (lambda data: (data / "red" / "notes.txt").write_text("x"), "red/notes.txt: not an image "
     "file ('.txt' is not an image extension)", "skipped"),
    (lambda data: (data / "loose.png").write_bytes((data / "red" / "000.png").read_bytes()),
     "loose.png: an image directly in DATA belongs to no class", "skipped"),
])
def test_strict_says_the_run_stopped_where_a_warning_says_skipped(data_and_model, tmp_path,
                                                                  command, make, problem,
                                                                  consequence):
    data, model = data_and_model
    make(data)
    extra = command_args(command, model, tmp_path)
    strict = invoke(command, data, *extra, "--strict")
    assert strict.exit_code == 2
    assert strict.stderr == f"Error: {data}/{problem}; --strict stopped the run\n"
    assert not (tmp_path / "out.npz").exists()
    going_on = invoke(command, data, *extra)
    assert going_on.exit_code == 0
    assert f"Warning: {data}/{problem}; {consequence}" in going_on.stderr.splitlines()


@pytest.mark.parametrize("command", ["train", "flatten"])
def test_strict_says_the_run_stopped_at_a_class_without_images(data_and_model, tmp_path,
                                                                command):
    data, model = data_and_model
    (data / "green").mkdir()
    extra = command_args(command, model, tmp_path)
    strict = invoke(command, data, *extra, "--strict")
    assert (strict.exit_code, strict.stderr) == \
        (2, f"Error: {data}/green: holds no images; --strict stopped the run\n")
    going_on = invoke(command, data, *extra)
    assert f"Warning: {data}/green: holds no images; class 'green' left out" in going_on.stderr


def test_the_library_raises_the_same_message(data_and_model):
    import logreg_cli
    from logreg_cli.errors import ImageError

    data, _ = data_and_model
    (data / "red" / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="; --strict stopped the run$"):
        logreg_cli.train(data, strict=True, size=(8, 8), epochs=1)
