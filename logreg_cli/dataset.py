"""Data layouts -> a Dataset of uint8 pixel rows, labels, class names and source paths.

Layouts DATA may have:
- a folder with one subfolder per class (sorted names are the class order; folders nested
  inside a class belong to it; symlinks are followed, each real folder walked once);
- a labels file, CSV or TSV, with a header row `path,label` (paths relative to the labels
  file's own folder, or absolute; classes are the sorted distinct labels);
- a feature file written by `logreg flatten` (an uncompressed .npz), whose X is memory-mapped.
Hidden files and folders (names starting with '.') are never classes and never images.
Other files in class folders that are not images by name, and images directly in the data
folder, are stray files: skipped with a warning like unreadable images (--strict: an error).
Image files named one by one (predict) go through load_files.
"""

import csv
import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .errors import DataError, ImageError, ModelFileError
from .images import is_image_name, load_images
from .npzfile import ZIP_MAGIC, read_arrays, read_npy_header

FEATURE_KEYS = ("X", "y", "classes", "paths", "size", "metadata")
FEATURE_FORMAT = "logreg-features"
FEATURE_FORMAT_VERSION = 1
LABEL_FILE_SUFFIXES = (".csv", ".tsv", ".txt")
IGNORED_FOLDERS = frozenset({"__MACOSX"})  # resource forks left by macOS zip files
IGNORED_FILES = frozenset({"Thumbs.db", "desktop.ini"})  # Windows' own, never strays
ZIP_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
ZIP_LOCAL_SIGNATURE = 0x04034B50


@dataclass
class Dataset:
    """X is m x n uint8 (one unrolled H x W x 3 image per row); y indexes classes."""

    X: np.ndarray
    y: np.ndarray
    classes: list
    paths: list
    size: tuple  # (width, height)
    skipped: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # a feature file's own metadata

    def class_counts(self):
        return class_counts(self.y, self.classes)


def class_counts(y, classes):
    """{class name: number of labels y (indices into classes) naming it}."""
    counts = np.bincount(y, minlength=len(classes))
    return {name: int(count) for name, count in zip(classes, counts)}


def is_hidden(name):
    return name.startswith(".")


# ---------------------------------------------------------------- finding files


def class_folders(root):
    """Sorted (name, path) of the non-hidden subfolders of root (symlinks followed)."""
    try:
        entries = list(os.scandir(root))
    except PermissionError:
        raise DataError(f"{root}: permission denied") from None
    return sorted(
        (entry.name, Path(entry.path))
        for entry in entries
        if not is_hidden(entry.name) and entry.name not in IGNORED_FOLDERS and entry.is_dir()
    )


def image_files(folder):
    """Image files anywhere below folder, sorted, hidden files and folders left out.

    Symlinked folders are followed, but each real folder is walked once, so a link that
    points back up the tree cannot loop.
    """
    return walk_folder(folder)[0]


def walk_folder(folder):
    """(image files, stray files) anywhere below folder, each sorted (see image_files).

    Stray files are the other non-hidden files: not images by their name (notes.txt).
    """
    images, strays, seen = [], [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        try:
            status = os.stat(top)
        except OSError:
            dirs[:] = []
            continue
        if (status.st_dev, status.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        dirs[:] = sorted(d for d in dirs if not is_hidden(d) and d not in IGNORED_FOLDERS)
        for name in files:
            if is_image_name(name):
                images.append(Path(top) / name)
            elif not is_hidden(name) and name not in IGNORED_FILES:
                strays.append(Path(top) / name)
    return sorted(images), sorted(strays)


def stray_error(path, loose=False):
    """The ImageError a skipped stray file is reported with."""
    if loose:
        return ImageError(path, "an image directly in DATA belongs to no class; skipped")
    extension = os.path.splitext(path)[1]
    kind = f"'{extension}' is not an image extension" if extension else "no image extension"
    return ImageError(path, f"not an image file ({kind}); skipped")


def is_feature_file(path):
    """True when path is a file that starts like a zip archive (what flatten writes)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as file:
            return file.read(4) == ZIP_MAGIC
    except FileNotFoundError:  # deleted since is_file(): the image loader says so
        return False


def list_folder(root, classes=None):
    """(paths, labels, class names, stray ImageErrors) of a class-folder layout, not decoded.

    Strays: files in class folders that are not images by name, and images lying directly
    in root (they belong to no class).
    """
    folders = class_folders(root)
    names = [name for name, _ in folders]
    classes = _check_classes(names, classes, root, "class folder")
    paths, labels = [], []
    loose = sorted(Path(entry.path) for entry in os.scandir(root)
                   if entry.is_file() and is_image_name(entry.name))
    strays = [stray_error(path, loose=True) for path in loose]
    for name, folder in folders:
        files, others = walk_folder(folder)
        paths.extend(files)
        labels.extend([classes.index(name)] * len(files))
        strays.extend(stray_error(path) for path in others)
    if not paths:
        hint = (f"; its {len(loose)} image file(s) must go in one subfolder per class" if loose
                else " (expected one subfolder of images per class)")
        raise DataError(f"{root}: found 0 images{hint}")
    return paths, np.array(labels, dtype=np.int64), classes, strays


def read_labels_file(path):
    """A CSV/TSV labels file -> (image paths, label strings), paths resolved against its folder.

    The header must name the columns `path` and `label` (any order, other columns ignored);
    the delimiter is a tab for .tsv files and for headers that hold a tab, else a comma.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: a labels file must be UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in first_line else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [column.strip().lower() for column in next(rows, [])]
    if "path" not in header or "label" not in header:
        raise DataError(f"{path}: the first line must be the header 'path{delimiter}label', "
                        f"got {first_line.strip()!r}")
    path_column, label_column = header.index("path"), header.index("label")
    paths, labels = [], []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        line = rows.line_num
        if len(row) <= max(path_column, label_column):
            raise DataError(f"{path}, line {line}: expected {len(header)} columns, got {len(row)}")
        image, label = row[path_column].strip(), row[label_column].strip()
        if not image or not label:
            raise DataError(f"{path}, line {line}: empty {'path' if not image else 'label'}")
        paths.append(path.parent / image)
        labels.append(label)
    if not paths:
        raise DataError(f"{path}: found 0 images (the labels file lists none)")
    return paths, labels


def list_labels_file(path, classes=None):
    """(paths, labels, class names, no strays) of a labels file, before decoding."""
    paths, names = read_labels_file(path)
    classes = _check_classes(sorted(set(names)), classes, path, "label")
    index = {name: i for i, name in enumerate(classes)}
    return paths, np.array([index[name] for name in names], dtype=np.int64), classes, []


def _check_classes(found, classes, source, what):
    """The class list: found (training) or the model's, which must include every found name."""
    if classes is None:
        return list(found)
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise DataError(f"{source}: {what} {unknown[0]!r} is not one of the model's classes "
                        f"({', '.join(classes)})")
    return list(classes)


def is_labels_file(path):
    return Path(path).suffix.lower() in LABEL_FILE_SUFFIXES


def list_data(path, classes=None):
    """(paths, labels, classes, stray ImageErrors) of a class folder or labels file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return list_folder(path, classes)
    if is_labels_file(path):
        return list_labels_file(path, classes)
    raise DataError(f"{path}: not a folder of class subfolders, a labels file (.csv/.tsv) "
                    "nor a feature file")


# ---------------------------------------------------------------- loading


def load_data(path, size, classes=None, jobs=None, on_error=None, on_image=None, on_total=None):
    """A class folder, labels file or feature file -> Dataset.

    classes: the model's class names when evaluating (every class found must be among them);
    None when training (the data defines the classes). size is (width, height): images are
    resized to it; a feature file keeps its own size when training and must have this size
    when evaluating (classes given). on_total(count) is called once the files are listed, then
    on_image() after each file (for a progress bar).
    """
    path = Path(path)
    if is_feature_file(path):
        data = load_features(path, classes)
        if not len(data.y):
            raise DataError(f"{path}: found 0 images in this feature file")
        if classes is not None and tuple(data.size) != tuple(size):
            n, expected = data.X.shape[1], size[0] * size[1] * 3
            raise DataError(f"{path}: the data has {n} features ({data.size[0]}x{data.size[1]} "
                            f"images) but the model expects {expected} (trained at --size "
                            f"{size[0]}x{size[1]})")
        return data
    paths, labels, classes, strays = list_data(path, classes)
    for stray in strays:
        if on_error is not None:
            on_error(stray)
    if on_total is not None:
        on_total(len(paths))
    X, kept, skipped = _load_rows(paths, size, jobs, on_error, on_image)
    skipped = strays + skipped
    if not kept:
        raise DataError(f"{path}: none of the {len(paths)} image files could be read")
    return Dataset(X, labels[kept], classes, [str(paths[i]) for i in kept], tuple(size), skipped)


def load_files(paths, size, jobs=None, on_error=None, on_image=None):
    """Image files named one by one -> (X m x n uint8, the paths that loaded, ImageErrors).

    Rows follow the order of paths; a file that cannot be read is reported to on_error
    (which may raise, for --strict) and left out.
    """
    paths = list(paths)
    X, kept, skipped = _load_rows(paths, size, jobs, on_error, on_image)
    return X, [str(paths[i]) for i in kept], skipped


def _load_rows(paths, size, jobs, on_error, on_image):
    skipped = []

    def skip(error):
        skipped.append(error)
        if on_error is not None:
            on_error(error)

    X, kept = load_images(paths, size, jobs=jobs, on_error=skip, on_image=on_image)
    return X, kept, skipped


def require_classes(y, classes, source):
    """Training needs at least two classes that have images (y indexes classes)."""
    present = [name for name, count in class_counts(y, classes).items() if count]
    if len(present) < 2:
        found = f"only one class: {present[0]!r}" if present else "no classes"
        raise DataError(f"{source}: found {found} (training needs at least two)")


# ---------------------------------------------------------------- feature files


def save_features(dataset, path, metadata=None):
    """Write dataset as an uncompressed .npz feature file, atomically.

    Arrays: X uint8 m x n, y int64 m, classes str k, paths str m, size int64 [H, W],
    metadata str (a JSON object). Plain arrays only: np.load(path, allow_pickle=False) reads it.
    """
    width, height = dataset.size
    info = {"format": FEATURE_FORMAT, "format_version": FEATURE_FORMAT_VERSION,
            "images": int(len(dataset.y)), "size": f"{width}x{height}",
            "class_counts": dataset.class_counts(), **(metadata or {})}
    arrays = {
        "X": np.ascontiguousarray(dataset.X, dtype=np.uint8),
        "y": np.asarray(dataset.y, dtype=np.int64),
        "classes": np.array(dataset.classes, dtype=str),
        "paths": np.array(dataset.paths, dtype=str).reshape(-1),
        "size": np.array([height, width], dtype=np.int64),
        "metadata": np.array(json.dumps(info, ensure_ascii=False)),
    }
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load_features(path, classes=None):
    """Read a feature file (X memory-mapped when stored uncompressed) -> Dataset.

    classes: the model's class names when evaluating; labels are re-indexed to them.
    Raises ModelFileError when path is not a consistent logreg feature file.
    """
    path = Path(path)
    try:
        arrays, names = read_arrays(path, FEATURE_KEYS[1:])
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None
    missing = [key for key in FEATURE_KEYS if key not in names]
    if missing:
        what = "a model file" if "weights" in names else "an .npz file"
        raise ModelFileError(f"{path}: {what}, not a logreg feature file "
                             f"(missing {', '.join(missing)})")
    X = open_feature_matrix(path) if _member_is_stored(path, "X.npy") else _read_x(path)
    size = arrays["size"]
    if size.shape != (2,) or size.dtype.kind not in "iu" or size.min() < 1:
        raise ModelFileError(f"{path}: size must be two positive integers (H, W)")
    height, width = (int(v) for v in size)
    if arrays["classes"].dtype.kind != "U" or arrays["classes"].ndim != 1:
        raise ModelFileError(f"{path}: classes must be a list of names (strings)")
    if arrays["paths"].dtype.kind != "U" or arrays["paths"].ndim != 1:
        raise ModelFileError(f"{path}: paths must be a list of strings")
    y, names = arrays["y"], arrays["classes"].tolist()
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path}: classes must be distinct names")
    n = height * width * 3
    if X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != n:
        raise ModelFileError(f"{path}: X must be m x {n} uint8 (size {width}x{height}), "
                             f"got {X.dtype} {X.shape}")
    if y.shape != (len(X),) or y.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: y must hold {len(X)} integer labels, got {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise ModelFileError(f"{path}: y must index the {len(names)} classes")
    if len(arrays["paths"]) != len(X):
        raise ModelFileError(f"{path}: paths must name the {len(X)} images")
    if classes is not None:
        _check_classes(names, classes, path, "class")
        y = np.array([classes.index(name) for name in names], dtype=np.int64)[y]
        names = list(classes)
    return Dataset(X, y.astype(np.int64), names, arrays["paths"].tolist(), (width, height),
                   metadata=_feature_metadata(arrays["metadata"]))


def _read_x(path):
    try:
        return read_arrays(path, ("X",))[0]["X"]
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None


def _feature_metadata(value):
    """The JSON object of a feature file's metadata string ({} when it is not one)."""
    if value.shape != () or value.dtype.kind != "U":
        return {}
    try:
        metadata = json.loads(str(value))
    except json.JSONDecodeError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _member_is_stored(path, member):
    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(member).compress_type == zipfile.ZIP_STORED


def open_feature_matrix(path):
    """X of a feature file as a read-only np.memmap (m x n uint8), straight from the archive."""
    data_start, shape = locate_feature_matrix(path)
    if shape[0] * shape[1] == 0:
        return np.zeros(shape, dtype=np.uint8)  # mmap cannot map zero bytes
    return np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=shape)


def locate_feature_matrix(path):
    """(byte offset, (m, n)) of X's uint8 data inside a feature file.

    np.savez stores members uncompressed, so X.npy's bytes lie in the .npz as they are:
    the zip's local header gives where the member starts, the .npy header where its data
    starts. Row blocks X[i:j] then read only those rows from disk, so a feature file
    larger than memory can be streamed. Raises ModelFileError if X is compressed or is
    not a C-ordered 2-D uint8 array.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("X.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(f"{path}: X is compressed, so it cannot be memory-mapped "
                                 "(write the file with `logreg flatten` or np.savez)")
        with open(path, "rb") as file:
            file.seek(info.header_offset)
            local = ZIP_LOCAL_HEADER.unpack(file.read(ZIP_LOCAL_HEADER.size))
            if local[0] != ZIP_LOCAL_SIGNATURE:
                raise ModelFileError(f"{path}: damaged zip archive (no local header for X.npy)")
            name_length, extra_length = local[9], local[10]
            member_start = info.header_offset + ZIP_LOCAL_HEADER.size + name_length + extra_length
            file.seek(member_start)
            version = np.lib.format.read_magic(file)
            shape, fortran_order, dtype = read_npy_header(file, version, "X.npy")
            data_start = file.tell()
    except KeyError:
        raise ModelFileError(f"{path}: not a logreg feature file (no X)") from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None
    except (OSError, ValueError, EOFError, struct.error, zipfile.BadZipFile) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(f"{path}: not a readable feature file ({first_line})") from None
    if dtype != np.uint8 or len(shape) != 2 or fortran_order:
        raise ModelFileError(f"{path}: X must be a C-ordered m x n uint8 array, "
                             f"got {dtype} {shape}{' (Fortran order)' if fortran_order else ''}")
    if data_start - member_start + shape[0] * shape[1] != info.file_size:
        raise ModelFileError(f"{path}: X.npy is {info.file_size} bytes, not the "
                             f"{shape[0]} x {shape[1]} it claims")
    return data_start, tuple(shape)
