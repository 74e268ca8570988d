"""`logreg check`: audit a data set before training.

Reports images per class, the sizes and modes stored, unreadable files, exact duplicate
images (same decoded pixels, whatever the file format) within the data and shared with
another set (a train/test leak), and class imbalance. A report is a plain dict (JSON-ready);
its "problems" list is empty when the data is clean.
"""

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import (ClassLeftOut, SharedFile, is_feature_file, list_data, load_features,
                      unread_class)
from .errors import ImageError
from .images import THREADS_FROM_BYTES, decode_full, ordered_map, typical_file_bytes
from .names import shown
from .zarrstore import store_location

DEFAULT_MAX_IMBALANCE = 3.0


@dataclass
class Facts:
    """What check learns from one image: stored size and mode and a pixel digest, or an error."""

    size: tuple = None  # (width, height), EXIF-oriented
    mode: str = None
    digest: str = None
    error: ImageError = None


@dataclass
class Scan:
    """One data set: its class names, and for each listed image its path, label and facts."""

    source: str
    classes: list
    paths: list
    labels: list
    facts: list
    strays: list  # ImageErrors of files that are not images by name or belong to no class


def pixel_digest(pixels):
    """SHA-256 of an H x W x 3 uint8 array and its shape: equal only for identical pictures."""
    digest = hashlib.sha256(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


def image_facts(path):
    try:
        pixels, mode = decode_full(path)
    except ImageError as error:
        return Facts(error=error)
    return Facts(size=(pixels.shape[1], pixels.shape[0]), mode=mode, digest=pixel_digest(pixels))


def scan(path, jobs=None, on_total=None, on_image=None):
    """Decode every image of DATA (folder, labels file or feature file) -> Scan.

    Paths in the Scan are names.shown(): undecodable bytes escaped as \\xNN, printable on any
    UTF-8 stream."""
    if is_feature_file(path):
        data = load_features(path)
        width, height = data.size
        if on_total is not None:
            on_total(len(data.y))
        facts = []
        for row in data.X:
            facts.append(Facts((width, height), "feature row",
                               pixel_digest(np.asarray(row).reshape(height, width, 3))))
            if on_image is not None:
                on_image()
        return Scan(shown(store_location(path)), data.classes, [shown(p) for p in data.paths],
                    data.y.tolist(), facts, [])
    paths, labels, classes, strays = list_data(path)
    if on_total is not None:
        on_total(len(paths))
    if typical_file_bytes(paths) < THREADS_FROM_BYTES:
        jobs = 1  # small files: threads only add contention for the GIL (bench_load.py)
    facts = []
    for _, found in ordered_map(image_facts, paths, jobs):
        facts.append(found)
        if on_image is not None:
            on_image()
    return Scan(shown(str(path)), classes, [shown(str(p)) for p in paths], labels.tolist(), facts,
                strays)


def audit(data, other=None, max_imbalance=DEFAULT_MAX_IMBALANCE):
    """A Scan (and optionally a second one to compare with) -> report dict with "problems"."""
    report = _describe(data)
    problems = []
    if report["unreadable"]:
        problems.append(f"{len(report['unreadable'])} unreadable file(s) in {data.source}")
    problems += [f"{item['path']}: {item['cause']}" for item in report["left_out"]]
    if report["shared_files"]:
        problems.append(f"{len(report['shared_files'])} file(s) under two classes in "
                        f"{data.source} (left out of training)")
    duplicates = _duplicate_groups(data)
    report["duplicates"] = duplicates
    if duplicates:
        conflicting = sum(1 for group in duplicates if len(set(group["labels"])) > 1)
        extra = f", {conflicting} of them under different classes" if conflicting else ""
        problems.append(f"{len(duplicates)} group(s) of identical images in {data.source}{extra}")
    report["imbalance"] = _imbalance(report["classes"], max_imbalance)
    problems += report["imbalance"].pop("problems")
    if other is not None:
        report["against"] = _describe(other)
        shared = _shared_images(data, other)
        report["against"]["shared"] = shared
        if report["against"]["unreadable"]:
            problems.append(f"{len(report['against']['unreadable'])} unreadable file(s) in "
                            f"{other.source}")
        if shared:
            problems.append(f"{len(shared)} image(s) of {data.source} also in {other.source} "
                            "(a train/test leak)")
    report["problems"] = problems
    return report


def _describe(data):
    readable = [(label, facts) for label, facts in zip(data.labels, data.facts) if not facts.error]
    per_class = Counter(data.classes[label] for label, _ in readable)
    listed = Counter(data.classes[label] for label in data.labels)
    without_images = [unread_class(_class_source(data, name), name, listed[name])
                      for name in data.classes if listed[name] and not per_class.get(name)]
    without_images += [ClassLeftOut(data.source, name, "holds no images")  # a feature file's
                       for name in data.classes if not listed[name]]
    left_out = [{"class": e.class_name, "path": e.path, "cause": e.cause}
                for e in data.strays + without_images if isinstance(e, ClassLeftOut)]
    gone = {item["class"] for item in left_out}
    others = [e for e in data.strays if not isinstance(e, (ClassLeftOut, SharedFile))]
    return {
        "data": data.source,
        "images": len(data.paths),
        "readable": len(readable),
        "classes": {name: per_class.get(name, 0) for name in data.classes if name not in gone},
        "left_out": left_out,
        "shared_files": [{"path": e.path, "same_as": e.first, "classes": e.classes}
                         for e in data.strays if isinstance(e, SharedFile)],
        "sizes": _counts(f"{f.size[0]}x{f.size[1]}" for _, f in readable),
        "modes": _counts(f.mode for _, f in readable),
        "unreadable": [{"path": shown(f.error.path), "cause": f.error.cause}
                       for f in data.facts if f.error],
        "ignored": [{"path": e.path, "cause": e.cause} for e in others],
    }


def _class_source(data, name):
    """What names a class: its folder (the first path's folder below DATA) or DATA."""
    first = next(path for path, label in zip(data.paths, data.labels)
                 if data.classes[label] == name)
    source = Path(data.source)
    if source.is_dir():
        return str(source / Path(first).relative_to(source).parts[0])
    return data.source


def _counts(values):
    """Most common first, then by name: {"64x64": 200, "32x32": 9}."""
    return dict(sorted(Counter(values).items(), key=lambda item: (-item[1], item[0])))


def _by_digest(data):
    groups = defaultdict(list)
    for index, facts in enumerate(data.facts):
        if facts.digest:
            groups[facts.digest].append(index)
    return groups


def _duplicate_groups(data):
    return [
        {"paths": [data.paths[i] for i in members],
         "labels": [data.classes[data.labels[i]] for i in members]}
        for members in _by_digest(data).values() if len(members) > 1
    ]


def _shared_images(data, other):
    others = _by_digest(other)
    shared = []
    for digest, members in _by_digest(data).items():
        if digest in others:
            for i in members:
                shared.append({"path": data.paths[i], "label": data.classes[data.labels[i]],
                               "other_paths": [other.paths[j] for j in others[digest]]})
    return shared


def _imbalance(class_counts, max_imbalance):
    counts = dict(class_counts)
    result = {"limit": max_imbalance, "largest": None, "smallest": None, "ratio": None,
              "problems": []}
    if len(counts) < 2:
        result["problems"].append(f"{len(counts)} class(es): training needs at least two")
        return result
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    result.update(largest=largest, smallest=smallest)
    if counts[smallest] == 0:
        result["problems"].append(f"class {smallest!r} has no readable images")
        return result
    ratio = counts[largest] / counts[smallest]
    result["ratio"] = round(ratio, 3)
    if ratio > max_imbalance:
        result["problems"].append(
            f"class imbalance: {largest!r} has {ratio:.1f}x the images of {smallest!r} "
            f"({counts[largest]} vs {counts[smallest]}; limit {max_imbalance:g}x; "
            "consider --class-weight balanced)")
    return result
