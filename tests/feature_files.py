"""Feature files as `logreg flatten` writes them, generated block by block (for the
streaming tests and tests/bench/bench_epoch.py): nothing ever holds all of X."""

import io
import zipfile

import numpy as np


def write_feature_file(path, m, size=(64, 64), seed=0, block_rows=2048):
    """A feature file as `logreg flatten` writes it, generated block by block so that the
    test never holds all of X. Two classes told apart by the mean of the first pixels."""
    n = size[0] * size[1] * 3
    rng = np.random.default_rng(seed)
    labels = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("X.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": (m, n)})
            for start in range(0, m, block_rows):
                block = rng.integers(0, 256, (min(block_rows, m - start), n), dtype=np.uint8)
                labels.append((block[:, :30].mean(axis=1) > 127.5).astype(np.int64))
                member.write(block.tobytes())
        y = np.concatenate(labels)
        small = {"y": y, "classes": np.array(["dark", "light"]),
                 "paths": np.array([f"data/{i:07d}.png" for i in range(m)]),
                 "size": np.array([size[1], size[0]], dtype=np.int64),
                 "metadata": np.array('{"source": "data"}')}
        for key, value in small.items():
            buffer = io.BytesIO()
            np.save(buffer, value, allow_pickle=False)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


def write_feature_file_claiming_rows(path, stored_rows, claimed_rows, x_last=False, size=(8, 8)):
    """A feature file of stored_rows images whose X.npy header and zip headers (local and
    central) all claim claimed_rows: every size field agrees, the bytes are not there.
    x_last puts X after the other members (its claim then runs into the zip directory)."""
    n = size[0] * size[1] * 3
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (claimed_rows, n)})
    x_member = header.getvalue() + bytes(stored_rows * n)
    small = {"y": np.zeros(claimed_rows, np.int64), "classes": np.array(["blue", "red"]),
             "paths": np.array([f"{i}.png" for i in range(claimed_rows)]),
             "size": np.array([size[1], size[0]], dtype=np.int64),
             "metadata": np.array("{}")}
    members = {}
    for key, value in small.items():
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        members[f"{key}.npy"] = buffer.getvalue()
    order = [*members, "X.npy"] if x_last else ["X.npy", *members]
    members["X.npy"] = x_member
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in order:
            archive.writestr(name, members[name])
    data = bytearray(open(path, "rb").read())
    claimed = len(header.getvalue()) + claimed_rows * n
    for signature, size_offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        at = data.find(signature + b"", 0)
        while at != -1:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            name_length = int.from_bytes(data[at + (26 if name_offset == 30 else 28):][:2], "little")
            if bytes(data[at + name_offset : at + name_offset + name_length]) == b"X.npy":
                data[at + size_offset : at + size_offset + 8] = claimed.to_bytes(4, "little") * 2
            at = data.find(signature, at + 4)
    with open(path, "wb") as file:
        file.write(data)
    return path
