"""Issue 15 part 3, "messages": the training progress line fits an 80-column terminal with its
figures whole (tqdm cuts a longer line at the edge, and the end of the figures was lost)."""

import fcntl
import os
import re
import struct
import subprocess
import termios

import pytest
from tqdm import tqdm

from logreg_cli.core import EpochStats
from logreg_cli.views import EPOCH_BAR_FORMAT, epoch_postfix
from tiny_models import logreg_command, subprocess_env, write_class_folders

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.mark.parametrize("desc", ["training", "lr 0.0001"])
@pytest.mark.parametrize("stats, decaying", [
    (EpochStats(12345, 0.004321, 0.693147), False),
    (EpochStats(12345, 0.004321, 0.693147), True),
    (EpochStats(12345, 0.004321, 0.693147, 0.711111, 0.5), True),
])
def test_the_bar_line_with_five_digit_epochs_fits_80_columns(desc, stats, decaying):
    postfix = epoch_postfix(stats, decaying)
    line = tqdm.format_meter(n=12345, total=99999, elapsed=3599, ncols=80, prefix=desc,
                             unit="epoch", postfix=postfix, bar_format=EPOCH_BAR_FORMAT)
    assert len(line) <= 80 and line.endswith(f", {postfix}]")
    assert re.search(r"\| +\|", line) is None  # the bar keeps some width (not zero)
    assert ("val 0.7111 50%" in postfix) == (stats.val_cost is not None)
    assert ("lr 0.00432" in postfix) == (decaying and stats.val_cost is None)


def test_train_on_an_80_column_terminal_shows_the_whole_figures(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 4)
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**subprocess_env(), "COLUMNS": "80"}
    with subprocess.Popen(logreg_command("train", data, "-m", tmp_path / "m.npz", "--size", "8x8",
                                         "--epochs", "300", "--val-split", "0.25"),
                          stderr=follower, stdout=subprocess.DEVNULL, env=env) as process:
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    text = ANSI.sub("", output.decode("utf-8", "replace"))
    bars = [part for part in re.split(r"[\r\n]", text) if part.startswith("training")]
    assert bars, text
    assert all(len(bar.rstrip()) <= 80 for bar in bars), bars
    assert re.search(r", cost \d\.\d{4} val \d\.\d{4} \d+%\]$", bars[-1].rstrip()), bars[-1]
