"""Tiny image sets and models, subprocess helpers and a pickle payload shared by the tests.

Images are 8 x 8 RGB, drawn here with Pillow: each class has a dominant colour channel plus
noise, so a few epochs learn it and the probabilities still vary from image to image.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli

CHANNEL_OF_CLASS = {"blue": 2, "green": 1, "red": 0}


def draw_image(path, channel, rng, size=(8, 8), strength=90):
    """An RGB image whose `channel` is raised by `strength` over noise; saved at path."""
    width, height = size
    pixels = rng.integers(40, 160, size=(height, width, 3))
    pixels[:, :, channel] += rng.integers(0, strength + 1)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


def write_class_folders(root, classes, per_class, seed=0, size=(8, 8)):
    """root/<class>/<i>.png for each class; returns the paths in sorted order."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in classes:
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            paths.append(draw_image(folder / f"{index:03d}.png", CHANNEL_OF_CLASS[name], rng,
                                    size))
    return sorted(paths)


def train_model(data, model_path, epochs=40, lr=0.05, size="8x8"):
    """Train through the CLI (the path users take); returns model_path."""
    result = CliRunner().invoke(cli, ["train", str(data), "-m", str(model_path), "--size", size,
                                      "--epochs", str(epochs), "--lr", str(lr), "-q"])
    assert result.exit_code == 0, result.output
    return model_path


def subprocess_env():
    """The user's environment: no PYTHONUNBUFFERED (stdout is block-buffered in a pipe)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def logreg_command(*args):
    return [sys.executable, "-m", "logreg_cli", *map(str, args)]


class CreatesFileWhenUnpickled:
    """Unpickling this runs Path(marker).touch(): proof that a reader executed a pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# Runs a command and reports its peak RSS (KB) and wall time on stderr's last line. The
# command is started from this small process, not from pytest: Linux carries a parent's
# peak RSS over fork and exec into the child's ru_maxrss, which would hide the command's own.
MEASURING_PARENT = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL)
seconds = time.perf_counter() - start
sys.stderr.write(f"\\n{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {seconds:.3f}\\n")
sys.exit(done.returncode)
"""


def run_measured(*args, timeout=300):
    """(exit code, stderr lines, peak RSS in MB, seconds) of `logreg args` in a process."""
    done = subprocess.run([sys.executable, "-c", MEASURING_PARENT, *logreg_command(*args)],
                          capture_output=True, env=subprocess_env(), timeout=timeout)
    *lines, figures = done.stderr.decode().splitlines()
    peak_kb, seconds = figures.split()
    return done.returncode, [line for line in lines if line], int(peak_kb) / 1024, float(seconds)
