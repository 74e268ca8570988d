"""Closed, full and broken standard streams, through the real program in a process.

A closed stdin matters only to `-`; a closed or full stdout is one line on stderr and exit
2 for every command that prints (and nothing for those that print nothing); a broken pipe
ends the command quietly with exit 1. Never a traceback, including at the interpreter's exit.
"""

import os
import subprocess
import sys

import pytest

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptors")

IMAGE = "{data}/blue/000.png"
# every command, each printing something on stdout
PRINTING = {
    "predict": ["predict", IMAGE, "-m", "{model}"],
    "inspect": ["inspect", "{model}"],
    "evaluate": ["evaluate", "{data}", "-m", "{model}", "-q"],
    "check": ["check", "{data}", "-q"],
    "explain": ["explain", IMAGE, "-m", "{model}"],
    "version": ["--version"],
    "help": ["-h"],
    "command-help": ["predict", "-h"],
}
# commands that print nothing on stdout: their output is files
SILENT = {
    "train": ["train", "{data}", "-m", "{out}", "--size", "8x8", "--epochs", "2", "-q"],
    "flatten": ["flatten", "{data}", "-o", "{out}", "--size", "8x8", "-q"],
}


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("streams")
    write_class_folders(root / "data", ["blue", "red"], 4)
    train_model(root / "data", root / "model.npz", epochs=5)
    return {"data": str(root / "data"), "model": str(root / "model.npz"),
            "out": str(root / "out.npz"), "root": root}


def run(args, places, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close=()):
    """The program with the given descriptors closed (as `<&-`, `>&-` do)."""
    def close_descriptors():
        for fd in close:
            os.close(fd)

    return subprocess.run(
        logreg_command(*[arg.format(**places) for arg in args]),
        stdin=stdin, stdout=stdout,
        stderr=subprocess.PIPE, env=subprocess_env(), cwd=places["root"],
        preexec_fn=close_descriptors if close else None, timeout=60)


def assert_no_traceback(completed):
    stderr = completed.stderr.decode()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


@pytest.mark.parametrize("name", sorted(PRINTING) + sorted(SILENT))
def test_a_closed_stdin_does_not_matter_when_dash_is_not_read(places, name):
    args = {**PRINTING, **SILENT}[name]
    completed = run(args, places, stdin=None, close=(0,))
    assert_no_traceback(completed)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    assert (completed.stdout != b"") == (name in PRINTING)


@pytest.mark.parametrize("args", [["predict", "-", "-m", "{model}"],
                                  ["predict", "-0", "-", "-m", "{model}"],
                                  ["explain", "-", "-m", "{model}"]])
def test_reading_dash_from_a_closed_stdin_is_one_line(places, args):
    completed = run(args, places, stdin=None, close=(0,))
    assert completed.returncode == 2
    assert completed.stderr == b"Error: stdin: cannot read (it is closed)\n"
    assert completed.stdout == b""


@pytest.mark.parametrize("name", sorted(PRINTING))
def test_a_closed_stdout_is_one_line_and_exit_2(places, name):
    completed = run(PRINTING[name], places, stdout=None, close=(1,))
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == b"Error: stdout: cannot write (it is closed)\n"


@pytest.mark.parametrize("name", sorted(PRINTING))
def test_a_full_stdout_is_one_line_and_exit_2(places, name):
    with open("/dev/full", "wb") as full:
        completed = run(PRINTING[name], places, stdout=full)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr == b"Error: stdout: cannot write (No space left on device)\n"


@pytest.mark.parametrize("name", sorted(SILENT))
@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_commands_that_print_nothing_work_with_a_closed_or_full_stdout(places, name, stdout):
    out = places["root"] / "out.npz"
    if stdout == "closed":
        completed = run(SILENT[name], places, stdout=None, close=(1,))
    else:
        with open("/dev/full", "wb") as full:
            completed = run(SILENT[name], places, stdout=full)
    assert_no_traceback(completed)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    assert out.stat().st_size > 0
    out.unlink()


@pytest.mark.parametrize("name", sorted(PRINTING))
def test_a_broken_pipe_stays_quiet_with_exit_1(places, name):
    reader, writer = os.pipe()
    os.close(reader)  # as `| head -1` once head has gone
    try:
        completed = run(PRINTING[name], places, stdout=writer)
    finally:
        os.close(writer)
    assert completed.returncode == 1
    assert completed.stderr == b""
