"""logreg_cli.zarrstore: the Zarr v3 feature store's format and its reading API."""

import json
import sys

import numpy as np
import pytest

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli import zarrstore  # noqa: E402
from logreg_cli.errors import LogregError, ModelFileError  # noqa: E402

SIZE = (4, 2)  # width, height: n = 24


def write_store(location, m=7, n=24, valid=None, finish=True):
    """A store of m rows whose row i is filled with i (mod 256); labels alternate."""
    writer = zarrstore.StoreWriter(location, m, n)
    X = (np.arange(m)[:, None] % 256 * np.ones((1, n))).astype(np.uint8)
    valid = np.ones(m, dtype=bool) if valid is None else np.asarray(valid)
    writer.write_rows(0, X, np.arange(m) % 2, valid)
    if finish:
        writer.finish(["cat", "non-cat"], [f"img/{i}.png" for i in range(m)], SIZE,
                      {"images": m, "source": "img"})
    return writer, X


def test_store_round_trip_has_every_array_and_the_metadata(tmp_path):
    _, X = write_store(tmp_path / "f.zarr", valid=[1, 1, 0, 1, 1, 1, 1])
    store = zarrstore.open_store(tmp_path / "f.zarr")
    assert (store.m, store.n, store.size) == (7, 24, SIZE)
    assert store.classes == ["cat", "non-cat"]
    assert store.y.tolist() == [0, 1, 0, 1, 0, 1, 0]
    assert store.valid.tolist() == [True, True, False, True, True, True, True]
    assert store.paths == [f"img/{i}.png" for i in range(7)]
    assert store.metadata == {"format": "logreg-features", "format_version": 1, "images": 7,
                              "source": "img"}
    rows = store.rows(2, 5)
    assert rows.dtype == np.uint8 and np.array_equal(rows, X[2:5])
    assert np.array_equal(store.take([0, 1, 5]), X[[0, 1, 5]])
    assert not list(tmp_path.glob(".*"))  # the temporary folder was renamed into place


def test_store_layout_is_uncompressed_row_chunks_of_about_24_mb(tmp_path):
    n = 64 * 64 * 3
    write_store(tmp_path / "f.zarr", m=3, n=n)
    X = zarr.open_group(str(tmp_path / "f.zarr"), mode="r")["X"]
    assert zarrstore.rows_per_chunk(n) == 24 * 2**20 // n == 2048
    assert X.chunks == (2048, n) and X.dtype == np.uint8 and X.compressors == ()
    assert zarrstore.rows_per_chunk(30 * 2**20) == 1  # one row over 24 MB: chunks of one row


def test_half_written_store_is_refused_as_incomplete(tmp_path):
    writer, _ = write_store(tmp_path / "f.zarr", finish=False)
    with pytest.raises(ModelFileError, match=r"^.*\.tmp: incomplete store \(no completion "
                                             r"marker.*arrays present: X, valid, y\)"):
        zarrstore.open_store(writer.target)
    assert not (tmp_path / "f.zarr").exists()  # nothing at -o until it is complete


def test_marker_removed_makes_a_store_incomplete(tmp_path):
    write_store(tmp_path / "f.zarr")
    group = zarr.open_group(str(tmp_path / "f.zarr"), mode="r+")
    group.attrs.update({zarrstore.COMPLETE: False})
    with pytest.raises(ModelFileError, match=r"f\.zarr: incomplete store"):
        zarrstore.open_store(tmp_path / "f.zarr")


def test_replacing_a_store_keeps_the_old_one_until_the_new_is_complete(tmp_path):
    write_store(tmp_path / "f.zarr", m=3)
    writer, _ = write_store(tmp_path / "f.zarr", m=5, finish=False)
    assert zarrstore.open_store(tmp_path / "f.zarr").m == 3
    writer.finish(["a", "b"], ["p"] * 5, SIZE, {})
    assert zarrstore.open_store(tmp_path / "f.zarr").m == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr"]


def rewrite(location, name, data):
    group = zarr.open_group(str(location), mode="r+")
    del group[name]
    if data is not None:
        group.create_array(name, data=data)


@pytest.mark.parametrize("name, data, message", [
    ("X", None, r"damaged store \(missing X\)"),
    ("valid", None, r"damaged store \(missing valid\)"),
    ("paths", None, r"damaged store \(missing paths\)"),
    ("X", np.zeros((7, 24), np.float32), r"X must be m x n uint8, got float32 \(7, 24\)"),
    ("X", np.zeros(7 * 24, np.uint8), r"X must be m x n uint8, got uint8 \(168,\)"),
    ("X", np.zeros((7, 12), np.uint8), r"X must be m x 24 uint8 \(size 4x2\), got 7 x 12"),
    ("y", np.zeros(7, np.float64), r"y must be m integer labels, got float64 \(7,\)"),
    ("y", np.zeros(6, np.int64), r"y must have one entry per row of X \(7\), got shape \(6,\)"),
    ("y", np.full(7, 2, np.int64), r"y must index the 2 classes"),
    ("valid", np.ones(7, np.uint8), r"valid must be m booleans, got uint8"),
    ("paths", np.zeros(7, np.int64), r"paths must be m strings, got int64"),
    ("size", np.array([2, 4, 1]), r"size must be two integers \(H, W\)|size must be two"),
    ("size", np.array([0, 4]), r"size must be two positive integers"),
])
def test_each_bad_store_kind_is_one_line_naming_the_store(tmp_path, name, data, message):
    write_store(tmp_path / "f.zarr")
    rewrite(tmp_path / "f.zarr", name, data)
    with pytest.raises(ModelFileError) as raised:
        store = zarrstore.open_store(tmp_path / "f.zarr")
        store.y, store.valid, store.paths  # noqa: B018 (read lazily)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(f"{tmp_path / 'f.zarr'}: ")
    assert __import__("re").search(message, text), text


def test_a_group_with_other_metadata_is_not_a_logreg_store(tmp_path):
    write_store(tmp_path / "f.zarr")
    zarr.open_group(str(tmp_path / "f.zarr"), mode="r+").attrs.update({"metadata": {"x": 1}})
    with pytest.raises(ModelFileError, match=r"f\.zarr: not a logreg feature store"):
        zarrstore.open_store(tmp_path / "f.zarr")


def test_a_folder_that_is_not_a_store_and_a_damaged_zarr_json(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ModelFileError, match=r"empty\.zarr: not a Zarr v3 feature store"):
        zarrstore.open_store(tmp_path / "empty.zarr")
    write_store(tmp_path / "f.zarr")
    (tmp_path / "f.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(ModelFileError, match=r"f\.zarr: not a"):
        zarrstore.open_store(tmp_path / "f.zarr")
    with pytest.raises(ModelFileError, match=r"gone\.zarr: not a Zarr v3 feature store"):
        zarrstore.open_store(tmp_path / "gone.zarr")


def test_a_truncated_chunk_is_a_damaged_store_when_read(tmp_path):
    write_store(tmp_path / "f.zarr")
    chunk = tmp_path / "f.zarr" / "X" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    store = zarrstore.open_store(tmp_path / "f.zarr")
    with pytest.raises(ModelFileError, match=r"f\.zarr: damaged store \(X: "):
        store.rows(0, 2)


def test_store_named_by_a_file_url(tmp_path):
    _, X = write_store(f"file://{tmp_path}/f.zarr")
    assert (tmp_path / "f.zarr" / "zarr.json").is_file()
    assert not list(tmp_path.glob(".*"))
    store = zarrstore.open_store(f"file://{tmp_path}/f.zarr")
    assert np.array_equal(store.rows(0, 7), X) and store.classes == ["cat", "non-cat"]
    assert zarrstore.is_store(f"file://{tmp_path}/f.zarr")
    assert zarrstore.is_store(tmp_path / "f.zarr") and not zarrstore.is_store(tmp_path)


def test_missing_zarr_is_one_line_naming_the_store_and_the_extra(tmp_path, monkeypatch):
    write_store(tmp_path / "f.zarr")
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now raises ImportError
    with pytest.raises(LogregError) as raised:
        zarrstore.open_store(tmp_path / "f.zarr")
    assert str(raised.value) == (f"{tmp_path / 'f.zarr'}: needs the dask extra (zarr is not "
                                 "installed): pip install 'logreg-cli[dask]'")


def test_importing_the_module_does_not_import_zarr():
    import subprocess

    code = ("import sys, logreg_cli.zarrstore, logreg_cli.dataset, logreg_cli.features; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('zarr', 'dask', 'distributed', 'fsspec'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == []


def test_writer_discard_removes_the_temporary(tmp_path):
    writer, _ = write_store(tmp_path / "f.zarr", finish=False)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_store_at_another_url_is_written_in_place_marker_last():
    """memory:// (fsspec's in-process file system) stands for s3:// and the like: no rename
    there, so the store is written where it goes and is incomplete until finish()."""
    location = "memory://logreg-test/f.zarr"
    writer, X = write_store(location, finish=False)
    assert writer.target == location
    with pytest.raises(ModelFileError, match=r"^memory://logreg-test/f\.zarr: incomplete store"):
        zarrstore.open_store(location)
    writer.finish(["cat", "non-cat"], [f"{i}.png" for i in range(7)], SIZE, {})
    assert np.array_equal(zarrstore.open_store(location).rows(0, 7), X)


def test_ctrl_c_during_flatten_keeps_the_old_store(make_image_folder, tmp_path, monkeypatch):
    from logreg_cli import api

    data = make_image_folder({"a": 4, "b": 4})
    api.flatten(data, tmp_path / "f.zarr", size="8x8")
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 2 * 8 * 8 * 3)  # 4 chunks of 2 rows
    seen = []

    def interrupt():
        seen.append(1)
        if len(seen) == 5:  # in the third chunk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.flatten(data, tmp_path / "f.zarr", size="4x4", on_image=interrupt)
    assert zarrstore.open_store(tmp_path / "f.zarr").size == (8, 8)  # the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "f.zarr"]


def test_each_chunk_is_read_once_when_streaming_or_gathering_rows(tmp_path, monkeypatch):
    """zarr reads a whole chunk for any row of it: blocks of a few rows, or the sorted rows
    of a mini-batch, must not read a chunk once per block or per row."""
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 5 * 24)  # chunks of 5 rows
    _, X = write_store(tmp_path / "f.zarr", m=23, valid=[i != 7 for i in range(23)])
    store = zarrstore.open_store(tmp_path / "f.zarr")
    rows = zarrstore.StoreRows(store)
    reads = []
    read = store._read
    monkeypatch.setattr(store, "_read", lambda name, *a: reads.append(name) or read(name, *a))
    blocks = [rows[start : start + 2] for start in range(0, len(rows), 2)]  # 11 blocks
    assert np.array_equal(np.concatenate(blocks), X[np.arange(23) != 7])
    assert reads == ["X"] * 5  # 23 rows in 5 chunks
    reads.clear()
    picked = [0, 1, 3, 8, 9, 12, 13, 20, 21]  # store rows 0, 1, 3, 9, 10, 13, 14, 21, 22
    assert np.array_equal(rows[picked], X[np.arange(23) != 7][picked])
    assert reads == ["X"] * 4  # chunks 0, 1, 2 and 4, each once


@pytest.mark.parametrize("member, text, cause", [
    ("X", "{bad", r"damaged store \(X: Expecting property name"),
    ("y", "{}", r"damaged store \(y: Required key 'node_type' is missing"),
    ("valid", '{"zarr_format": 3, "node_type": "group"}',
     r"damaged store \(valid is a group, not an array\)"),
])
def test_a_damaged_array_description_is_one_line(tmp_path, member, text, cause):
    write_store(tmp_path / "f.zarr")
    (tmp_path / "f.zarr" / member / "zarr.json").write_text(text)
    with pytest.raises(ModelFileError, match=rf"^{tmp_path / 'f.zarr'}: {cause}"):
        zarrstore.open_store(tmp_path / "f.zarr")
