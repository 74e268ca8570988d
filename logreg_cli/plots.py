"""PNG pictures drawn with Pillow alone: learned weights, per-pixel explanations."""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# ---------------------------------------------------------------- weights and explanations

TILE_MIN_SIDE = 128  # small models are enlarged (nearest neighbour) to at least this
MARGIN = 8
GAP = 8
WHITE = np.array([255.0, 255.0, 255.0])
RED = np.array([178.0, 24.0, 43.0])  # positive values
BLUE = np.array([33.0, 102.0, 172.0])  # negative values
INK = (0, 0, 0)


def diverging_colours(values, limit):
    """values (any shape) -> uint8 RGB (shape + 3): blue below 0, white at 0, red above,
    full colour at +-limit and beyond."""
    t = np.clip(values / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(values)
    t = np.asarray(t, dtype=np.float64)[..., None]
    colour = np.where(t >= 0, WHITE + t * (RED - WHITE), WHITE - t * (BLUE - WHITE))
    return np.rint(colour).astype(np.uint8)


def signed_rgb(weights, limit):
    """H x W x 3 weights -> uint8 RGB with 0 at mid grey, +-limit at 255 and 0 per channel."""
    t = np.clip(weights / limit, -1.0, 1.0) if limit > 0 else np.zeros_like(weights)
    return np.rint(127.5 + 127.5 * t).astype(np.uint8)


def enlargement(size):
    """Integer factor that brings the longer side of (width, height) to TILE_MIN_SIDE."""
    return max(1, math.ceil(TILE_MIN_SIDE / max(size)))


def _tile(pixels, factor):
    image = Image.fromarray(pixels, "RGB")
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _line_height(font):
    left, top, right, bottom = font.getbbox("Ag")
    return bottom + 4


def grid_picture(rows, captions, notes):
    """Tiles (rows of equal-size PIL images) on white, a caption under each column, then
    note lines; the width grows to fit the longest text."""
    font = ImageFont.load_default()
    line = _line_height(font)
    tile_width, tile_height = rows[0][0].size
    columns = len(rows[0])
    texts = list(captions) + list(notes)
    text_width = max(font.getlength(text) for text in texts) if texts else 0
    column_width = max(tile_width, math.ceil(max(font.getlength(c) for c in captions)))
    width = max(2 * MARGIN + columns * column_width + (columns - 1) * GAP,
                2 * MARGIN + math.ceil(text_width))
    height = (2 * MARGIN + len(rows) * tile_height + (len(rows) - 1) * GAP + line
              + len(notes) * line + (GAP if notes else 0))
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for row_index, row in enumerate(rows):
        top = MARGIN + row_index * (tile_height + GAP)
        for column, tile in enumerate(row):
            left = MARGIN + column * (column_width + GAP) + (column_width - tile_width) // 2
            picture.paste(tile, (left, top))
    captions_top = MARGIN + len(rows) * tile_height + (len(rows) - 1) * GAP + 2
    for column, caption in enumerate(captions):
        centre = MARGIN + column * (column_width + GAP) + column_width / 2
        draw.text((centre - font.getlength(caption) / 2, captions_top), caption, fill=INK,
                  font=font)
    for index, note in enumerate(notes):
        draw.text((MARGIN, captions_top + line + GAP + index * line), note, fill=INK, font=font)
    return picture


def weights_picture(weights, names, size):
    """The learned weights as pictures: one column per output, two rows.

    weights: n x c (n = H * W * 3, unrolled row-major like the images); names: c captions;
    size: (width, height). Top row: each output's weights as an H x W x 3 RGB image, mid
    grey = 0, a channel brighter where its weight is positive (one scale for all tiles).
    Bottom row: the weights summed over R, G and B on a diverging scale (red +, blue -).
    """
    width, height = size
    tensors = weights.T.reshape(-1, height, width, 3).astype(np.float64)
    sums = tensors.sum(axis=3)
    rgb_limit, sum_limit = float(np.abs(tensors).max()), float(np.abs(sums).max())
    factor = enlargement(size)
    rows = [[_tile(signed_rgb(t, rgb_limit), factor) for t in tensors],
            [_tile(diverging_colours(s, sum_limit), factor) for s in sums]]
    notes = ["top: weights as RGB (grey = 0),", f"  +-{rgb_limit:.3g} at full channel",
             "bottom: sum over R, G, B,", f"  red > 0 > blue, +-{sum_limit:.3g} full"]
    return grid_picture(rows, names, notes)


def explanation_picture(pixels, contributions, caption_lines):
    """Three panels: the image as the model sees it (H x W x 3 uint8), each pixel's
    contribution to z (H x W, diverging scale, red raises z), and the two blended."""
    height, width = contributions.shape
    factor = enlargement((width, height))
    limit = float(np.abs(contributions).max())
    heat = diverging_colours(contributions, limit)
    grey = pixels.astype(np.float64).mean(axis=2, keepdims=True)
    overlay = np.rint(0.35 * grey + 0.65 * heat).astype(np.uint8)
    panels = [[_tile(np.ascontiguousarray(pixels), factor), _tile(heat, factor),
               _tile(overlay, factor)]]
    notes = list(caption_lines) + [f"red raises z, blue lowers it; full colour at +-{limit:.3g}"]
    return grid_picture(panels, ["image (model size)", "contribution to z", "overlay"], notes)


def save_png(picture, path):
    """Write a PIL image as PNG atomically; returns its (width, height)."""
    from .atomic import write_atomically

    write_atomically(path, lambda file: picture.save(file, "PNG"))
    return picture.size
