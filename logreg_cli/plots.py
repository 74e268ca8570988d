"""PNG pictures drawn with Pillow alone: learned weights, per-pixel explanations,
learning curves."""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .atomic import write_atomically

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
    write_atomically(path, lambda file: picture.save(file, "PNG"))
    return picture.size


# ---------------------------------------------------------------- learning curves

CURVE_SIZE = (800, 500)
CURVE_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
_MARGIN = {"left": 80, "right": 24, "top": 44, "bottom": 64}


def nice_ticks(low, high, count=6):
    """About count round tick values (steps of 1, 2 or 5 times a power of ten) in [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = min((f * power for f in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def learning_curve_png(path, series, title="", size=CURVE_SIZE, x_label="epoch", y_label="cost"):
    """Draw series [(label, xs, ys), ...] as lines on labelled axes with a legend; write a PNG.

    Non-finite values are left out. The file is written atomically.
    """
    save_png(learning_curve_image(series, title, size, x_label, y_label), path)


def learning_curve_image(series, title="", size=CURVE_SIZE, x_label="epoch", y_label="cost"):
    """The Pillow image of learning_curve_png."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = _font(13)
    box = (_MARGIN["left"], _MARGIN["top"], width - _MARGIN["right"], height - _MARGIN["bottom"])
    curves = [(label, *_finite(xs, ys)) for label, xs, ys in series]
    all_x = np.concatenate([c[1] for c in curves] + [np.zeros(0)])
    all_y = np.concatenate([c[2] for c in curves] + [np.zeros(0)])
    x_low, x_high = (float(all_x.min()), float(all_x.max())) if all_x.size else (0.0, 1.0)
    y_low, y_high = (float(all_y.min()), float(all_y.max())) if all_y.size else (0.0, 1.0)
    if x_high <= x_low:
        x_high = x_low + 1.0
    pad = (y_high - y_low) * 0.05 or max(abs(y_high) * 0.05, 0.05)
    y_low, y_high = y_low - pad, y_high + pad

    def to_pixel(x, y):
        px = box[0] + (x - x_low) / (x_high - x_low) * (box[2] - box[0])
        py = box[3] - (y - y_low) / (y_high - y_low) * (box[3] - box[1])
        return px, py

    _draw_axes(draw, font, box, to_pixel, (x_low, x_high), (y_low, y_high))
    for index, (label, xs, ys) in enumerate(curves):
        colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
        points = [to_pixel(x, y) for x, y in zip(xs.tolist(), ys.tolist())]
        if len(points) == 1:
            x, y = points[0]
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        elif points:
            draw.line(points, fill=colour, width=2, joint="curve")
    _draw_legend(draw, font, box, [(label, CURVE_COLOURS[i % len(CURVE_COLOURS)])
                                   for i, (label, _, _) in enumerate(curves)])
    _centred_text(draw, ((box[0] + box[2]) / 2, height - 22), x_label, font)
    if title:
        _centred_text(draw, (width / 2, 18), title, _font(15))
    _vertical_label(image, y_label, font, (16, (box[1] + box[3]) / 2))
    return image


def _finite(xs, ys):
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    keep = np.isfinite(xs) & np.isfinite(ys)
    return xs[keep], ys[keep]


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _draw_axes(draw, font, box, to_pixel, x_range, y_range):
    grid, ink = (225, 225, 225), (40, 40, 40)
    for x in nice_ticks(*x_range):
        px, _ = to_pixel(x, y_range[0])
        draw.line((px, box[1], px, box[3]), fill=grid)
        draw.line((px, box[3], px, box[3] + 5), fill=ink)
        _centred_text(draw, (px, box[3] + 16), f"{x:g}", font)
    for y in nice_ticks(*y_range):
        _, py = to_pixel(x_range[0], y)
        draw.line((box[0], py, box[2], py), fill=grid)
        draw.line((box[0] - 5, py, box[0], py), fill=ink)
        text = f"{y:.4g}"
        text_width = draw.textlength(text, font=font)
        draw.text((box[0] - 8 - text_width, py), text, fill=ink, font=font, anchor="lm")
    draw.rectangle(box, outline=ink)


def _draw_legend(draw, font, box, entries):
    if not entries:
        return
    line_height = 18
    text_width = max(draw.textlength(label, font=font) for label, _ in entries)
    right, top = box[2] - 10, box[1] + 10
    left = right - text_width - 44
    bottom = top + line_height * len(entries) + 8
    draw.rectangle((left, top, right, bottom), fill="white", outline=(150, 150, 150))
    for index, (label, colour) in enumerate(entries):
        y = top + 4 + line_height * index + line_height / 2
        draw.line((left + 8, y, left + 30, y), fill=colour, width=3)
        draw.text((left + 36, y), label, fill=(40, 40, 40), font=font, anchor="lm")


def _centred_text(draw, centre, text, font):
    draw.text(centre, text, fill=(40, 40, 40), font=font, anchor="mm")


def _vertical_label(image, text, font, centre):
    """Text rotated 90 degrees (reading upwards), centred at centre."""
    probe = ImageDraw.Draw(image)
    width = int(probe.textlength(text, font=font)) + 4
    label = Image.new("RGB", (width, 20), "white")
    ImageDraw.Draw(label).text((width / 2, 10), text, fill=(40, 40, 40), font=font, anchor="mm")
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (int(centre[0] - rotated.width / 2), int(centre[1] - rotated.height / 2)))
