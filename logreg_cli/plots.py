"""PNG pictures drawn with Pillow alone: learned weights, per-pixel explanations,
learning curves."""

import math

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont


# ---------------------------------------------------------------- weights and explanations

TILE_MIN_SIDE = 256  # small models are enlarged (nearest neighbour) to at least this
MIN_PICTURE_WIDTH = 512  # wide enough to read at 100 % zoom
TEXT_SIZE = 16  # px, Pillow's scalable default font
BAR_SIZE = (320, 18)  # colour bar strip, px
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


def grid_picture(rows, captions, notes, bars=()):
    """Tiles (rows of equal-size PIL images) on white, a caption under each column, the
    colour bars (PIL images, see colour_bar) one under another, then note lines; at least
    MIN_PICTURE_WIDTH wide, wider to fit the longest text or bar."""
    font = _font(TEXT_SIZE)
    line = _line_height(font)
    tile_width, tile_height = rows[0][0].size
    columns = len(rows[0])
    texts = list(captions) + list(notes)
    text_width = max(font.getlength(text) for text in texts) if texts else 0
    column_width = max(tile_width, math.ceil(max(font.getlength(c) for c in captions)))
    bars_width = max((bar.width for bar in bars), default=0)
    width = max(2 * MARGIN + columns * column_width + (columns - 1) * GAP,
                2 * MARGIN + math.ceil(text_width), 2 * MARGIN + bars_width, MIN_PICTURE_WIDTH)
    tiles_height = len(rows) * tile_height + (len(rows) - 1) * GAP
    bars_height = sum(bar.height + GAP for bar in bars)
    height = (2 * MARGIN + tiles_height + line + GAP + bars_height
              + len(notes) * line + (GAP if notes else 0))
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    grid_left = (width - columns * column_width - (columns - 1) * GAP) // 2  # centred
    for row_index, row in enumerate(rows):
        top = MARGIN + row_index * (tile_height + GAP)
        for column, tile in enumerate(row):
            left = grid_left + column * (column_width + GAP) + (column_width - tile_width) // 2
            picture.paste(tile, (left, top))
    captions_top = MARGIN + tiles_height + 2
    for column, caption in enumerate(captions):
        centre = grid_left + column * (column_width + GAP) + column_width / 2
        draw.text((centre - font.getlength(caption) / 2, captions_top), caption, fill=INK,
                  font=font)
    top = captions_top + line + GAP
    for bar in bars:
        picture.paste(bar, (MARGIN, top))
        top += bar.height + GAP
    for index, note in enumerate(notes):
        draw.text((MARGIN, top + index * line), note, fill=INK, font=font)
    return picture


def colour_bar(colours_of, limit, title):
    """A legend: title, a strip of colours_of(values) for values from -limit to +limit
    (colours_of: float64 array -> uint8 RGB), ticks -limit, 0, +limit under it."""
    font = _font(TEXT_SIZE - 2)
    line = _line_height(font)
    strip_width, strip_height = BAR_SIZE
    values = np.linspace(-limit, limit, strip_width) if limit > 0 else np.zeros(strip_width)
    strip = np.repeat(colours_of(values)[None, :, :], strip_height, axis=0)
    left = math.ceil(font.getlength(f"{-limit:+.3g}") / 2) + 2  # room for the end ticks
    width = max(2 * left + strip_width, math.ceil(font.getlength(title)) + 4)
    bar = Image.new("RGB", (width, line + strip_height + 6 + line), "white")
    draw = ImageDraw.Draw(bar)
    draw.text((0, 0), title, fill=INK, font=font)
    bar.paste(Image.fromarray(np.ascontiguousarray(strip), "RGB"), (left, line))
    draw.rectangle((left - 1, line - 1, left + strip_width, line + strip_height), outline=INK)
    for fraction, value in ((0.0, -limit), (0.5, 0.0), (1.0, limit)):
        x = left + fraction * (strip_width - 1)
        draw.line((x, line + strip_height, x, line + strip_height + 4), fill=INK)
        draw.text((x, line + strip_height + 5), f"{value:+.3g}" if value else "0", fill=INK,
                  font=font, anchor="ma")
    return bar


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
    bars = [colour_bar(lambda v: np.repeat(signed_rgb(v, rgb_limit)[:, None], 3, axis=1),
                       rgb_limit, "top row: each channel's weight (grey = 0)"),
            colour_bar(lambda v: diverging_colours(v, sum_limit), sum_limit,
                       "bottom row: weights summed over R, G, B")]
    notes = ["brighter / red: the pixel raises the score of the class named above"]
    return grid_picture(rows, names, notes, bars)


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
    bar = colour_bar(lambda v: diverging_colours(v, limit), limit,
                     "contribution of each pixel to z (red raises z, blue lowers it)")
    return grid_picture(panels, ["image (model size)", "contribution to z", "overlay"],
                        list(caption_lines), [bar])


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


ZIGZAG_TURNS = 0.3  # share of consecutive steps that change direction
MEDIAN_WINDOW = 24  # even: a cost alternating between two values has its midpoint as median


def zigzags(ys):
    """True when ys (1-D) changes direction on more than ZIGZAG_TURNS of its steps."""
    steps = np.sign(np.diff(ys))
    steps = steps[steps != 0]
    return steps.size >= 10 and float(np.mean(steps[1:] != steps[:-1])) > ZIGZAG_TURNS


def running_median(ys, window=MEDIAN_WINDOW):
    """The median of the window around each value (the ends repeated), float64."""
    before = window // 2
    padded = np.pad(np.asarray(ys, dtype=np.float64), (before, window - 1 - before),
                    mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.median(windows, axis=1)


def _pale(colour):
    rgb = np.array(ImageColor.getrgb(colour), dtype=np.float64)
    return tuple(int(v) for v in np.rint(rgb + 0.65 * (255 - rgb)))


def learning_curve_image(series, title="", size=CURVE_SIZE, x_label="epoch", y_label="cost",
                         marks=(), legend_low=False):
    """Draw series [(label, xs, ys), ...] as lines on labelled axes with a legend -> a PIL
    image. Non-finite values are left out. marks: (x, label) pairs drawn as dashed vertical
    lines (the kept epoch). A series that zigzags (a too-high rate) is drawn thin and pale
    with its running median over it, so that its trend stays readable. legend_low puts the legend in the lower right
    corner (for curves that rise to the upper right, as ROC curves do)."""
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
    legend = []
    for index, (label, xs, ys) in enumerate(curves):
        colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
        points = [to_pixel(x, y) for x, y in zip(xs.tolist(), ys.tolist())]
        if len(points) == 1:
            x, y = points[0]
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        elif points and zigzags(ys):
            draw.line(points, fill=_pale(colour), width=1)
            trend = [to_pixel(x, y) for x, y in zip(xs.tolist(), running_median(ys).tolist())]
            draw.line(trend, fill=colour, width=3, joint="curve")
            label = f"{label} (pale: each epoch; line: median of {MEDIAN_WINDOW})"
        elif points:
            draw.line(points, fill=colour, width=2, joint="curve")
        legend.append((label, colour))
    for x, text in marks:
        if x_low <= x <= x_high:
            _draw_mark(draw, font, box, to_pixel(x, y_low)[0], text)
    _draw_legend(draw, font, box, legend, legend_low)
    _centred_text(draw, ((box[0] + box[2]) / 2, height - 22), x_label, font)
    if title:
        _centred_text(draw, (width / 2, 18), title, _font(15))
    _vertical_label(image, y_label, font, (16, (box[1] + box[3]) / 2))
    return image


def model_learning_curve(model, title):
    """The learning curve image of a trained model's history (cost, and validation cost
    when it had validation data) with the epoch of its saved weights marked."""
    history = model.history
    series = [("cost", history["epoch"], history["cost"])]
    if "val_cost" in history:
        series.append(("validation cost", history["epoch"], history["val_cost"]))
    kept = kept_epoch(model)
    marks = [] if kept is None else [(kept, f"kept: epoch {kept}")]
    return learning_curve_image(series, title=title, marks=marks)


def kept_epoch(model):
    """The epoch whose weights the model holds: validation's kept epoch, else the last one
    of the history (None without a history)."""
    validation = model.metadata.get("validation")
    if isinstance(validation, dict) and validation.get("kept_epoch") is not None:
        return validation["kept_epoch"]
    epochs = model.history.get("epoch") or []
    return epochs[-1] if epochs else None


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


def _draw_mark(draw, font, box, px, text):
    """A dashed vertical line at px inside box, text beside its top."""
    mark_colour = (90, 90, 90)
    for top in range(int(box[1]), int(box[3]), 10):
        draw.line((px, top, px, min(top + 5, box[3])), fill=mark_colour, width=2)
    anchor = "rd" if px > (box[0] + box[2]) / 2 else "ld"
    draw.text((px - 6 if anchor == "rd" else px + 6, box[3] - 8), text, fill=mark_colour,
              font=font, anchor=anchor)


def _draw_legend(draw, font, box, entries, low=False):
    if not entries:
        return
    line_height = 18
    text_width = max(draw.textlength(label, font=font) for label, _ in entries)
    height = line_height * len(entries) + 8
    right = box[2] - 10
    top = box[3] - 10 - height if low else box[1] + 10
    left = right - text_width - 44
    bottom = top + height
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
