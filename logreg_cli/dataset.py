"""Data layouts -> a Dataset of uint8 pixel rows, labels, class names and source paths.

Layouts: a folder with one subfolder per class (sorted names are the class order; nested
folders inside a class belong to it; hidden files and folders are ignored), or a feature
file written by `logreg flatten` (an uncompressed .npz).
"""

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import write_atomically
from .errors import DataError, ModelFileError
from .images import is_image_name, load_images

FEATURE_KEYS = ("X", "y", "classes", "paths", "size", "metadata")


@dataclass
class Dataset:
    """X is m x n uint8 (one unrolled H x W x 3 image per row); y indexes classes."""

    X: np.ndarray
    y: np.ndarray
    classes: list
    paths: list
    size: tuple  # (width, height)
    skipped: list = field(default_factory=list)

    def class_counts(self):
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}


def is_hidden(name):
    return name.startswith(".")


def class_folders(root):
    """Sorted (name, path) of the non-hidden subfolders of root (symlinks followed)."""
    return sorted(
        (entry.name, Path(entry.path))
        for entry in os.scandir(root)
        if not is_hidden(entry.name) and entry.is_dir()
    )


def image_files(folder):
    """Image files anywhere below folder, sorted, hidden files and folders left out."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        found.extend(Path(top) / name for name in files if is_image_name(name))
    return sorted(found)


def is_feature_file(path):
    """True when path is a file that starts like a zip archive (what flatten writes)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as file:
        return file.read(4) == b"PK\x03\x04"


def load_data(path, size, classes=None, jobs=None, on_error=None, on_image=None):
    """A class folder or a feature file -> Dataset.

    classes: the model's class names when evaluating (folder names must be among them);
    None when training (the folders define the classes). size is (width, height).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_file():
        if not is_feature_file(path):
            raise DataError(f"{path}: not a folder of class subfolders nor a feature file")
        return load_features(path, classes)
    return load_folder(path, size, classes, jobs, on_error, on_image)


def list_folder(root, classes=None):
    """(paths, labels, class names) of a folder of class subfolders, before decoding."""
    folders = class_folders(root)
    names = [name for name, _ in folders]
    if classes is None:
        classes = names
    else:
        unknown = [name for name in names if name not in classes]
        if unknown:
            raise DataError(
                f"{root}: class folder {unknown[0]!r} is not one of the model's classes "
                f"({', '.join(classes)})"
            )
    paths, labels = [], []
    for name, folder in folders:
        files = image_files(folder)
        paths.extend(files)
        labels.extend([classes.index(name)] * len(files))
    if not paths:
        raise DataError(f"{root}: found 0 images (expected one subfolder of images per class)")
    return paths, np.array(labels, dtype=np.int64), list(classes)


def load_folder(root, size, classes=None, jobs=None, on_error=None, on_image=None):
    """Decode every image of a class-folder layout (see list_folder) at size."""
    paths, labels, classes = list_folder(root, classes)
    skipped = []

    def skip(error):
        skipped.append(error)
        if on_error is not None:
            on_error(error)

    X, kept = load_images(paths, size, jobs=jobs, on_error=skip, on_image=on_image)
    if not kept:
        raise DataError(f"{root}: none of the {len(paths)} image files could be read")
    return Dataset(X, labels[kept], classes, [str(paths[i]) for i in kept], tuple(size), skipped)


def require_classes(dataset, source):
    """Training needs at least two classes that have images."""
    present = [name for name, count in dataset.class_counts().items() if count]
    if len(present) < 2:
        found = f"only one class: {present[0]!r}" if present else "no classes"
        raise DataError(f"{source}: found {found} (training needs at least two)")


# ---------------------------------------------------------------- feature files


def save_features(dataset, path, metadata=None):
    """Write dataset as an uncompressed .npz feature file, atomically."""
    width, height = dataset.size
    arrays = {
        "X": dataset.X,
        "y": dataset.y.astype(np.int64),
        "classes": np.array(dataset.classes, dtype=str),
        "paths": np.array(dataset.paths, dtype=str),
        "size": np.array([height, width], dtype=np.int64),
        "metadata": np.array(json.dumps(metadata or {})),
    }
    write_atomically(path, lambda file: np.savez(file, **arrays))


def load_features(path, classes=None):
    """Read a feature file written by save_features; raise ModelFileError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in FEATURE_KEYS if key not in archive.files]
            if missing:
                what = "a model file" if "weights" in archive.files else "a feature file"
                raise ModelFileError(f"{path}: {what}, not a logreg feature file "
                                     f"(missing {', '.join(missing)})")
            arrays = {key: archive[key] for key in FEATURE_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"{path}: not a readable feature file ({error})") from None
    size, y, names = arrays["size"], arrays["y"], arrays["classes"]
    if size.shape != (2,) or size.dtype.kind not in "iu" or (size < 1).any():
        raise ModelFileError(f"{path}: size must be two positive integers, got {size.tolist()}")
    if names.ndim != 1 or names.dtype.kind != "U":
        raise ModelFileError(f"{path}: classes must be a list of names")
    if y.ndim != 1 or y.dtype.kind not in "iu" or (len(y) and not 0 <= y.min() <= y.max() < len(names)):
        raise ModelFileError(f"{path}: y must hold class indices from 0 to {len(names) - 1}")
    height, width = (int(v) for v in size)
    X = arrays["X"]
    if X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != height * width * 3 or len(y) != len(X):
        raise ModelFileError(f"{path}: X must be m x {height * width * 3} uint8 with m labels")
    file_classes = arrays["classes"].tolist()
    if classes is not None:
        unknown = [name for name in file_classes if name not in classes]
        if unknown:
            raise DataError(f"{path}: class {unknown[0]!r} is not one of the model's classes "
                            f"({', '.join(classes)})")
        y = np.array([classes.index(file_classes[i]) for i in range(len(file_classes))])[y]
        file_classes = list(classes)
    return Dataset(X, y.astype(np.int64), file_classes, arrays["paths"].tolist(), (width, height))
