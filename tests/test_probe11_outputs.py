"""probe11: an output path that cannot be looked up or written (issue 11, cases 3 and 13's kind).

A name over 255 bytes is refused before any work, with one line naming the output, for
every output option; so is a name whose temporary (`.NAME.XXXXXXXX.tmp`) would be over the
limit, which used to fail only after the whole run.
"""

import os
import subprocess

import pytest

from test_files_outputs import OPTIONS, work  # noqa: F401 (work is a fixture)
from test_files_outputs import commands as output_commands
from tiny_models import logreg_command, subprocess_env


def commands(work, output, tmp_path):
    """option -> its command line writing `output`, without -q (so that any work done
    before the refusal shows on stderr); -m is a short name beside --history and --plot."""
    table = output_commands(work, output)
    for option in ("--history", "--plot"):
        args = table[option]
        args[args.index("-m") + 1] = str(tmp_path / "model.npz")
    return {option: [arg for arg in args if arg != "-q"] for option, args in table.items()}


def run(args, cwd):
    return subprocess.run(logreg_command(*args), capture_output=True, env=subprocess_env(),
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("option", OPTIONS)
def test_an_output_name_over_255_bytes_is_one_line_before_any_work(tmp_path, work, option):
    output = tmp_path / ("o" * 300 + ".out")
    done = run(commands(work, output, tmp_path)[option], tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [f"Error: {output}: cannot write (File name "
                                                 "too long)"]


@pytest.mark.parametrize("option", OPTIONS)
def test_an_output_whose_temporary_name_is_too_long_is_refused_before_any_work(
        tmp_path, work, option):
    output = tmp_path / ("o" * 245 + ".out")  # fits in 255 bytes; `.NAME.XXXXXXXX.tmp` does not
    done = run(commands(work, output, tmp_path)[option], tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"Error: {output}: cannot write (File name too long for the temporary file beside it)"]
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_long_output_name_into_a_device_or_symlink_is_not_refused(tmp_path, work):
    link = tmp_path / ("l" * 245)
    link.symlink_to("/dev/null")  # written into, no temporary needed
    done = run(commands(work, link, tmp_path)["flatten -o"], tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert link.is_symlink() and os.path.realpath(link) == "/dev/null"
