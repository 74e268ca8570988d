"""A path that cannot even be looked up (a name over NAME_MAX, a file used as a folder, a loop
of links), wherever a command takes one, is one line on stderr naming it: never a traceback."""

import os

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli

LONG = "a" * 300  # over NAME_MAX (255): ENAMETOOLONG


@pytest.fixture
def paths(tmp_path, make_image_folder):
    data = make_image_folder({"a": 3, "b": 3})
    model = tmp_path / "m.npz"
    assert CliRunner().invoke(cli, ["train", str(data), "--size", "4x4", "--epochs", "2",
                                    "-m", str(model), "-q"]).exit_code == 0
    (tmp_path / "file").write_bytes(b"x")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    return {"data": str(data), "model": str(model), "image": str(next((data / "a").iterdir())),
            "long": str(tmp_path / f"{LONG}.npz"), "notdir": str(tmp_path / "file" / "m.npz"),
            "loop": str(tmp_path / "loop")}


COMMANDS = [
    ["predict", "{image}", "-m", "{bad}"],
    ["evaluate", "{data}", "-m", "{bad}"],
    ["inspect", "{bad}"],
    ["explain", "{image}", "-m", "{bad}"],
    ["train", "{data}", "--size", "4x4", "--epochs", "2", "--init", "{bad}", "-m", "{model}"],
    ["train", "{data}", "--size", "4x4", "--epochs", "2", "--val", "{bad}", "-m", "{model}"],
    ["train", "{bad}", "-m", "{model}"],
    ["flatten", "{bad}", "-o", "{model}"],
    ["check", "{bad}"],
]


@pytest.mark.parametrize("bad", ["long", "notdir", "loop"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:1] + c[2:4]))
def test_a_path_that_cannot_be_looked_up_is_one_line(paths, command, bad):
    args = [part.format(bad=paths[bad], **paths) for part in command]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert os.path.basename(paths[bad])[:40] in lines[0]
