"""Data layouts -> a Dataset of uint8 pixel rows, labels, class names and source paths.

Layouts DATA may have:
- a folder with one subfolder per class (sorted names are the class order; folders nested
  inside a class belong to it; symlinks are followed, but across DATA each real folder is
  walked once and each real file listed once, see Walk; a class with no readable image is
  left out, see ClassLeftOut);
- a labels file, CSV or TSV, with a header row `path,label` (paths relative to the labels
  file's own folder, or absolute; classes are the sorted distinct labels);
- a feature file written by `logreg flatten` (an uncompressed .npz), whose X is memory-mapped.
Class names go through names.class_name() wherever they come from (folder names, labels,
a model's or feature file's classes), so NFC/NFD spellings and surrounding spaces are one class.
Hidden files and folders (names starting with '.') are never classes and never images.
Other files in class folders that are not images by name, and images directly in the data
folder, are stray files: skipped with a warning like unreadable images (--strict: an error).
"""

import csv
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .errors import DataError, ImageError, ModelFileError
from .images import is_image_name, load_images
from .model import check_class_names
from .names import class_name, is_text, shown
from .npzfile import ZIP_MAGIC, NpzFile, open_regular_file
from .zarrstore import is_store, is_url

FEATURE_KEYS = ("X", "y", "classes", "paths", "size", "metadata")
FEATURE_FORMAT = "logreg-features"
FEATURE_FORMAT_VERSION = 1
LABEL_FILE_SUFFIXES = (".csv", ".tsv", ".txt")
IGNORED_FOLDERS = frozenset({"__MACOSX"})  # resource forks left by macOS zip files
IGNORED_FILES = frozenset({"Thumbs.db", "desktop.ini"})  # Windows' own, never strays


@dataclass
class Dataset:
    """X is m x n uint8 (one unrolled H x W x 3 image per row); y indexes classes."""

    X: np.ndarray
    y: np.ndarray
    classes: list
    paths: list
    size: tuple  # (width, height)
    skipped: list = field(default_factory=list)
    left_out: list = field(default_factory=list)  # ClassLeftOut: classes with no image read
    metadata: dict = field(default_factory=dict)  # a feature file's own metadata

    def class_counts(self):
        return class_counts(self.y, self.classes)


def arrays_dataset(data, size, classes=None):
    """Arrays (X m x n, y m ints indexing names, names) given to the library -> Dataset
    whose rows are named by their index; y is re-indexed to classes when given (evaluate).
    X is kept as given (its dtype is checked by the caller). Raises DataError."""
    try:
        X, y, names = data
    except (TypeError, ValueError):
        raise DataError("data arrays must be a tuple (X, y, classes)") from None
    X, y = np.asarray(X), np.asarray(y)
    names = [class_name(str(name)) for name in names]
    if X.ndim != 2 or y.shape != (len(X),) or y.dtype.kind not in "iu":
        raise DataError(f"data arrays: X must be m x n and y m integer labels, got X "
                        f"{X.shape} and y {y.dtype} {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= len(names)):
        raise DataError(f"data arrays: y must index the {len(names)} classes")
    y = y.astype(np.int64)
    if classes is not None:
        y, names = _to_model_classes("data arrays", y, names, classes, "class")
    return Dataset(X, y, names, [str(i) for i in range(len(y))], tuple(size))


def class_counts(y, classes):
    """{class name: number of labels y (indices into classes) naming it}."""
    counts = np.bincount(y, minlength=len(classes))
    return {name: int(count) for name, count in zip(classes, counts)}


def is_hidden(name):
    return name.startswith(".")


# ---------------------------------------------------------------- finding files


class ClassLeftOut(ImageError):
    """A class that has no image to learn from (an empty folder, every image unreadable):
    left out of the classes with a warning (--strict: an error). path names its folder."""

    def __init__(self, path, name, cause):
        super().__init__(path, cause, f"class {name!r} left out")
        self.class_name = name


class LinkSkipped(ImageError):
    """A folder link that would read a folder again or under the wrong class: not followed."""


class SharedFile(ImageError):
    """One real file reachable under two classes: left out of both (its label is unknown)."""

    def __init__(self, path, first, classes):
        where = "listed" if str(path) == str(first) else f"the same file as {first}, which is"
        super().__init__(path, f"{where} under class {classes[0]!r} and again under "
                               f"{classes[1]!r}", "left out of both")
        self.first = str(first)
        self.classes = list(classes)


def class_folders(root):
    """Sorted (class name, path) of the non-hidden subfolders of root (symlinks followed).

    The name is names.class_name() of the folder's name, so two folders may give one class
    (NFC and NFD spellings): both are listed, and their images form that one class.
    Raises DataError when root cannot be listed or a folder name is not text.
    """
    try:
        entries = list(os.scandir(root))
    except PermissionError:
        raise DataError(f"{root}: permission denied") from None
    folders = sorted(
        (class_name(entry.name), Path(entry.path))
        for entry in entries
        if not is_hidden(entry.name) and entry.name not in IGNORED_FOLDERS and entry.is_dir()
    )
    for name, folder in folders:
        if not is_text(name):
            raise DataError(f"{shown(str(folder))}: a class folder name must be UTF-8 text "
                            "(this one holds other bytes); rename the folder")
        if not name:
            raise DataError(f"{folder}: a class folder name must hold more than spaces; "
                            "rename the folder")
    return folders


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
    return Walk(folder).folder(folder)


def _file_key(status):
    return status.st_dev, status.st_ino


def _is_within(path, folder):
    """True when the real path `path` is `folder` or below it (both os.path.realpath)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Walk:
    """The walk of one DATA folder: each real folder walked once and each real file listed
    once across every class, whatever links lead to them.

    A folder link is not followed (a LinkSkipped problem names it) when it leads to DATA
    itself or above it, into another class's folder, or to a folder already walked (a
    loop); a link out of DATA is followed, once. A file met again under the same class is
    listed once; under another class it is a SharedFile problem and left out of both.
    """

    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.class_reals = {}  # real path of a class folder -> class name
        self.folders = {}  # (st_dev, st_ino) of each folder walked -> its class name
        self.files = {}  # (st_dev, st_ino) -> (path, class name)
        self.problems = []
        self.shared = set()  # paths of files under two classes

    @classmethod
    def of_classes(cls, root, folders):
        """(Walk of root, the (name, folder) pairs to walk, sorted): a class folder that is a
        link to DATA or above it, to another class's folder or into one is no class (a
        LinkSkipped problem names it)."""
        walk = cls(root)
        kept = [(name, folder) for name, folder in folders if not folder.is_symlink()]
        walk.class_reals = {os.path.realpath(folder): name for name, folder in kept}
        for name, folder in folders:
            if not folder.is_symlink():
                continue
            reason = walk.link_problem(folder, name)
            if reason:
                walk.problems.append(LinkSkipped(shown(str(folder)), reason, "not a class"))
                continue
            walk.class_reals[os.path.realpath(folder)] = name
            kept.append((name, folder))
        return walk, sorted(kept)

    def folder(self, folder, name=None):
        """(image files, stray files) below folder, the folder of class name, each sorted."""
        images, strays = [], []
        for top, dirs, files in os.walk(folder, followlinks=True):
            if top == os.fspath(folder) and not self._enter(folder, name):
                break
            dirs[:] = [d for d in sorted(dirs) if self._follow(Path(top) / d, name)]
            for file_name in files:
                path = Path(top) / file_name
                if is_image_name(file_name):
                    if self.first_listing(path, name):
                        images.append(path)
                elif not is_hidden(file_name) and file_name not in IGNORED_FILES:
                    strays.append(path)
        return sorted(images), sorted(strays)

    def _enter(self, folder, name):
        try:
            key = _file_key(os.stat(folder))
        except OSError:
            return False
        if key in self.folders:
            if self.folders[key] != name:
                self._list_again(folder, name)
            return False
        self.folders[key] = name
        return True

    def _list_again(self, folder, name):
        """folder was walked under another class and is reached again under class name (a
        link out of DATA from two classes): every image file below it is reachable under
        two classes, which first_listing records as a SharedFile. Each folder once."""
        seen = set()
        for top, dirs, files in os.walk(folder, followlinks=True):
            try:
                key = _file_key(os.stat(top))
            except OSError:
                key = None
            if key in seen:
                dirs[:] = []
                continue
            seen.add(key)
            dirs[:] = [d for d in dirs if self._also_below(Path(top) / d, name)]
            for file_name in files:
                if is_image_name(file_name):
                    self.first_listing(Path(top) / file_name, name)

    def _also_below(self, path, name):
        """Whether _list_again goes into the subfolder path: what the walk skipped (hidden
        folders, links it does not follow) stays out of the second listing too."""
        return self._skip_reason(path, name) is None

    def _follow(self, path, name):
        reason = self._skip_reason(path, name)
        if reason:
            self.problems.append(LinkSkipped(shown(str(path)), reason, "not followed"))
        return reason is None and self._enter(path, name)

    def _skip_reason(self, path, name):
        """Why the walk does not go into the subfolder path: "" for hidden and ignored
        folders (skipped silently), a link_problem, or None when it goes in."""
        if is_hidden(path.name) or path.name in IGNORED_FOLDERS:
            return ""
        return self.link_problem(path, name) if path.is_symlink() else None

    def link_problem(self, link, name):
        """Why the folder link must not be followed, or None."""
        target = os.path.realpath(link)
        if _is_within(self.root, target):
            return "a link to DATA itself or a folder above it"
        for real, other in self.class_reals.items():
            if other != name and _is_within(target, real):
                return f"a link into the folder of class {other!r}"
        try:
            key = _file_key(os.stat(target))
        except OSError:
            return None  # os.walk skips what it cannot list
        if self.folders.get(key) == name:
            return "a link to a folder already read in this class"
        return None  # under another class: its files are SharedFiles (see _enter)

    def first_listing(self, path, name):
        """True when path is a real file not listed before; records it (see Walk)."""
        try:
            key = _file_key(os.stat(path))
        except OSError:
            return True  # a dangling link: decoding names it
        if key not in self.files:
            self.files[key] = (path, name)
            return True
        first, first_class = self.files[key]
        if first_class != name and first not in self.shared:
            self.problems.append(SharedFile(shown(str(path)), shown(str(first)),
                                            (first_class, name)))
            self.shared.add(first)
        return False


def stray_error(path, loose=False):
    """The ImageError a skipped stray file is reported with."""
    path = shown(str(path))
    if loose:
        return ImageError(path, "an image directly in DATA belongs to no class", "skipped")
    extension = os.path.splitext(path)[1]
    kind = f"'{extension}' is not an image extension" if extension else "no image extension"
    return ImageError(path, f"not an image file ({kind})", "skipped")


def unread_class(where, name, count):
    """The ClassLeftOut of a class none of whose count listed images could be read; where
    is its folder, or the labels file."""
    return ClassLeftOut(shown(str(where)), name, f"none of its {count} image file(s) could be "
                                                 "read")


def is_feature_file(path):
    """True when path is a file that starts like a zip archive (what flatten writes) or a
    Zarr feature store (zarrstore.is_store); False when it cannot be looked up or read
    (path_exists or decoding names why)."""
    if is_store(path):
        return True
    try:
        if not Path(path).is_file():
            return False
        with open(path, "rb") as file:
            return file.read(4) == ZIP_MAGIC
    except OSError:
        return False


def path_exists(path, option=""):
    """True when path exists, False when it does not; raises DataError naming path (after
    option, e.g. '--val ') when it cannot be looked up: a name too long, a link loop, a
    folder that may not be read. A URL (a Zarr store's) counts as existing: opening it
    says what is wrong."""
    if is_url(path):
        return True
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        raise DataError(f"{option}{shown(str(path))}: {lookup_cause(error)}") from None
    return True


def lookup_cause(error):
    """An OSError from looking a path up -> its cause in our words ('file name too long')."""
    cause = error.strerror or str(error) or type(error).__name__
    return cause[:1].lower() + cause[1:]


def list_folder(root, classes=None):
    """(paths, labels, class names, problems) of a class-folder layout, not decoded.

    Problems are ImageErrors to warn about: stray files (not images by name, or images
    lying directly in root, which belong to no class), ClassLeftOut for a class folder
    holding no image, LinkSkipped and SharedFile (see Walk). classes: the model's, when
    evaluating; a folder that is not one of them is a DataError (unless it is empty).
    """
    walk, folders = Walk.of_classes(root, class_folders(root))
    loose = sorted(Path(entry.path) for entry in os.scandir(root)
                   if entry.is_file() and is_image_name(entry.name))
    strays = [stray_error(path, loose=True) for path in loose]
    found = {}  # class name -> its image files, in folder order
    for name, folder in folders:
        files, others = walk.folder(folder, name)
        found.setdefault(name, []).extend(files)
        strays.extend(stray_error(path) for path in others)
    found = {name: [p for p in files if p not in walk.shared] for name, files in found.items()}
    if not any(found.values()):
        hint = (f"; its {len(loose)} image file(s) must go in one subfolder per class" if loose
                else " (expected one subfolder of images per class)")
        raise DataError(f"{root}: found 0 images{hint}")
    for name, folder in folders:
        if not found.get(name) and name in found:
            strays.append(ClassLeftOut(shown(str(folder)), name, "holds no images"))
            del found[name]
    classes = _check_classes(sorted(found), classes, root, "class folder")
    index = _class_index(classes)
    paths, labels = [], []
    for name in sorted(found):
        paths.extend(found[name])
        labels.extend([index[name]] * len(found[name]))
    return paths, np.array(labels, dtype=np.int64), classes, strays + walk.problems


def read_labels_file(path):
    """A CSV/TSV labels file -> (image paths, label strings), paths resolved against its folder.

    The header must name the columns `path` and `label` (any order, other columns ignored);
    the delimiter is a tab for .tsv files and for headers that hold a tab, else a comma.
    """
    path = Path(path)
    try:
        with open_regular_file(path, DataError, "a labels file") as file:
            text = io.TextIOWrapper(file, encoding="utf-8-sig").read()  # as read_text
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: a labels file must be UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in first_line else ","
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        return _labels_rows(path, rows, delimiter, first_line)
    except csv.Error as error:  # a cell over csv's field limit, a NUL byte, a stray quote
        raise DataError(f"{path}, line {rows.line_num}: {_csv_cause(error)}") from None


def _csv_cause(error):
    if "field larger than field limit" in str(error):
        return f"a cell is longer than {csv.field_size_limit()} characters"
    return f"not readable as CSV ({error})"


def _labels_rows(path, rows, delimiter, first_line):
    """(image paths, label strings) of the csv reader rows of a labels file at path."""
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
        image, label = row[path_column].strip(), class_name(row[label_column])
        if not image or not label:
            raise DataError(f"{path}, line {line}: empty {'path' if not image else 'label'}")
        if "\0" in image + label:
            raise DataError(f"{path}, line {line}: holds a NUL byte (a damaged or binary file)")
        paths.append(path.parent / image)
        labels.append(label)
    if not paths:
        raise DataError(f"{path}: found 0 images (the labels file lists none)")
    return paths, labels


def list_labels_file(path, classes=None):
    """(paths, labels, class names, problems) of a labels file, before decoding.

    Each real file is listed once: a row naming a file already listed (by another path, a
    link) with the same label is dropped; with another label, the file is a SharedFile
    problem and left out of both.
    """
    paths, names = read_labels_file(path)
    walk = Walk(Path(path).parent)
    firsts = [walk.first_listing(image, name) for image, name in zip(paths, names)]
    rows = [(image, name) for image, name, first in zip(paths, names, firsts)
            if first and image not in walk.shared]
    gone = sorted(set(names) - {name for _, name in rows})
    paths, names = [image for image, _ in rows], [name for _, name in rows]
    left_out = [ClassLeftOut(shown(str(path)), name, "each of its images is also under another "
                             "label") for name in gone]
    classes = _check_classes(sorted(set(names)), classes, path, "label")
    index = _class_index(classes)
    labels = np.array([index[name] for name in names], dtype=np.int64)
    return paths, labels, classes, walk.problems + left_out


def _class_index(classes):
    """{class_name(name): its index} of a class list (a model's may predate class_name)."""
    return {class_name(name): i for i, name in enumerate(classes)}


def _check_classes(found, classes, source, what):
    """The class list: found (training) or the model's, which must include every found
    name (compared as names.class_name() reads them)."""
    if classes is None:
        return list(found)
    known = _class_index(classes)
    unknown = [name for name in found if class_name(name) not in known]
    if unknown:
        raise DataError(f"{source}: {what} {unknown[0]!r} is not one of the model's classes "
                        f"({', '.join(classes)})")
    return list(classes)


def is_labels_file(path):
    return Path(path).suffix.lower() in LABEL_FILE_SUFFIXES


def list_data(path, classes=None):
    """(paths, labels, classes, stray ImageErrors) of a class folder or labels file."""
    path = Path(path)
    if not path_exists(path):
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
        data = load_features(path)
        if not len(data.y):
            raise DataError(f"{path}: found 0 images in this feature file")
        if classes is not None and tuple(data.size) != tuple(size):
            n, expected = data.X.shape[1], size[0] * size[1] * 3
            raise DataError(f"{path}: the data has {n} features ({data.size[0]}x{data.size[1]} "
                            f"images) but the model expects {expected} (trained at --size "
                            f"{size[0]}x{size[1]})")
        if classes is not None:  # its classes without rows left out first, as train does
            y, found, left_out = without_empty_classes(path, data.y, data.classes)
            for error in left_out:
                if on_error is not None:
                    on_error(error)
            y, classes = _to_model_classes(path, y, found, classes, "class")
            data = replace(data, y=y, classes=classes, left_out=left_out)
        return data
    model_classes = classes
    # The data's own classes first: a class folder or label none of whose images can be read
    # is left out before it is compared with the model's (training left it out too).
    paths, labels, classes, strays = list_data(path)
    for stray in strays:
        if on_error is not None:
            on_error(stray)
    left_out = [error for error in strays if isinstance(error, ClassLeftOut)]
    # skipped counts files; a link not followed was warned about and is no file
    strays = [error for error in strays if not isinstance(error, (ClassLeftOut, LinkSkipped))]
    if on_total is not None:
        on_total(len(paths))
    X, kept, skipped = _load_rows(paths, size, jobs, on_error, on_image)
    skipped = strays + skipped
    if not kept:
        raise DataError(f"{path}: none of the {len(paths)} image files could be read")
    y = labels[kept]
    y, classes, unread = _leave_out_unread_classes(path, paths, labels, y, classes)
    for error in unread:
        if on_error is not None:
            on_error(error)
    left_out += unread
    if model_classes is not None:
        what = "label" if is_labels_file(path) else "class folder"
        y, classes = _to_model_classes(path, y, classes, model_classes, what)
    return Dataset(X, y, classes, [str(paths[i]) for i in kept], tuple(size), skipped,
                   left_out)


def _to_model_classes(source, y, found, model_classes, what):
    """(y re-indexed to model_classes, model_classes); y indexes found, the data's classes
    that have images. DataError naming the `what` (class folder, label) when one of them is
    not a class of the model."""
    classes = _check_classes(found, model_classes, source, what)
    index = _class_index(classes)
    remap = np.array([index[class_name(name)] for name in found], dtype=np.int64)
    return remap[y], classes


def _leave_out_unread_classes(source, paths, labels, y, classes):
    """(y, classes, ClassLeftOut errors) without the classes none of whose images loaded.

    labels index classes for every listed path; y for the paths that loaded.
    """
    listed, loaded = (np.bincount(v, minlength=len(classes)) for v in (labels, y))
    gone = [i for i in range(len(classes)) if listed[i] and not loaded[i]]
    if not gone:
        return y, classes, []
    errors = []
    for i in gone:
        first = paths[int(np.flatnonzero(labels == i)[0])]
        where = Path(source) / first.relative_to(source).parts[0] if Path(source).is_dir() \
            else source
        errors.append(unread_class(where, classes[i], int(listed[i])))
    return (*_drop_classes(y, classes, gone), errors)


def without_empty_classes(source, y, classes):
    """(y, classes, ClassLeftOut errors) without the classes no label of y names (a feature
    file written before classes without images were left out may hold some)."""
    gone = np.flatnonzero(np.bincount(y, minlength=len(classes)) == 0).tolist()
    errors = [ClassLeftOut(shown(str(source)), classes[i], "holds no images") for i in gone]
    return (*_drop_classes(y, classes, gone), errors)


def _drop_classes(y, classes, gone):
    """(y re-indexed, classes) without the class indices in gone (no label y names them)."""
    if not gone:
        return y, list(classes)
    kept = [i not in gone for i in range(len(classes))]
    remap = np.cumsum(kept) - 1
    return remap[y].astype(np.int64), [name for name, keep in zip(classes, kept) if keep]


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


COUNTED_METADATA = ("images", "size", "class_counts")  # what save_features counts itself


def converted_metadata(original, source, created):
    """The metadata of a copy of the feature file or store source, whose own metadata is
    original: all of it but its format (the writer's), with converted_from and created
    added. Its source is kept: --val-split places each row by its path relative to it, so
    the copy holds out the same rows."""
    kept = {key: value for key, value in original.items()
            if key not in ("format", "format_version")}
    return {**kept, "converted_from": str(source), "created": created}


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


def load_features(path, classes=None, open_x=None):
    """Read a feature file (X memory-mapped when stored uncompressed) -> Dataset.

    The file is opened once and every array, X's memory map included, comes from that one
    open file: a new version renamed over path meanwhile (`logreg flatten -o` again) is not
    seen, so labels, paths and pixels always belong together. open_x(npz) -> X overrides
    how X is opened from the npzfile.NpzFile (default: open_x_array).
    classes: the model's class names when evaluating; labels are re-indexed to them.
    Raises ModelFileError when path is not a consistent logreg feature file.
    A Zarr feature store (zarrstore.is_store) is read the same way: its valid rows only.
    """
    if is_store(path):
        return _store_features(path, classes)
    path = Path(path)
    try:
        with NpzFile(path) as npz:
            names = npz.names
            missing = [key for key in FEATURE_KEYS if key not in names]
            if missing:
                what = "a model file" if "weights" in names else "an .npz file"
                raise _NamedFileError(f"{path}: {what}, not a logreg feature file "
                                   f"(missing {', '.join(missing)})")
            X = (open_x or open_x_array)(npz)
            arrays = {key: npz.read(key) for key in FEATURE_KEYS[1:]}
    except _NamedFileError as error:
        raise ModelFileError(str(error)) from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None
    return _checked_features(path, X, arrays, classes)


def _store_features(location, classes):
    """A Zarr feature store -> Dataset of its valid rows (X read on demand, StoreRows),
    checked as an .npz feature file's arrays are."""
    from .zarrstore import StoreRows, open_store

    store = open_store(location)
    valid = store.valid
    paths = [path for path, keep in zip(store.paths, valid) if keep]
    arrays = {"y": store.y[valid], "classes": np.array(store.classes, dtype=str),
              "paths": np.array(paths, dtype=str).reshape(-1),
              "size": np.array(store.size[::-1], dtype=np.int64),
              "metadata": np.array(json.dumps(store.metadata, ensure_ascii=False))}
    return _checked_features(store.location, StoreRows(store), arrays, classes)


class _NamedFileError(ModelFileError):
    """A feature-file problem whose message already names the file."""


def open_x_array(npz):
    """X of an open feature file: a read-only memory map when stored, else read whole."""
    if not npz.is_stored("X"):
        return npz.read("X")
    feature_matrix_offset(npz, npz.path)  # a C-ordered 2-D uint8 array, or refused
    return npz.memmap("X")


def _checked_features(path, X, arrays, classes):
    size = arrays["size"]
    if size.shape != (2,) or size.dtype.kind not in "iu" or size.min() < 1:
        raise ModelFileError(f"{path}: size must be two positive integers (H, W)")
    height, width = (int(v) for v in size)
    if arrays["classes"].dtype.kind != "U" or arrays["classes"].ndim != 1:
        raise ModelFileError(f"{path}: classes must be a list of names (strings)")
    if arrays["paths"].dtype.kind != "U" or arrays["paths"].ndim != 1:
        raise ModelFileError(f"{path}: paths must be a list of strings")
    y, names = arrays["y"], [class_name(name) for name in arrays["classes"].tolist()]
    try:
        check_class_names(names)
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
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
    metadata = _feature_metadata(arrays["metadata"])
    if not isinstance(metadata.get("source", ""), str):
        # --val-split places each row by its path relative to source
        raise ModelFileError(f"{path}: metadata source must be a string (the folder the paths "
                             f"are relative to), got {type(metadata['source']).__name__}")
    if classes is not None:
        y, names = _to_model_classes(path, y, names, classes, "class")
    return Dataset(X, y.astype(np.int64), names, arrays["paths"].tolist(), (width, height),
                   metadata=metadata)


def _feature_metadata(value):
    """The JSON object of a feature file's metadata string ({} when it is not one)."""
    if value.shape != () or value.dtype.kind != "U":
        return {}
    try:
        metadata = json.loads(str(value))
    except json.JSONDecodeError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def open_feature_matrix(path):
    """X of a feature file as a read-only np.memmap (m x n uint8), straight from the archive
    (checked and mapped through one open of the file)."""
    def mapped(npz):
        feature_matrix_offset(npz, path)  # refuses a compressed or non-uint8 X
        return npz.memmap("X")

    return _with_feature_file(path, mapped)


def locate_feature_matrix(path):
    """(byte offset, (m, n)) of X's uint8 data inside a feature file.

    np.savez stores members uncompressed, so X.npy's bytes lie in the .npz as they are:
    the zip's local header gives where the member starts, the .npy header where its data
    starts. Row blocks X[i:j] then read only those rows from disk, so a feature file
    larger than memory can be streamed. Raises ModelFileError if X is compressed or is
    not a C-ordered 2-D uint8 array.
    """
    return _with_feature_file(path, lambda npz: feature_matrix_offset(npz, path))


def _with_feature_file(path, use):
    """use(npz) on the feature file at path, open once; errors name path."""
    path = Path(path)
    try:
        with NpzFile(path) as npz:
            return use(npz)
    except _NamedFileError as error:
        raise ModelFileError(str(error)) from None
    except ModelFileError as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None


def feature_matrix_offset(npz, path):
    """(byte offset, (m, n)) of X's data in an open feature file (see locate_feature_matrix)."""
    if "X" not in npz.names:
        raise _NamedFileError(f"{path}: not a logreg feature file (no X)")
    if not npz.is_stored("X"):
        raise _NamedFileError(f"{path}: X is compressed, so it cannot be memory-mapped "
                              "(write the file with `logreg flatten` or np.savez)")
    header = npz.header("X")
    if header.dtype != np.uint8 or len(header.shape) != 2 or header.fortran_order:
        order = " (Fortran order)" if header.fortran_order else ""
        raise _NamedFileError(f"{path}: X must be a C-ordered m x n uint8 array, "
                              f"got {header.dtype} {header.shape}{order}")
    data_start, _ = npz.data_offset("X")
    return data_start, header.shape
