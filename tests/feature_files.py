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
