"""Predict as a shell tool: inputs from arguments or stdin, decoded in parallel, in input order.

Inputs are image files, folders (walked like dataset.image_files), feature files written by
`logreg flatten`, and "-" for stdin, which holds either one image's bytes or a list of paths
(one per line, or NUL-separated). Results come out in input order as soon as the next one is
ready: a thread reads the inputs (it may wait on a slow producer) while the caller emits what
is decoded, so a slow producer sees each result at once and memory stays flat.
"""

import io
import math
import os
import queue
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import LogregError

STDIN = "-"
UTF8_BOM = b"\xef\xbb\xbf"  # what Windows editors put before UTF-8 text
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # little and big endian: PowerShell 5's `>` writes these
CHUNK_BYTES = 1 << 16
# An image decoded far from the model's size or aspect gets a note under -v: when its aspect
# ratio differs from the model's by more than this factor, or a side is under half the model's.
ASPECT_FACTOR_NOTE = 1.5
UPSCALE_FACTOR_NOTE = 2.0

# Leading bytes of the image formats Pillow reads that we recognise on stdin; None matches any
# byte. BMP also needs its four reserved bytes to be zero, so a path such as "BMW.jpg" is a path.
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    (b"B", b"M", None, None, None, None, b"\0", b"\0", b"\0", b"\0"),
    (b"R", b"I", b"F", b"F", None, None, None, None, b"W", b"E", b"B", b"P"),
    b"II*\0",
    b"MM\0*",
)


@dataclass
class Decoded:
    """One input after decoding: a uint8 pixel row (n), or the error that stopped it."""

    name: str
    row: np.ndarray | None = None
    error: LogregError | None = None
    original_size: tuple | None = None  # (width, height) of an image file as stored


# ---------------------------------------------------------------- stdin


def _signature_bytes(signature):
    if isinstance(signature, bytes):
        return [signature[i : i + 1] for i in range(len(signature))]
    return list(signature)


def sniff(head):
    """'image' when head starts with an image signature, 'maybe' while it is too short to
    tell, else 'paths'."""
    verdict = "paths"
    for signature in map(_signature_bytes, IMAGE_SIGNATURES):
        compared = min(len(head), len(signature))
        if all(want is None or head[i : i + 1] == want for i, want in enumerate(signature[:compared])):
            if len(head) >= len(signature):
                return "image"
            verdict = "maybe"
    return verdict


def chunk_reader(stream):
    """A function giving what one read of a binary stream returns now (b'' at its end).

    A real file or pipe is read with os.read on its descriptor: no buffer lock is held
    while waiting, so the interpreter can exit while the reader thread waits on a pipe.
    """
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        read = getattr(stream, "read1", None) or stream.read
        return lambda: read(CHUNK_BYTES)
    return lambda: os.read(descriptor, CHUNK_BYTES)


def stdin_inputs(stream, nul_separated=False):
    """Items of a binary stdin: ("-", file object of the image's bytes) when it holds an
    image, else each path (str), yielded as soon as its separator (newline or NUL) arrives."""
    read_some = chunk_reader(stream)
    head = b""
    while sniff(head) == "maybe" or _maybe_a_mark(head):
        more = read_some()
        if not more:
            break
        head += more
    if head and sniff(head) == "image":
        try:
            yield STDIN, read_image_bytes(head, read_some)
        except LogregError as error:
            yield Decoded(STDIN, error=error)
        return
    if head.startswith(UTF16_BOMS):
        raise LogregError(f"{STDIN}: a list of paths must be UTF-8 text, not UTF-16")
    yield from split_records(head, read_some, nul_separated)


def _maybe_a_mark(head):
    """True while head could still grow into a UTF-8 or UTF-16 byte-order mark."""
    return any(len(head) < len(mark) and mark.startswith(head)
               for mark in (UTF8_BOM, *UTF16_BOMS))


# Image bytes on stdin are held in memory to be decoded: past this size the stream is refused
# and left unread, so that an endless one (a PNG signature, then /dev/zero) cannot exhaust it.
MAX_STDIN_IMAGE_BYTES = 256 << 20


def read_image_bytes(head, read_some):
    """The image on stdin as a file object named "-": head (bytes already read), then
    read_some() until it gives b''. Raises LogregError as soon as the bytes pass
    MAX_STDIN_IMAGE_BYTES, without reading the rest."""
    image = io.BytesIO()
    image.write(head)
    while more := read_some():
        if image.tell() + len(more) > MAX_STDIN_IMAGE_BYTES:
            raise LogregError(f"{STDIN}: more than {MAX_STDIN_IMAGE_BYTES >> 20} MB of image "
                              "bytes on stdin (give the image as a file)")
        image.write(more)
    image.seek(0)
    image.name = STDIN
    return image


# A longer record cannot be a path (Linux's PATH_MAX): it is reported by its first bytes and
# dropped up to its separator, so that an endless input (< /dev/zero) takes bounded memory.
MAX_RECORD_BYTES = 4096


def split_records(head, read_some, nul_separated):
    """Paths separated by NUL or newline, from head then read_some(), each as it completes.

    Bytes become str with os.fsdecode, so any file name round-trips; lines lose a trailing
    CR; empty records are skipped, and so are NUL-separated records made only of line ends
    (the newline an editor adds after the last NUL). A record longer than MAX_RECORD_BYTES
    is yielded as a failed Decoded (named by its first bytes) as soon as it is that long,
    and the rest of it is skipped unread into memory.
    """
    separator = b"\0" if nul_separated else b"\n"
    pending, skipping = head, False
    while True:
        *complete, pending = pending.split(separator)
        for record in complete:
            path = "" if skipping else _clean(record, nul_separated)
            skipping = False
            if path:
                yield path
        if skipping:
            pending = b""
        elif len(pending) > MAX_RECORD_BYTES:
            yield _too_long(pending)
            pending, skipping = b"", True
        more = read_some()
        if not more:
            break
        pending += more
    path = "" if skipping else _clean(pending, nul_separated)
    if path:
        yield path


def _too_long(record):
    from .names import shown

    name = shown(os.fsdecode(record[:40])) + "..."
    return Decoded(name, error=LogregError(
        f"{name}: an input record longer than {MAX_RECORD_BYTES} bytes is not a path"))


def _clean(record, nul_separated):
    record = record.removeprefix(UTF8_BOM)  # each list's, when lists were joined (cat a b)
    if not nul_separated:
        record = record.rstrip(b"\r")
        if not record.strip():
            return ""
    elif not record.strip(b"\r\n"):
        return ""
    return os.fsdecode(record)


# ---------------------------------------------------------------- inputs


def expand_inputs(arguments, stdin_stream=None, nul_separated=False, check_width=None):
    """Arguments -> items to decode: (name, source) for images, or ready Decoded rows.

    check_width(n_features, source), when given, raises LogregError for a feature file whose
    rows do not fit the model: the file then fails as one input (one line), not row by row.

    A folder yields its image files (sorted, hidden ones left out); a feature file yields
    its rows as Decoded; "-" yields what stdin holds (see stdin_inputs), each path read
    there treated like an argument. Anything else is taken as an image path, and an
    unreadable one fails when it is decoded.
    """
    for argument in arguments:
        if argument != STDIN:
            yield from path_items(argument, check_width)
            continue
        for item in stdin_inputs(stdin_stream, nul_separated):
            if isinstance(item, (tuple, Decoded)):
                yield item
            else:
                yield from path_items(item, check_width)


def path_items(path, check_width=None):
    """One path -> its items: a folder's image files, a feature file's rows, or itself."""
    from .dataset import image_files, is_feature_file, lookup_cause
    from .names import shown
    from .zarrstore import is_store

    if "\0" in path:
        error = LogregError(f"{shown(path.split(chr(0))[0])}: the line holds NUL bytes "
                            "(for find -print0, use: logreg predict -0 -)")
        yield Decoded(path.replace("\0", "\\0"), error=error)
        return
    if is_store(path):  # a Zarr feature store is a folder (or a URL), read as a feature file
        yield from feature_rows(path, check_width)
        return
    try:  # a name too long, a file used as a folder, a link loop: this input fails, not the run
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
        files = image_files(path) if is_folder else None
        is_features = not is_folder and is_feature_file(path)
    except FileNotFoundError:
        is_folder = is_features = False  # decoding names it: "no such file"
    except OSError as error:
        yield Decoded(path, error=LogregError(f"{shown(path)}: {lookup_cause(error)}"))
        return
    if is_folder:
        if not files:
            yield Decoded(path, error=LogregError(f"{shown(path)}: no image files in this folder"))
        for file in files:
            yield (str(file), str(file))
    elif is_features:
        yield from feature_rows(path, check_width)
    else:
        yield (path, path)


def feature_rows(path, check_width=None):
    """Each row of a feature file as a ready Decoded named by its stored source path."""
    from .dataset import load_features

    try:
        features = load_features(path)
        if check_width is not None:
            check_width(features.X.shape[1], path)
    except LogregError as error:
        yield Decoded(str(path), error=error)
        return
    if not len(features.X):
        yield Decoded(str(path), error=LogregError(f"{path}: the feature file holds no images"))
    for name, row in zip(features.paths, features.X):
        yield Decoded(str(name), row=row)


# ---------------------------------------------------------------- decoding in order


def decode(name, source, size):
    """One image source (path or file object) -> Decoded, with its stored size."""
    from .images import load_image

    info = {}
    try:
        row = load_image(source, size, info=info)
    except LogregError as error:
        return Decoded(name, error=error)
    return Decoded(name, row=row, original_size=info.get("original_size"))


class _Failed:
    """An exception raised while reading the inputs, handed from the reader to the caller."""

    def __init__(self, error):
        self.error = error


_END = object()


def decode_in_order(items, size, jobs, on_wait=None):
    """Yield Decoded for items (from expand_inputs) in their order, decoding `jobs` at a time.

    A reader thread pulls items (it may block on stdin) and submits them to a pool; at most
    2 * jobs are in flight, so memory stays flat. The caller gets each result as soon as it
    and every earlier one are done; on_wait() is called before waiting for one (to flush
    output), so nothing ready sits in a buffer while input is awaited.
    """
    in_flight = queue.Queue(maxsize=2 * jobs)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="logreg-decode")
    reader = threading.Thread(target=_read_inputs, args=(items, size, pool, in_flight, stop),
                              name="logreg-inputs", daemon=True)
    reader.start()
    try:
        while True:
            try:
                entry = in_flight.get_nowait()
            except queue.Empty:
                if on_wait is not None:
                    on_wait()
                entry = in_flight.get()
            if entry is _END:
                return
            if isinstance(entry, _Failed):
                raise entry.error
            if isinstance(entry, Decoded):
                yield entry
                continue
            if not entry.done() and on_wait is not None:
                on_wait()
            yield entry.result()
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _read_inputs(items, size, pool, in_flight, stop):
    """The reader thread: items -> futures (or ready Decoded) on the bounded queue, then _END."""
    try:
        for item in items:
            if isinstance(item, tuple):
                item = pool.submit(decode, item[0], item[1], size)
            if not _put(in_flight, item, stop):
                return
    except OSError as error:  # e.g. stdin cannot be read: one line, not a traceback
        _put(in_flight, _Failed(LogregError(f"cannot read the inputs ({error})")), stop)
        return
    except Exception as error:  # handed to the caller, which raises it in its own thread
        _put(in_flight, _Failed(error), stop)
        return
    _put(in_flight, _END, stop)


def _put(in_flight, entry, stop):
    """Put entry on the queue unless the caller stopped; False when it did."""
    while not stop.is_set():
        try:
            in_flight.put(entry, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


# ---------------------------------------------------------------- decisions and output


def size_note(original_size, model_size):
    """A reason the image is far from the model's size or aspect, or None."""
    if original_size is None:
        return None
    (width, height), (model_width, model_height) = original_size, model_size
    ratio = (width / height) / (model_width / model_height)
    if abs(math.log(ratio)) > math.log(ASPECT_FACTOR_NOTE):
        return (f"aspect {width}x{height} is far from the model's {model_width}x{model_height}; "
                "it was stretched to fit")
    if width * UPSCALE_FACTOR_NOTE < model_width or height * UPSCALE_FACTOR_NOTE < model_height:
        return (f"{width}x{height} is much smaller than the model's "
                f"{model_width}x{model_height}; it was enlarged")
    return None


@dataclass
class Decision:
    """The printed outcome for one image: the label (or 'unknown') and its probability,
    then the next-ranked (label, probability) pairs for --top-k."""

    label: str
    probability: float
    ranked: list


UNKNOWN = "unknown"


def decide(proba, classes, threshold=None, min_confidence=None, top_k=1):
    """Class probabilities (k) -> Decision.

    threshold (binary models): the positive class classes[1] when its probability >= T.
    min_confidence: the label becomes 'unknown' when its probability is below it.
    top_k: the K most probable classes; the first is the label.
    """
    if threshold is not None:
        best = 1 if proba[1] >= threshold else 0
        order = [best]
    else:
        order = np.argsort(-proba, kind="stable")[: max(top_k, 1)].tolist()
        best = order[0]
    probability = float(proba[best])
    label = classes[best]
    if min_confidence is not None and probability < min_confidence:
        label = UNKNOWN
    ranked = [(classes[i], float(proba[i])) for i in order[1:]]
    return Decision(label, probability, ranked)


def check_threshold(threshold, classes, top_k):
    """--threshold needs a binary model and a single label."""
    if threshold is None:
        return
    if len(classes) != 2:
        raise LogregError(f"--threshold needs a binary model; this one has {len(classes)} "
                          f"classes ({', '.join(classes)})")
    if top_k > 1:
        raise LogregError("--threshold and --top-k cannot be used together")
