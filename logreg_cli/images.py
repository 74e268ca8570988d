"""Image files -> uint8 pixel rows: decode, orient, composite alpha, RGB, resize, unroll.

A row is np.asarray(rgb_image).reshape(-1): H x W x 3 unrolled row-major, n = H * W * 3.
Sizes are (width, height), as Pillow counts them.

Choices (documented in the README):
- Transparency (RGBA, LA, PA, palette or grey/RGB with a transparent colour) is composited
  on white, so a transparent background looks like paper, not like black.
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
"""

import errno
import json
import mmap
import os
import re
import signal
import sys
import warnings
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from .errors import ImageError, LogregError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
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


def is_image_name(path):
    """True for a non-hidden file name with an image extension (any case)."""
    name = os.path.basename(str(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def default_jobs():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# ---------------------------------------------------------------- one image


def load_image(source, size, info=None):
    """One image (a path or a binary file object) -> uint8 row of size[1] * size[0] * 3.

    Raises ImageError naming the file and the cause. A decompression bomb is refused before
    anything is decoded. Thread-safe.
    info: an optional dict; it receives "original_size", the (width, height) of the image
    as stored, turned by its EXIF orientation, and "mode", Pillow's mode as stored.
    """
    name = source_name(source)
    with _opened(source, name) as image:
        try:
            stored_size, mode = image.size, image.mode
            target = max(size) * DRAFT_MARGIN
            image.draft("RGB", (target, target))  # JPEG only; a no-op for other formats
            oriented, turned = orient(image)
            if info is not None:
                info["original_size"] = stored_size[::-1] if turned else stored_size
                info["mode"] = mode
            rgb = to_rgb(oriented)
            if rgb.size != tuple(size):
                rgb = rgb.resize(tuple(size), RESAMPLE, reducing_gap=REDUCING_GAP)
            return np.asarray(rgb, dtype=np.uint8).reshape(-1)
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
            raise ImageError(name, _decode_cause(error)) from None


def decode_full(source):
    """One image -> (RGB uint8 array H x W x 3 at its stored size, EXIF-oriented, mode).

    For auditing (pixel hashes); raises ImageError like load_image.
    """
    name = source_name(source)
    with _opened(source, name) as image:
        try:
            mode = image.mode
            oriented, _ = orient(image)
            return np.asarray(to_rgb(oriented), dtype=np.uint8), mode
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as error:
            raise ImageError(name, _decode_cause(error)) from None


def source_name(source):
    """How a message names a source: the path as given, or the file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", "<stream>")


TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orient(image):
    """Apply the EXIF orientation (as ImageOps.exif_transpose, without rewriting the EXIF).

    Returns (image upright, True when width and height were swapped).
    """
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    method = TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if method is None:
        return image, False
    return image.transpose(method), orientation >= 5


@contextmanager
def _opened(source, name):
    """Image.open with every failure turned into an ImageError; refuses bombs unread."""
    try:
        image = Image.open(source)
    except FileNotFoundError:
        raise ImageError(name, "no such file") from None
    except IsADirectoryError:
        raise ImageError(name, "is a folder, not an image") from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(name, _unidentified_cause(source)) from None
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


def _unidentified_cause(source):
    if isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
        return "empty file (0 bytes)"
    return "not an image Pillow can read"


def _bomb_cause(size, error=None):
    """'refused: W x H = N pixels, over Pillow's decompression-bomb limit of L'."""
    if size is not None:
        claimed = f"{size[0]} x {size[1]} = {size[0] * size[1]} pixels"
    else:  # Pillow refused it on opening; its message gives the pixel count
        found = re.search(r"\((\d+) pixels\)", str(error))
        claimed = f"{found.group(1)} pixels" if found else "more pixels"
    return f"refused: {claimed}, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS}"


def _decode_cause(error):
    text = str(error) or type(error).__name__
    if "truncated" in text or isinstance(error, EOFError):
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
    """16-bit, 32-bit integer and float grey -> 8-bit grey by their value range, not clipping.

    16-bit images map 0..65535 to 0..255; 32-bit integer images likewise when their values
    fit 16 bits, else their own min..max; float images are taken as 0..1 when they fit it
    and stretched over their own range otherwise.
    """
    values = np.asarray(image)
    with np.errstate(invalid="ignore", over="ignore"):  # inf and NaN pixels: nan_to_num below
        grey = _grey_levels(image.mode, values)
    grey = np.clip(np.rint(np.nan_to_num(grey)), 0, 255).astype(np.uint8)
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
