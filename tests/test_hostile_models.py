"""Hostile and broken model files through every command that reads a model.

tests/test_model.py checks load_model on many bad files; here each kind goes through predict,
evaluate, inspect and explain as a user runs them: exit 2, stdout empty, one stderr line
`Error: <file>: <what is wrong>`, no traceback; a pickle inside never runs.
"""

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from logreg_cli.model import FORMAT_VERSION
from tiny_models import CreatesFileWhenUnpickled, train_model, write_class_folders


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """(a trained 8x8 model, a labelled folder, one image)."""
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    paths = write_class_folders(data, ["blue", "red"], 4)
    model = train_model(data, root / "good.npz", epochs=10)
    return model, data, paths[0]


def arrays_of(model_path, **changes):
    with np.load(model_path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(changes)
    return {key: value for key, value in arrays.items() if value is not None}


def npz_bytes(arrays, **options):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **options)
    return buffer.getvalue()


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def npy_header(shape, descr="<f4"):
    """A .npy version 1.0 header for an array of shape, padded as numpy pads it."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def members_of(model_path):
    with zipfile.ZipFile(model_path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def pickled_weights(good, folder):
    payload = np.empty(1, dtype=object)
    payload[0] = CreatesFileWhenUnpickled(folder / "pwned")
    return npz_bytes(arrays_of(good, weights=payload), allow_pickle=True)


def metadata_of(good, text):
    return npz_bytes(arrays_of(good, metadata=np.array(text)))


def member_replaced(good, name, content):
    members = members_of(good)
    members[name] = content
    return zip_bytes(members)


def huge_claimed_weights(good):
    """weights.npy whose header claims 10^12 floats (4 TB) in a file of a few KB."""
    return member_replaced(good, "weights.npy", npy_header((10**6, 10**6)) + b"\0" * 64)


def deflate_ratio_lie(good):
    """A member whose zip entry claims far more bytes than deflate can make of its data."""
    data = bytearray(zip_bytes(members_of(good), zipfile.ZIP_DEFLATED))
    start = data.index(b"PK\x01\x02")  # the central directory's first entry: file_size at +24
    while start != -1:
        data[start + 24 : start + 28] = struct.pack("<I", 0xFFFF0000)
        start = data.find(b"PK\x01\x02", start + 4)
    return bytes(data)


def damaged_npy_header(good):
    members = members_of(good)
    members["bias.npy"] = members["bias.npy"].replace(b"'shape': (", b"'shape'\0\0\0")
    return zip_bytes(members)


def encrypted_flag(good):
    data = bytearray(npz_bytes(arrays_of(good)))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + flag_offset] |= 1
            start = data.find(signature, start + 4)
    return bytes(data)


def feature_file(good, data_folder):
    buffer = io.BytesIO()
    X = np.zeros((2, 192), dtype=np.uint8)
    np.savez(buffer, X=X, y=np.array([0, 1]), classes=np.array(["blue", "red"]),
             paths=np.array(["a.png", "b.png"]), size=np.array([8, 8]), metadata=np.array("{}"))
    return buffer.getvalue()


# name -> (function(good model path, folder) -> file bytes, words the error line holds)
HOSTILE = {
    "empty": (lambda good, folder: b"", ["not an .npz"]),
    "truncated": (lambda good, folder: good.read_bytes()[: good.stat().st_size // 2], ["damaged"]),
    "random-bytes": (lambda good, folder: np.random.default_rng(1).integers(
        0, 256, 3000, dtype=np.uint8).tobytes(), ["not an .npz"]),
    "random-after-zip-magic": (lambda good, folder: b"PK\x03\x04" + np.random.default_rng(2)
                               .integers(0, 256, 3000, dtype=np.uint8).tobytes(), ["damaged"]),
    "zip-not-npz": (lambda good, folder: zip_bytes({"notes.txt": b"hello"}), ["not a logreg model", "missing"]),
    "text-file": (lambda good, folder: b"weights = [1, 2, 3]\n", ["not an .npz"]),
    "pickle-payload": (pickled_weights, ["Python objects"]),
    "missing-weights": (lambda good, folder: npz_bytes(arrays_of(good, weights=None)),
                        ["missing weights"]),
    "missing-everything-but-weights": (lambda good, folder: npz_bytes(
        {"weights": arrays_of(good)["weights"]}), ["missing format_version"]),
    "weights-rows": (lambda good, folder: npz_bytes(arrays_of(
        good, weights=np.zeros((191, 1), np.float32))), ["weights", "(191, 1)", "(192, 1)"]),
    "size-mismatch": (lambda good, folder: npz_bytes(arrays_of(
        good, size=np.array([16, 16]))), ["weights", "(768, 1)"]),
    "bias-shape": (lambda good, folder: npz_bytes(arrays_of(
        good, bias=np.zeros((2, 2), np.float32))), ["bias"]),
    "nan-weights": (lambda good, folder: npz_bytes(arrays_of(
        good, weights=np.full((192, 1), np.nan, np.float32))), ["NaN"]),
    "inf-bias": (lambda good, folder: npz_bytes(arrays_of(
        good, bias=np.array([np.inf], np.float32))), ["NaN or infinity"]),
    "newer-version": (lambda good, folder: npz_bytes(arrays_of(
        good, format_version=np.int64(FORMAT_VERSION + 1))),
        [f"version {FORMAT_VERSION + 1}", f"reads version {FORMAT_VERSION}"]),
    "string-weights": (lambda good, folder: npz_bytes(arrays_of(
        good, weights=np.full((192, 1), "w"))), ["weights", "dtype"]),
    "feature-file": (feature_file, ["feature file"]),
    "huge-claimed-shape": (lambda good, folder: huge_claimed_weights(good),
                           ["weights.npy", "more than it holds"]),
    "deflate-ratio-lie": (lambda good, folder: deflate_ratio_lie(good), ["claims more bytes"]),
    "damaged-npy-header": (lambda good, folder: damaged_npy_header(good),
                           ["bias.npy", "damaged array header"]),
    "member-not-an-array": (lambda good, folder: member_replaced(
        good, "weights.npy", b"just some text"), ["weights.npy", "not a numpy array"]),
    "encrypted": (lambda good, folder: encrypted_flag(good), ["encrypted"]),
    "classes-not-unicode": (lambda good, folder: npz_bytes(arrays_of(
        good, classes=np.array([0x61, 0x1000061], dtype="<u4").view("<U1"))), ["classes"]),
    "metadata-not-json": (lambda good, folder: metadata_of(good, "{oops"), ["metadata"]),
    "metadata-too-deep": (lambda good, folder: metadata_of(good, "[" * 100000 + "]" * 100000),
                          ["metadata"]),
    "metadata-history-a-list": (lambda good, folder: metadata_of(
        good, json.dumps({"history": [1, 2]})), ["history"]),
    "metadata-cost-strings": (lambda good, folder: metadata_of(
        good, json.dumps({"history": {"cost": ["low", "high"]}})), ["history", "cost"]),
    "metadata-options-a-string": (lambda good, folder: metadata_of(
        good, json.dumps({"options": "fast"})), ["options"]),
}


def command_line(command, model_path, data, image):
    return {
        "predict": ["predict", image, "-m", model_path],
        "evaluate": ["evaluate", data, "-m", model_path],
        "inspect": ["inspect", model_path],
        "explain": ["explain", image, "-m", model_path],
    }[command]


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect", "explain"])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_model_is_one_error_line_naming_the_file(tmp_path, setting, kind, command):
    good, data, image = setting
    make, words = HOSTILE[kind]
    path = tmp_path / "hostile.npz"
    path.write_bytes(make(good, tmp_path))

    result = CliRunner().invoke(cli, [str(a) for a in command_line(command, path, data, image)])

    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {path}: ")
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "pwned").exists()


def test_the_pickle_payload_is_live(tmp_path, setting):
    """Control: loading the pickle-payload file with pickles allowed does create the file."""
    good = setting[0]
    path = tmp_path / "hostile.npz"
    path.write_bytes(pickled_weights(good, tmp_path))
    with np.load(path, allow_pickle=True) as archive:
        archive["weights"]
    assert (tmp_path / "pwned").exists()


def test_the_good_model_works_with_every_command(tmp_path, setting):
    """Control: the file every hostile one is made from passes through the same commands."""
    good, data, image = setting
    for command in ("predict", "evaluate", "inspect", "explain"):
        result = CliRunner().invoke(cli, [str(a) for a in command_line(command, good, data, image)])
        assert result.exit_code == 0, (command, result.stderr)


def test_a_model_compressed_with_savez_compressed_loads(tmp_path, setting):
    """Not hostile: a model rewritten with np.savez_compressed is still a model."""
    good, data, image = setting
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **arrays_of(good))
    result = CliRunner().invoke(cli, ["predict", str(image), "-m", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{image}\t")
