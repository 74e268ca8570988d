"""probe11: a full stderr (issue 11, case 12's kind: standard streams that fail).

`2>/dev/full` (or a log on a full disk) made the first message an unhandled OSError: the
command stopped there (predict answered no later input, train exited 1) and, since its
traceback could not be printed either, ended with exit 1 whatever had happened. Messages
that cannot be written are now dropped, and the command goes on with its usual exit code.
"""

import subprocess
import sys

import pytest

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/full")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-stderr")
    paths = write_class_folders(root / "data", ["blue", "red"], 2)
    return root, paths[0], train_model(root / "data", root / "m.npz", epochs=1)


def run_with_full_stderr(*args):
    with open("/dev/full", "w") as full:
        return subprocess.run(logreg_command(*args), stdout=subprocess.PIPE, stderr=full,
                              stdin=subprocess.DEVNULL, env=subprocess_env(), timeout=60)


def test_predict_goes_on_after_a_message_it_could_not_write(work):
    root, image, model = work
    done = run_with_full_stderr("predict", root / "missing.png", image, "-m", model)
    assert done.returncode == 1  # one input failed, the rest done
    assert [line.split("\t")[0] for line in done.stdout.decode().splitlines()] == [str(image)]


def test_train_saves_and_exits_0_with_its_summary_unwritten(work):
    root, _, _ = work
    out = root / "trained.npz"
    done = run_with_full_stderr("train", root / "data", "--size", "8x8", "--epochs", "2",
                                "-m", out)
    assert done.returncode == 0
    assert out.exists()


@pytest.mark.parametrize("args", [["inspect", "missing.npz"], ["train", "--bogus"],
                                  ["predict", "-", "--threshold", "nan"]])
def test_errors_keep_exit_code_2(work, args):
    done = run_with_full_stderr(*args)
    assert done.returncode == 2
    assert done.stdout == b""
