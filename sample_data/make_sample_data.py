"""Generate the small demo image data set shipped with logreg.

Draws three classes of 32x32 RGB pictures with Pillow's ImageDraw:

* ``circle``  - a filled disc, tending towards warm (reddish) colours;
* ``square``  - a filled axis-aligned square, tending towards green;
* ``stripes`` - diagonal stripes across the picture, tending towards blue.

Each class has a consistent *linear* signature on raw pixels (its colour
tendency and where its ink usually lands), so a logistic-regression
classifier can learn it.  Random position, size, colour and background
gradients blur the classes into each other, so the expected test accuracy
is good but not perfect (roughly 80-95 %).

Everything is seeded (``np.random.default_rng(0)``), so running the script
twice produces byte-identical PNGs.  Backgrounds are smooth gradients and
shapes are flat, which keeps the PNG files small.  Nothing is downloaded;
all pictures are drawn here.

Usage (from anywhere)::

    python sample_data/make_sample_data.py

It deletes and rebuilds ``train/`` and ``test/`` next to this script:
``train/<class>/NNN.png`` and ``test/<class>/NNN.png``.
"""

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32
CLASSES = ("circle", "square", "stripes")
N_TRAIN = 45
N_TEST = 18
SEED = 0
ROOT = Path(__file__).resolve().parent

# Typical ink colour of each class; the actual colour is jittered around it.
BASE_COLOURS = {
    "circle": (200, 90, 70),
    "square": (80, 180, 90),
    "stripes": (80, 100, 200),
}
COLOUR_JITTER = 50
BACKGROUND_LOW, BACKGROUND_HIGH = 20, 235


def random_colour(rng, base):
    """Return `base` shifted by independent uniform noise, clipped to 0..255."""
    noise = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    return tuple(int(c) for c in np.clip(np.array(base) + noise, 0, 255))


def gradient_background(rng):
    """Return a smooth vertical two-colour gradient as a PIL image."""
    top = rng.integers(BACKGROUND_LOW, BACKGROUND_HIGH, size=3)
    bottom = rng.integers(BACKGROUND_LOW, BACKGROUND_HIGH, size=3)
    t = np.linspace(0.0, 1.0, SIZE)[:, None]
    column = np.round(top * (1 - t) + bottom * t).astype(np.uint8)
    pixels = np.repeat(column[:, None, :], SIZE, axis=1)
    return Image.fromarray(pixels, mode="RGB")


def random_box(rng, min_size, max_size):
    """Return a box (x0, y0, x1, y1) of random size, jittered around the centre."""
    side = int(rng.integers(min_size, max_size + 1))
    cx = SIZE / 2 + rng.normal(0, 4)
    cy = SIZE / 2 + rng.normal(0, 4)
    x0 = int(np.clip(cx - side / 2, 0, SIZE - side))
    y0 = int(np.clip(cy - side / 2, 0, SIZE - side))
    return x0, y0, x0 + side - 1, y0 + side - 1


def draw_circle(draw, rng, colour):
    """Draw a filled disc of random size and position."""
    draw.ellipse(random_box(rng, 12, 24), fill=colour)


def draw_square(draw, rng, colour):
    """Draw a filled axis-aligned square of random size and position."""
    draw.rectangle(random_box(rng, 10, 22), fill=colour)


def draw_stripes(draw, rng, colour):
    """Draw thick diagonal stripes (top-left to bottom-right) with random phase."""
    period = int(rng.integers(7, 11))
    width = int(rng.integers(2, 5))
    phase = int(rng.integers(0, period))
    for offset in range(-SIZE + phase, SIZE, period):
        draw.line([(offset, 0), (offset + SIZE, SIZE)], fill=colour, width=width)


DRAWERS = {"circle": draw_circle, "square": draw_square, "stripes": draw_stripes}


def make_image(rng, label):
    """Return one 32x32 RGB picture of class `label`."""
    image = gradient_background(rng)
    colour = random_colour(rng, BASE_COLOURS[label])
    DRAWERS[label](ImageDraw.Draw(image), rng, colour)
    return image


def write_split(rng, split, count):
    """Draw `count` pictures per class into ROOT/<split>/<class>/NNN.png."""
    for label in CLASSES:
        folder = ROOT / split / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            make_image(rng, label).save(folder / f"{index:03d}.png", optimize=True)


def main():
    """Delete the old train/ and test/ folders and rebuild them."""
    rng = np.random.default_rng(SEED)
    for split in ("train", "test"):
        shutil.rmtree(ROOT / split, ignore_errors=True)
    write_split(rng, "train", N_TRAIN)
    write_split(rng, "test", N_TEST)
    print(f"Wrote {N_TRAIN} train and {N_TEST} test images per class under {ROOT}")


if __name__ == "__main__":
    main()
