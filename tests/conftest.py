"""Shared fixtures: the catvnoncat evaluation data and tiny image folders made with Pillow."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets" / "catvnoncat"


def shared_data_path():
    """catvnoncat beside the repo, or $LOGREG_SHARED_DATA (a folder holding train/ and test/)."""
    override = os.environ.get("LOGREG_SHARED_DATA")
    if override:
        path = Path(override)
        return path / "catvnoncat" if (path / "catvnoncat").is_dir() else path
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data():
    """The catvnoncat folder (train/, test/, README.md); skips the test when it is absent."""
    path = shared_data_path()
    if not (path / "train").is_dir() or not (path / "test").is_dir():
        pytest.skip(f"catvnoncat data not found at {path} (set $LOGREG_SHARED_DATA to its folder)")
    return path


def class_color(index):
    """A distinct base colour per class, far apart in RGB."""
    palette = [(220, 30, 30), (30, 200, 40), (40, 40, 230), (230, 220, 30), (200, 40, 210)]
    return np.array(palette[index % len(palette)], dtype=np.int64)


def write_image(path, index, class_index, size=(8, 8), mode="RGB"):
    """One PNG: the class colour plus a small deterministic per-image noise."""
    width, height = size
    rng = np.random.default_rng(1000 * class_index + index)
    noise = rng.integers(-25, 26, size=(height, width, 3))
    pixels = np.clip(class_color(class_index) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels, "RGB").convert(mode).save(path)
    return path


@pytest.fixture
def make_image_folder(tmp_path):
    """Factory: make_image_folder({"a": 4, "b": 4}, name="data", size=(8, 8)) -> folder path.

    Builds root/<class>/<NNN>.png with one colour per class, so a model learns them quickly.
    """

    def make(counts, name="data", size=(8, 8)):
        root = tmp_path / name
        root.mkdir()
        for class_index, (class_name, count) in enumerate(sorted(counts.items())):
            folder = root / class_name
            folder.mkdir()
            for index in range(count):
                write_image(folder / f"{index:03d}.png", index, class_index, size)
        return root

    return make


@pytest.fixture
def three_classes(make_image_folder):
    """A train folder of three classes (a red, b green, c blue), 6 images each, 8x8."""
    return make_image_folder({"a": 6, "b": 6, "c": 6}, name="train")
