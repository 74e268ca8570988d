"""Small hostile model files that claim gigabytes (issue 11, part "files").

Each is a few MB on disk. The reader checks names, sizes and shapes from the zip directory
and the .npy headers before it reads or decompresses any array, so each is refused with one
line in well under a second and well under 100 MB more than a good model costs. Time and
peak memory are measured in a real `logreg` process (tiny_models.run_measured).

Also run by hand to print the figures: python tests/test_files_hostile.py DIR
"""

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from tiny_models import run_measured, train_model, write_class_folders

CHUNK = 2**20
# The `logreg` program, reporting its own peak memory (KB) and time on stderr's last line.


def npy_header(descr, shape):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def deflated_zeros(header, n_bytes, byte=b"\0"):
    """(raw deflate data, crc) of header followed by n_bytes copies of byte, made in
    ~1 MB of output without compressing gigabytes: blocks ended by a full flush are
    independent, so one compressed block of a chunk stands for every repetition of it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = byte * CHUNK
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(n_bytes, CHUNK)
    data = start + block * count + compressor.compress(byte * rest) + compressor.flush()
    crc = zlib.crc32(header)
    for _ in range(count):  # ~1 ms per MB
        crc = zlib.crc32(chunk, crc)
    return data, zlib.crc32(byte * rest, crc)


def raw_zip(entries, listed=None):
    """A zip archive of entries [(name, method, data, crc, file_size)] whose central
    directory lists `listed` (indices into entries, default each once)."""
    out, offsets = io.BytesIO(), []
    for name, method, data, crc, size in entries:
        offsets.append(out.tell())
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data),
                              size, len(name), 0) + name.encode() + data)
    directory = out.tell()
    listed = range(len(entries)) if listed is None else listed
    for index in listed:
        name, method, data, crc, size = entries[index]
        out.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                              len(data), size, len(name), 0, 0, 0, 0, 0, offsets[index])
                  + name.encode())
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(listed), len(listed),
                          out.tell() - directory, directory, 0))
    return out.getvalue()


def stored_entries(model_path, leave_out=()):
    """The members of a good model as raw_zip entries (stored), but those in leave_out."""
    import zipfile

    entries = []
    with zipfile.ZipFile(model_path) as archive:
        for info in archive.infolist():
            if info.filename[:-4] not in leave_out:
                data = archive.read(info)
                entries.append((info.filename, 0, data, zlib.crc32(data), len(data)))
    return entries


def deflate_bomb(good):
    """weights.npy: 1 GB of zeros, shape (268435456, 1), in 1 MB of deflate."""
    data, crc = deflated_zeros(npy_header("<f4", (268435456, 1)), 268435456 * 4)
    header_length = len(npy_header("<f4", (268435456, 1)))
    return raw_zip(stored_entries(good, {"weights"})
                   + [("weights.npy", 8, data, crc, header_length + 268435456 * 4)])


def listed_forty_times(good):
    """A 100 MB deflated weights.npy of the right shape for a 4096x2731 model, listed 40
    times in the zip directory (with size set to match)."""
    height, width = 2731, 4096
    rows = height * width * 3
    header = npy_header("<f4", (rows, 1))
    data, crc = deflated_zeros(header, rows * 4)
    size = io.BytesIO()
    np.save(size, np.array([height, width], dtype=np.int64))
    entries = stored_entries(good, {"weights", "size"}) + [
        ("size.npy", 0, size.getvalue(), zlib.crc32(size.getvalue()), len(size.getvalue())),
        ("weights.npy", 8, data, crc, len(header) + rows * 4)]
    return raw_zip(entries, listed=list(range(len(entries))) + [len(entries) - 1] * 39)


def weights_claiming_2gb(good):
    """weights.npy: 2 GB of zeros in 2 MB of deflate, of the shape a 16384x10923 model has
    (size.npy says so): every header agrees, only the size gives it away."""
    height, width = 10923, 16384
    rows = height * width * 3
    header = npy_header("<f4", (rows, 1))
    data, crc = deflated_zeros(header, rows * 4)
    size = io.BytesIO()
    np.save(size, np.array([height, width], dtype=np.int64))
    return raw_zip(stored_entries(good, {"weights", "size"}) + [
        ("size.npy", 0, size.getvalue(), zlib.crc32(size.getvalue()), len(size.getvalue())),
        ("weights.npy", 8, data, crc, len(header) + rows * 4)])


HOSTILE = {
    "deflate-bomb": (deflate_bomb, ["weights has shape (268435456, 1), expected (192, 1)"]),
    "member-listed-40-times": (listed_forty_times,
                               ["weights.npy is listed more than once in the archive"]),
    "weights-claiming-2gb": (weights_claiming_2gb,
                             ["weights.npy is compressed and would expand to 2048 MB"]),
}


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_sizes")
    write_class_folders(root / "data", ["blue", "red"], 3)
    return train_model(root / "data", root / "good.npz", epochs=5), root / "data" / "blue" / "000.png"


@pytest.fixture(scope="module")
def baseline(good_model):
    """Peak RSS (MB) of `logreg inspect` on the good model: the program's own memory."""
    code, lines, peak, _ = run_measured("inspect", good_model[0])
    assert code == 0, lines
    return peak


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_small_hostile_model_is_refused_at_once(tmp_path, good_model, baseline, kind):
    good, image = good_model
    make, words = HOSTILE[kind]
    path = tmp_path / f"{kind}.npz"
    path.write_bytes(make(good))
    assert path.stat().st_size < 4 * 2**20

    for command in (["predict", image, "-m", path], ["inspect", path]):
        code, lines, peak, seconds = run_measured(*command)
        assert code == 2, lines
        assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: "), lines
        for word in words:
            assert word in lines[0], lines
        assert seconds < 2.0, f"{seconds:.2f} s to refuse {kind}"
        assert peak - baseline < 100, f"{peak - baseline:.0f} MB more than a good model"


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    write_class_folders(folder / "data", ["blue", "red"], 3)
    good = train_model(folder / "data", folder / "good.npz", epochs=5)
    print("good model:", run_measured("inspect", good))
    for kind, (make, _) in HOSTILE.items():
        path = folder / f"{kind}.npz"
        path.write_bytes(make(good))
        code, lines, peak, seconds = run_measured("inspect", path)
        print(f"{kind}: {path.stat().st_size / 2**20:.1f} MB file, exit {code}, "
              f"{seconds:.2f} s, peak RSS {peak:.0f} MB: {lines[-1][:150] if lines else ''}")
