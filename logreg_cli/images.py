"""Image files -> uint8 pixel rows: decode, orient, composite alpha, RGB, resize, unroll.

A row is np.asarray(rgb_image).reshape(-1): H x W x 3 unrolled row-major, n = H * W * 3.
Sizes are (width, height), as Pillow counts them.

Choices (documented in the README):
- The EXIF orientation is applied only by ImageOps.exif_transpose, once (Pillow turns some
  formats, such as TIFF, while loading them).
- Transparency (RGBA, LA, PA, palette or grey/RGB with a transparent colour) is composited
  on white, so a transparent background looks like paper, not like black; a PNG colour key
  is brought to the scale of the decoded pixels first (2/4-bit grey, 16-bit grey and RGB).
- 16-bit grey is scaled 0..65535 -> 0..255 (value / 257), never clipped; 32-bit integer grey
  likewise when its values fit 16 bits, else stretched over its own range; float grey is
  taken as 0..1 when it fits that, else stretched over its own range.
- Resizing uses Lanczos (an antialiasing filter: its kernel widens with the reduction, so fine
  detail is averaged, not aliased) with reducing_gap=3: Pillow first shrinks by a whole factor
  with reduce() (a box filter) while keeping at least 3x the target size, then applies
  Lanczos; Pillow documents a gap of 3 or more as indistinguishable from plain Lanczos in
  most cases, and it is much faster on photos.
- JPEGs are decoded at 1/2, 1/4 or 1/8 scale by the decoder (Image.draft) when that still
  leaves at least twice the target size, so Lanczos does the last, antialiasing step.
- An image with more pixels than Image.MAX_IMAGE_PIXELS (Pillow's decompression-bomb limit)
  is refused before it is decoded, also between 1x and 2x the limit, where Pillow itself
  would only warn. The limit is never lifted.
- A JPEG/MPO without its end-of-image marker, or a PNG without IEND, is damaged: cut short,
  maybe padded back to its length.
- A path is opened once, without blocking; only a regular file is read (devices, FIFOs and
  sockets are refused by what they are), and what follows asks that descriptor, so a file
  deleted meanwhile is either "no such file" or read whole.
"""

import errno
import json
import mmap
import os
import re
import signal
import struct
import sys
import warnings
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, LogregError
from .npzfile import open_regular_file

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
RESAMPLE = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0
DRAFT_MARGIN = 2  # let the JPEG decoder shrink only down to twice the target size
WHITE = (255, 255, 255)
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Below this many images a process pool costs more to start than it saves.
PROCESS_MIN_IMAGES = 256
CHUNK_BYTES = 256 * 1024
# Files this big on average (photos) decode mostly outside the GIL: threads do as well as
# processes there (tests/bench/bench_load.py), without forking.
THREADS_FROM_BYTES = 256 * 1024
# What Pillow raises on damaged image data, once a file has opened.
# struct.error and KeyError too: Pillow's parsers raise them on damaged headers and metadata
# (Image.open turns them into SyntaxError, but metadata read later, such as EXIF, does not).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError,
                 struct.error)


def is_image_name(path):
    """True for a non-hidden file name with an image extension (any case)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def default_jobs():
    """The cores this process may run on (threads.usable_cores)."""
    from .threads import usable_cores

    return usable_cores()


# ---------------------------------------------------------------- one image


def load_image(source, size, info=None):
    """One image (a path or a binary file object) -> uint8 row of size[1] * size[0] * 3.

    Raises ImageError naming the file and the cause. A decompression bomb is refused before
    anything is decoded. Thread-safe.
    info: an optional dict; it receives "original_size", the (width, height) of the image
    as a person sees it (turned by its EXIF orientation), and "mode", Pillow's mode as stored.
    """
    name = source_name(source)
    with _opened(source, name) as image:
        try:
            stored_size = image.size
            target = max(size) * DRAFT_MARGIN
            image.draft("RGB", (target, target))  # JPEG only; a no-op for other formats
            rgb, viewed_size, mode = _decode_upright(image, stored_size)
            if info is not None:
                info["original_size"] = viewed_size
                info["mode"] = mode
            if rgb.size != tuple(size):
                rgb = rgb.resize(tuple(size), RESAMPLE, reducing_gap=REDUCING_GAP)
            return np.asarray(rgb, dtype=np.uint8).reshape(-1)
        except DECODE_ERRORS as error:
            raise ImageError(name, _decode_cause(error)) from None


def decode_full(source):
    """One image -> (RGB uint8 array H x W x 3 at its full size as viewed, Pillow's mode).

    For auditing (pixel hashes); raises ImageError like load_image. The same decoding as
    load_image (orientation, transparency, grey levels), without the draft and the resize.
    """
    name = source_name(source)
    with _opened(source, name) as image:
        try:
            rgb, _, mode = _decode_upright(image, image.size)
            return np.asarray(rgb, dtype=np.uint8), mode
        except DECODE_ERRORS as error:
            raise ImageError(name, _decode_cause(error)) from None


def image_rows(images, size):
    """Images in any of the API's forms -> m x n uint8 rows at size (width, height).

    images: a path, a binary file object, a PIL image, or a uint8 array H x W x 3; a list
    of these; a uint8 array m x H x W x 3; or m x n uint8 rows, returned as they are.
    Paths and files are decoded as load_image does; a PIL image or an array is oriented,
    composited and made RGB the same way (a copy: the caller's image is left alone), then
    resized as load_image resizes. Raises ImageError (a path or file) or LogregError.
    """
    if isinstance(images, np.ndarray) and images.ndim == 2:
        if images.dtype != np.uint8:
            raise LogregError(f"pixel rows must be uint8, got {images.dtype}")
        return images
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)) or \
            hasattr(images, "read"):
        images = [images]
    X = np.empty((len(images), size[0] * size[1] * 3), dtype=np.uint8)
    for index, image in enumerate(images):
        X[index] = _image_row(image, size)
    return X


def _image_row(image, size):
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise LogregError(f"an image array must be H x W x 3 uint8, got {image.dtype} "
                              f"{image.shape}")
        if image.shape[1::-1] == tuple(size):
            return image.reshape(-1)
        image = Image.fromarray(image, "RGB")
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        return load_image(image, size)
    if not isinstance(image, Image.Image):
        raise LogregError(f"an image must be a path, a binary file, a PIL image or a uint8 "
                          f"array, got {type(image).__name__}")
    name = getattr(image, "filename", "") or "<PIL image>"
    try:
        image = image.copy()  # loaded: no file left to check for a missing end marker
        _widen_colour_key(image)
        orient(image)
        rgb = to_rgb(image)
        if rgb.size != tuple(size):
            rgb = rgb.resize(tuple(size), RESAMPLE, reducing_gap=REDUCING_GAP)
        return np.asarray(rgb, dtype=np.uint8).reshape(-1)
    except DECODE_ERRORS as error:
        raise ImageError(name, _decode_cause(error)) from None


def _decode_upright(image, stored_size):
    """An opened image (maybe drafted) -> (RGB image upright, viewed (width, height), mode).

    stored_size is image.size before any draft (a JPEG's draft shrinks it). The viewed size
    is that, turned when the orientation swaps width and height: what a person sees, and
    what predict -v and check report.
    """
    mode = image.mode
    _refuse_unended(image)
    _widen_colour_key(image)
    turned = orient(image)
    viewed_size = stored_size[::-1] if turned else stored_size
    return to_rgb(image), viewed_size, mode


def source_name(source):
    """How a message names a source: the path as given, or the file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", "<stream>")


def orient(image):
    """Turn image upright, in place, as its EXIF orientation says; True when turned 90 degrees.

    Only through ImageOps.exif_transpose, which loads the image first: some formats (TIFF,
    with Pillow >= 13) are already turned by loading and lose their tag then, so reading the
    tag ourselves would turn them twice. in_place spares a copy of unturned images.
    """
    try:
        image.getexif()
    except DECODE_ERRORS:
        # A damaged EXIF block holds no orientation we can read: the image is read as stored,
        # in every format, as Pillow reads such a JPEG (it drops the error when it opens it)
        # and as a viewer shows it.
        return False
    before = image.size
    ImageOps.exif_transpose(image, in_place=True)
    return image.size != before


JPEG_END = b"\xff\xd9"  # EOI, the end-of-image marker
PNG_END = b"\0\0\0\0IEND"  # the IEND chunk's length and type (not its CRC: some writers err)
JPEG_START_OF_SCAN = 0xDA
JPEG_MARKERS_WITHOUT_LENGTH = frozenset({0x00, 0x01, 0xD8, *range(0xD0, 0xD8)})  # 00: junk
FIRST_TAIL_BLOCK = 256
LAST_TAIL_BLOCK = 1 << 20


class DamagedImage(ValueError):
    """The image data ends before the picture does, though the decoder would not notice."""


def _refuse_unended(image):
    """Raise DamagedImage when a JPEG, MPO or PNG lacks its end marker after its image data.

    A file cut short and padded to its old length (with zeros, as a failed copy or download
    leaves it) may decode without an error, the padding turned into garbage pixels: the
    missing end marker tells. JPEG: an EOI (FF D9, never found in entropy-coded data) after
    the start of the first scan; PNG: the IEND chunk after the first IDAT. Bytes after the
    marker (camera padding, an appended video) are allowed. The file is searched backwards
    from its end, so a whole file is read only when it is damaged.
    """
    if image.fp is None or not image.tile:
        return
    if image.format in ("JPEG", "MPO"):
        needle, kind = JPEG_END, "no end-of-image marker after the JPEG data"
    elif image.format == "PNG":
        needle, kind = PNG_END, "no IEND chunk after the PNG data"
    else:
        return
    with _random_reader(image.fp) as (read_at, size):
        data = _jpeg_scan_start(read_at) if needle is JPEG_END else image.tile[0].offset
        if data is not None and not _found_backwards(read_at, size, needle, data):
            raise DamagedImage(f"{kind}: cut short, maybe padded")


@contextmanager
def _random_reader(fp):
    """(read_at(offset, count) -> bytes, size of the file) for a binary file object.

    A real file is read with os.pread, which leaves its position and buffer alone (seeking
    would throw away what Pillow has buffered and cost a re-read); a stream such as
    BytesIO is read with seek and read, and put back where it was.
    """
    try:
        descriptor = fp.fileno()
    except (AttributeError, OSError, ValueError):
        descriptor = None
    if descriptor is not None and hasattr(os, "pread"):
        yield (lambda offset, count: os.pread(descriptor, count, offset),
               os.fstat(descriptor).st_size)
        return

    def read_at(offset, count):
        fp.seek(offset)
        return fp.read(count)

    resume = fp.tell()
    try:
        yield read_at, fp.seek(0, os.SEEK_END)
    finally:
        fp.seek(resume)


def _jpeg_scan_start(read_at):
    """Offset of the first scan's data, walking the marker segments; None if not found
    (junk between segments that Pillow skips leaves the file to Pillow's judgement)."""
    position = 2  # after SOI
    while True:
        head = read_at(position, 4)
        if len(head) < 2 or head[0] != 0xFF:
            return None
        marker = head[1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
        elif marker in JPEG_MARKERS_WITHOUT_LENGTH:
            position += 2
        elif len(head) < 4:
            return None
        else:
            position += 2 + int.from_bytes(head[2:4], "big")
            if marker == JPEG_START_OF_SCAN:
                return position


def _found_backwards(read_at, size, needle, start):
    """True when needle occurs in the file between offset start and size; reads from the
    end, in blocks growing from FIRST_TAIL_BLOCK (the needle is usually in the last bytes)."""
    position = size
    following = b""  # the start of the block read before, for a needle across two blocks
    block_size = FIRST_TAIL_BLOCK
    while position > start:
        begin = max(start, position - block_size)
        block = read_at(begin, position - begin) + following
        if needle in block:
            return True
        following, position = block[: len(needle) - 1], begin
        block_size = min(2 * block_size, LAST_TAIL_BLOCK)
    return False


# Pillow widens 2- and 4-bit grey PNG samples to 0..255 and keeps the top byte of 16-bit RGB
# ones, but gives their colour key (tRNS) in the file's units: the key is widened the same way.
KEY_WIDENING = {
    "L;2": lambda key: key * 85,
    "L;4": lambda key: key * 17,
    "RGB;16B": lambda key: tuple(value >> 8 for value in key),
}


def _widen_colour_key(image):
    """Before loading: bring a PNG's colour key to the scale of the pixels Pillow decodes."""
    key = image.info.get("transparency")
    if key is None or image.format != "PNG" or not image.tile:
        return
    widen = KEY_WIDENING.get(image.tile[0].args)
    if widen is not None:
        image.info["transparency"] = widen(key)


@contextmanager
def _opened(source, name):
    """Image.open with every failure turned into an ImageError; refuses bombs unread."""
    with _image_file(source, name) as file:
        try:
            image = Image.open(file)
        except UnidentifiedImageError:
            raise ImageError(name, _unidentified_cause(file)) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageError(name, _bomb_cause(None, error)) from None
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise ImageError(name, f"cannot read ({error})") from None
        with image:
            # Pillow only warns between 1x and 2x its limit (and the warning is an error only
            # where a caller made it one), so the size is checked here, before any decoding.
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and image.width * image.height > limit:
                raise ImageError(name, _bomb_cause(image.size))
            yield image


@contextmanager
def _image_file(source, name):
    """A binary file of a path, opened here once and without blocking (a FIFO without a
    writer would block open), or a file object as given. Anything but a regular file is
    refused by what it is (npzfile.open_regular_file); a file deleted after it was listed
    is "no such file"."""
    if not isinstance(source, (str, os.PathLike)):
        yield source
        return
    try:
        file = open_regular_file(source, lambda kind: ImageError(name, f"is {kind}"),
                                 "an image file")
    except OSError as error:
        raise ImageError(name, _open_cause(error)) from None
    with file:
        yield file


def _unidentified_cause(file):
    """Empty, damaged (it starts like a format Pillow knows), or not an image.

    Emptiness is found by reading, not by the size: files such as those of /proc say 0
    bytes and hold text. The formats' own signature tests (Pillow's accept functions) tell
    a damaged image, such as a TIFF cut before its directory, from a text file.
    """
    file.seek(0)
    head = file.read(16)
    if not head:
        return "empty file (0 bytes)"
    claimed = _format_by_signature(head)
    if claimed:
        return f"truncated or damaged (it starts like a {claimed} file but cannot be read)"
    return "not an image Pillow can read"


def _format_by_signature(head):
    """The first format whose signature test accepts head, or None (formats without a test,
    which Pillow tries on anything, are left out)."""
    for fmt, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(head):
                return fmt
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error):  # as Pillow does
            continue
    return None


def _open_cause(error):
    """Why a path could not be looked up or opened, in a user's words."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, PermissionError):
        return "permission denied"
    return f"cannot open ({error.strerror or error})"


def _bomb_cause(size, error=None):
    """'refused: W x H = N pixels, over Pillow's decompression-bomb limit of L'."""
    if size is not None:
        claimed = f"{size[0]} x {size[1]} = {size[0] * size[1]} pixels"
    else:  # Pillow refused it on opening; its message gives the pixel count
        found = re.search(r"\((\d+) pixels\)", str(error))
        claimed = f"{found.group(1)} pixels" if found else "more pixels"
    return f"refused: {claimed}, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS}"


# Words of Pillow's and its decoders' messages about data that stops early or is corrupt.
DAMAGE_WORDS = ("truncated", "broken", "decoder error", "corrupt", "failed to read")


def _decode_cause(error):
    text = str(error) or type(error).__name__
    if isinstance(error, (EOFError, DamagedImage)) or any(
            word in text.lower() for word in DAMAGE_WORDS):
        return f"truncated or damaged ({text})"
    return f"cannot decode ({text})"


def to_rgb(image):
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit grey is scaled."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return _grey_to_rgb(image)
    if image.mode not in ALPHA_MODES and "transparency" in image.info:
        image = image.convert("RGBA")  # palette, grey or RGB with a transparent colour
    if image.mode in ALPHA_MODES:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_to_rgb(image):
    """16-bit, 32-bit integer and float grey -> 8-bit grey by their value range, not clipping;
    pixels equal to a colour key (info["transparency"]) become white.

    16-bit images map 0..65535 to 0..255; 32-bit integer images likewise when their values
    fit 16 bits, else their own min..max; float images are taken as 0..1 when they fit it
    and stretched over their own range otherwise.
    """
    values = np.asarray(image)
    with np.errstate(invalid="ignore", over="ignore"):  # inf and NaN pixels: nan_to_num below
        grey = _grey_levels(image.mode, values)
    grey = np.clip(np.rint(np.nan_to_num(grey)), 0, 255).astype(np.uint8)
    key = image.info.get("transparency")
    if isinstance(key, (int, float)):  # a colour key, in the stored units: composited on white
        grey[values == key] = 255
    return Image.fromarray(grey, "L").convert("RGB")


def _grey_levels(mode, values):
    """Float grey levels 0..255 (maybe out of range or not finite) of a grey pixel array."""
    if mode == "F":
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if low >= 0.0 and high <= 1.0:
            return values * np.float32(255.0)
        return (values - np.float32(low)) * np.float32(255.0 / max(high - low, 1e-12))
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high <= 65535:
        return values.astype(np.float32) / np.float32(257.0)
    return (values.astype(np.float64) - low) * (255.0 / max(high - low, 1))


# ---------------------------------------------------------------- many images


@contextmanager
def refusing_bombs():
    """Make Pillow's DecompressionBombWarning an error (not a printed warning) in this block.

    load_image refuses such images anyway; this keeps Pillow's own warning text off stderr.
    Enter it in the thread that starts worker threads (warning filters are per process).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _try_load(path, size):
    try:
        return load_image(path, size), None
    except ImageError as error:
        return None, error


def iter_images(paths, size, jobs=None):
    """Yield (path, row or None, ImageError or None) in input order, decoding in threads.

    paths may be a lazy iterable (stdin): results stream out as soon as they are ready, in
    order. Pillow releases the GIL while it decodes and resizes, so threads use every core on
    photos. At most a few images per thread are in flight, so memory stays flat.
    """
    for path, (row, error) in ordered_map(lambda p: _try_load(p, size), paths, jobs):
        yield path, row, error


def ordered_map(function, items, jobs=None):
    """Yield (item, function(item)) in input order, computed in up to jobs threads.

    Lazy: items are consumed a few per thread ahead of what has been yielded. Pillow's
    DecompressionBombWarning is an error meanwhile (see refusing_bombs).
    """
    jobs = jobs or default_jobs()
    with refusing_bombs():
        if jobs == 1:
            for item in items:
                yield item, function(item)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            pending = deque()
            try:
                for item in items:
                    pending.append((item, pool.submit(function, item)))
                    if len(pending) >= 4 * jobs:
                        done, future = pending.popleft()
                        yield done, future.result()
                while pending:
                    done, future = pending.popleft()
                    yield done, future.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)


def typical_file_bytes(paths, sample=16):
    """Mean size of the first few files that exist (CHUNK_BYTES when none does)."""
    sizes = []
    for path in paths[:sample]:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            pass
    return max(1.0, sum(sizes) / len(sizes)) if sizes else float(CHUNK_BYTES)


def chunk_length(paths, jobs, typical_bytes):
    """Paths per worker task: about CHUNK_BYTES of files, 1 to 32, a few tasks per worker.

    Small files go in batches so the cost of a task is spread; big ones one by one, so that
    no worker is left idle at the end while another works through a batch.
    """
    by_bytes = int(CHUNK_BYTES // typical_bytes)
    return max(1, min(32, by_bytes, len(paths) // (jobs * 4) or 1))


def _can_fork():
    """True where decoding workers are forked (Linux), else False (threads only).

    fork starts workers in milliseconds with numpy and Pillow already imported, and never
    re-runs the user's main script (forkserver and spawn do both, which costs more than
    it saves on a few thousand small images); elsewhere (macOS, Windows) fork is unsafe or
    missing, so threads are used.
    """
    return sys.platform.startswith("linux") and hasattr(os, "fork")


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# A worker's exit status when it ran out of memory (the parent then raises MemoryError).
WORKER_OUT_OF_MEMORY = 12


def _end_with_parent(parent_pid):
    """Have the kernel kill this worker when its parent ends, however it ends (SIGKILL
    included), so that no worker is left decoding for nobody (Linux: prctl via ctypes).

    The kernel sends the signal when the *thread* that forked the worker ends; workers are
    forked by the thread that calls load_images, which outlives them. If the parent died
    before the prctl took effect, this worker has been adopted: getppid() no longer names
    the parent, so it ends.
    """
    import ctypes  # imported by the parent before forking: free here

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent's clean-up is all there is
        pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _release_standard_streams():
    """Point the worker's stdin, stdout and stderr at /dev/null.

    A worker writes nothing (its reports travel through its own pipe), so holding the
    parent's terminal or pipes open would only keep a reader (`logreg ... | wc -c`) from
    seeing the end of the output after the parent has gone.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _load_chunk(rows, start, paths, size):
    """Worker: decode paths into rows start, start+1, ... of the shared output.

    Returns [offset in the chunk, path, cause] for each file that failed: plain data, as
    only that crosses the pipe; the pixels are already in place.
    """
    failures = []
    for offset, path in enumerate(paths):
        row, error = _try_load(path, size)
        if error is None:
            rows[start + offset] = row
        else:
            failures.append([offset, error.path, error.cause])
    return failures


def load_images(paths, size, jobs=None, on_error=None, on_image=None,
                min_for_processes=None):
    """Decode paths into X (m x n uint8); returns (X, indices of the paths that loaded).

    The rows of X follow the order of paths, whatever the number of jobs. Failures are
    passed to on_error(ImageError), in path order, which may raise to stop (--strict);
    on_image() is called after each file (for a progress bar).

    Threads scale on big files such as photos (the decoder releases the GIL) but not on
    small images, where Pillow's Python-level work holds it; so for min_for_processes paths
    (default PROCESS_MIN_IMAGES, read at each call) or more of small files (under THREADS_FROM_BYTES), chunks of paths go to worker
    processes, which write their rows straight into X (shared memory), and fewer small
    files are decoded in this thread (a pool would cost more than it saves).
    """
    paths = [Path(p) for p in paths]
    jobs = jobs or default_jobs()
    if min_for_processes is None:
        min_for_processes = PROCESS_MIN_IMAGES
    shape = (len(paths), size[0] * size[1] * 3)
    _check_fits_in_memory(shape, size)
    if jobs > 1:
        typical_bytes = typical_file_bytes(paths)
        if typical_bytes < THREADS_FROM_BYTES:
            if len(paths) >= min_for_processes and _can_fork():
                chunk = chunk_length(paths, jobs, typical_bytes)
                return _load_in_processes(paths, size, shape, jobs, chunk, on_error, on_image)
            jobs = 1  # threads only slow small files down (measured); one is best here
    X = np.empty(shape, dtype=np.uint8)
    kept = []
    results = iter_images(paths, size, jobs)
    try:
        for index, (_, row, error) in enumerate(results):
            if error is not None:
                if on_error is not None:
                    on_error(error)
            else:
                X[len(kept)] = row
                kept.append(index)
            if on_image is not None:
                on_image()
    finally:
        results.close()
    return X[: len(kept)], kept


def _check_fits_in_memory(shape, size):
    """Refuse, before decoding anything, an X larger than this machine's memory."""
    needed = shape[0] * shape[1]
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > available:
        raise LogregError(f"not enough memory: --size {size[0]}x{size[1]} is too large for "
                          f"{shape[0]} images ({needed / 1e9:.1f} GB of pixels, "
                          f"{available / 1e9:.1f} GB of memory); use a smaller --size")


def _load_in_processes(paths, size, shape, jobs, chunk, on_error, on_image):
    """Decode paths in up to `jobs` forked workers that write their rows straight into X (an
    anonymous shared mapping) and report each chunk's failures through their own pipe.

    Chunks are handed out as tokens on a pipe that every worker reads (_Tasks), so a free
    worker takes the next one whoever is slow; this thread gathers the reports from the
    workers' pipes and passes them on in path order. There is no helper thread (a
    ProcessPoolExecutor has two, and when memory is short one fails to start and the pool
    hangs): every failure, a fork or a mapping refused for lack of memory, a worker that
    died, surfaces here. The workers end with this call, however it ends (done, --strict
    stop, Ctrl-C), and with this process if it is killed (see _end_with_parent).
    """
    import ctypes  # noqa: F401  (once here rather than in every worker: see _end_with_parent)

    buffer = mmap.mmap(-1, max(1, shape[0] * shape[1]))  # anonymous, shared with forked workers
    X = np.frombuffer(buffer, dtype=np.uint8, count=shape[0] * shape[1]).reshape(shape)
    starts = range(0, len(paths), chunk)
    tasks = _Tasks(len(starts))
    workers = []
    failed = []
    try:
        for _ in range(min(jobs, len(starts))):
            workers.append(_start_worker(X, paths, starts, chunk, size, tasks))
        tasks.workers_started(ahead=2 * len(workers))
        reports = _Reports(workers)
        for index, start in enumerate(starts):
            failures = reports.wait_for(index)
            tasks.hand_out(1)
            _report_chunk(start, len(paths[start : start + chunk]), failures, failed, on_error,
                          on_image)
    finally:
        tasks.close()
        for worker in workers:
            worker.stop()
    if not failed:
        return X, list(range(len(paths)))
    kept = np.setdiff1d(np.arange(len(paths)), failed)
    return X[kept], kept.tolist()  # a compact copy; X's rows stay in path order


class _Tasks:
    """The chunk numbers, written as 4-byte tokens on a pipe that every worker reads.

    Every write is whole tokens and every read asks for one, so each read takes exactly one
    token (pipe reads and writes this small are atomic): each chunk goes to one worker,
    whichever is free first. A few tokens are handed out ahead of the reports; when all
    are out, the write end is closed and the workers read the end of the pipe and exit.
    """

    TOKEN = 4

    def __init__(self, count):
        self.count = count
        self.handed_out = 0
        self.read_end, self.write_end = os.pipe()

    def workers_started(self, ahead):
        """The parent's side, once every worker is forked: it only writes."""
        os.close(self.read_end)
        self.read_end = None
        self.hand_out(ahead)

    def hand_out(self, tokens):
        end = min(self.count, self.handed_out + tokens)
        if end > self.handed_out and self.write_end is not None:
            try:
                os.write(self.write_end, b"".join(
                    index.to_bytes(self.TOKEN, "little") for index in range(self.handed_out, end)))
            except BrokenPipeError:  # every worker has ended: _Reports says why
                pass
            self.handed_out = end
        if self.handed_out == self.count:
            self.close()

    def take(self):
        """A worker's side: the next chunk number, or None when there is no more."""
        token = os.read(self.read_end, self.TOKEN)
        return int.from_bytes(token, "little") if len(token) == self.TOKEN else None

    def close(self):
        for name in ("read_end", "write_end"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


class _Worker:
    """A forked decoding process and the read end of its report pipe."""

    def __init__(self, pid, reports_fd):
        self.pid = pid
        self.reports_fd = reports_fd
        self.pending = b""  # the start of a report line not yet complete
        self.status = None  # the exit status, once reaped

    def reap(self):
        """Wait for the process to end; returns its exit status (negative: killed by a signal)."""
        if self.status is None:
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def stop(self):
        """Kill the process if it still runs and reap it; close the pipe."""
        if self.reports_fd is not None:
            os.close(self.reports_fd)
            self.reports_fd = None
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # its rows are not wanted any more
            except ProcessLookupError:
                pass
            self.reap()


class _Reports:
    """Report lines `[chunk, failures]` read from all workers' pipes as they come."""

    def __init__(self, workers):
        import selectors

        self.received = {}
        self.selector = selectors.DefaultSelector()
        for worker in workers:
            self.selector.register(worker.reports_fd, selectors.EVENT_READ, worker)

    def wait_for(self, index):
        """The failures of chunk `index`; raises when a worker died before sending its own."""
        while index not in self.received:
            if not self.selector.get_map():
                raise LogregError("an image-decoding process died; try again with --jobs 1")
            for key, _ in self.selector.select():
                self._read(key.data)
        return self.received.pop(index)

    def _read(self, worker):
        data = os.read(worker.reports_fd, 1 << 16)
        if data:
            *lines, worker.pending = (worker.pending + data).split(b"\n")
            for line in lines:
                index, failures = json.loads(line)
                self.received[index] = failures
            return
        self.selector.unregister(worker.reports_fd)
        status = worker.reap()
        if status == WORKER_OUT_OF_MEMORY:
            raise MemoryError("an image-decoding process ran out of memory")
        if status != 0:
            raise LogregError("an image-decoding process died (out of memory?); "
                              "try again with --jobs 1 to find the file")


def _start_worker(rows, paths, starts, chunk, size, tasks):
    """Fork a worker that decodes the chunks it takes from tasks and reports on a pipe."""
    parent = os.getpid()
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except BaseException as error:
        os.close(read_end)
        os.close(write_end)
        if isinstance(error, OSError) and error.errno != errno.ENOMEM:  # ENOMEM: see cli
            raise LogregError(f"cannot start an image-decoding process ({error.strerror}); "
                              "try --jobs 1") from None
        raise
    if pid == 0:  # the worker: it never returns from here
        status = 1
        try:
            os.close(read_end)
            os.close(tasks.write_end)  # else the workers would never see the end of the tasks
            _end_with_parent(parent)
            _release_standard_streams()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with os.fdopen(write_end, "wb") as reports:
                while (index := tasks.take()) is not None:
                    start = starts[index]
                    failures = _load_chunk(rows, start, paths[start : start + chunk], size)
                    reports.write(json.dumps([index, failures]).encode() + b"\n")
                    reports.flush()
            status = 0
        except MemoryError:
            status = WORKER_OUT_OF_MEMORY
        finally:
            os._exit(status)
    os.close(write_end)
    return _Worker(pid, read_end)


def _report_chunk(start, length, failures, failed, on_error, on_image):
    failures = {offset: ImageError(path, cause) for offset, path, cause in failures}
    for offset in range(length):
        if offset in failures:
            failed.append(start + offset)
            if on_error is not None:
                on_error(failures[offset])
        if on_image is not None:
            on_image()
