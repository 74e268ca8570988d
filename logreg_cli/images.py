"""Image files -> uint8 pixel rows: decode, orient, composite alpha, RGB, resize, unroll.

A row is np.asarray(rgb_image).reshape(-1): H x W x 3 unrolled row-major, n = H * W * 3.
Sizes are (width, height), as Pillow counts them.
"""

import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
# Antialiased downscaling: Lanczos widens its kernel with the reduction factor, and
# reducing_gap first shrinks by whole factors (box filter), which is fast on big photos.
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0
WHITE = (255, 255, 255)


def is_image_name(path):
    """True for a non-hidden file name with an image extension (any case)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def default_jobs():
    return os.cpu_count() or 1


def load_image(source, size, info=None):
    """One image (a path or a binary file object) -> uint8 row of size[1] * size[0] * 3.

    Raises ImageError naming the file and the cause; never decodes a decompression bomb
    (Pillow's warning is treated as an error, the limit is never lifted).
    info: an optional dict; it receives "original_size", the (width, height) of the image
    as stored, turned by its EXIF orientation.
    """
    name = source if isinstance(source, (str, os.PathLike)) else getattr(source, "name", source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                stored_size = image.size
                image.draft("RGB", (max(size),) * 2)  # JPEG decodes at 1/2, 1/4 or 1/8 scale
                oriented = ImageOps.exif_transpose(image)
                if info is not None:
                    turned = oriented.size != image.size
                    info["original_size"] = stored_size[::-1] if turned else stored_size
                rgb = to_rgb(oriented)
                if rgb.size != tuple(size):
                    rgb = rgb.resize(tuple(size), RESAMPLE, reducing_gap=REDUCING_GAP)
                return np.asarray(rgb, dtype=np.uint8).reshape(-1)
    except FileNotFoundError:
        raise ImageError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageError(name, "is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(name, "not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(name, "refused: more pixels than Pillow's decompression-bomb limit") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(name, f"cannot decode ({error})") from None


def to_rgb(image):
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit grey is scaled."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _grey_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_to_rgb(image):
    """16-bit, 32-bit integer and float grey -> 8-bit grey by their value range, not clipping.

    16-bit images map 0..65535 to 0..255; 32-bit integer images likewise map their full
    unsigned 16-bit range when they fit it; float images are taken as 0..1 when they fit it
    and stretched over their own range otherwise.
    """
    values = np.asarray(image)
    if image.mode == "F":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        if low >= 0.0 and high <= 1.0:
            grey = values * 255.0
        else:
            grey = (values - low) * (255.0 / max(high - low, 1e-12))
    else:
        values = values.astype(np.int64)
        low, high = int(values.min()), int(values.max())
        if low >= 0 and high <= 65535:
            grey = values / 257.0
        else:
            grey = (values - low) * (255.0 / max(high - low, 1))
    grey = np.clip(np.rint(np.nan_to_num(grey)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _try_load(path, size):
    try:
        return load_image(path, size), None
    except ImageError as error:
        return None, error


def iter_images(paths, size, jobs=None):
    """Yield (path, row or None, ImageError or None) in input order, decoding in threads.

    Pillow releases the GIL while it decodes and resizes, so threads use every core.
    At most a few batches are in flight, so memory stays flat however many paths come.
    """
    jobs = jobs or default_jobs()
    if jobs == 1:
        for path in paths:
            yield (path, *_try_load(path, size))
        return
    ahead = 4 * jobs
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = deque()
        for path in paths:
            pending.append((path, pool.submit(_try_load, path, size)))
            if len(pending) >= ahead:
                done_path, future = pending.popleft()
                yield (done_path, *future.result())
        for done_path, future in pending:
            yield (done_path, *future.result())


def load_images(paths, size, jobs=None, on_error=None, on_image=None):
    """Decode paths into X (m x n uint8); returns (X, indices of the paths that loaded).

    Failures are passed to on_error(ImageError), which may raise to stop (--strict);
    on_image() is called after each file (for a progress bar).
    """
    paths = [Path(p) for p in paths]
    n = size[0] * size[1] * 3
    X = np.empty((len(paths), n), dtype=np.uint8)
    kept = []
    for index, (_, row, error) in enumerate(iter_images(paths, size, jobs)):
        if error is not None:
            if on_error is not None:
                on_error(error)
        else:
            X[len(kept)] = row
            kept.append(index)
        if on_image is not None:
            on_image()
    return X[: len(kept)], kept
