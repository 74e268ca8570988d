"""A Zarr feature store with a chunk file lost or deleted is refused by name, not read as
zeros: zarr reads a missing chunk as the array's fill value, so the writers store every
chunk (even one of zeros, of labels 0 or of rows not valid) and the readers count them."""

import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli import zarrstore  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402
from tiny_models import logreg_command, subprocess_env  # noqa: E402

N = 8 * 8 * 3
CHUNK_ROWS = 2


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of two rows, so that 8 images make 4 chunks of X, y and valid."""
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", CHUNK_ROWS * N)


@pytest.fixture
def store(make_image_folder, small_chunks, tmp_path):
    """a/000-003 then b/000-003: chunks 0 and 1 of y hold only label 0, and a/000, a/001 are
    black, so chunk 0 of X is all zeros: the chunks zarr skips unless told to store them."""
    data = make_image_folder({"a": 4, "b": 4})
    for name in ("000.png", "001.png"):
        Image.new("RGB", (8, 8)).save(data / "a" / name)
    location = tmp_path / "f.zarr"
    result = run("flatten", data, "-o", location, "--size", "8x8")
    assert result.exit_code == 0, result.output
    return location


def chunk_files(location, name):
    return sorted(path.relative_to(location / name / "c").as_posix()
                  for path in (location / name / "c").rglob("*") if path.is_file())


def test_every_chunk_is_stored_even_of_zeros_labels_0_or_rows_not_valid(store, tmp_path):
    assert chunk_files(store, "X") == ["0/0", "1/0", "2/0", "3/0"]
    assert chunk_files(store, "y") == chunk_files(store, "valid") == ["0", "1", "2", "3"]
    opened = zarrstore.open_store(store)
    assert opened.y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert not opened.rows(0, 2).any() and opened.rows(2, 3).any()


def test_rows_not_valid_keep_their_chunk(small_chunks, tmp_path):
    writer = zarrstore.StoreWriter(tmp_path / "f.zarr", 4, N)
    X = np.full((4, N), 7, dtype=np.uint8)
    X[:2] = 0
    writer.write_rows(0, X, [-1, -1, 0, 1], [False, False, True, True])
    writer.finish(["a", "b"], ["p0", "p1", "p2", "p3"], (8, 8), {"source": "."})
    store = tmp_path / "f.zarr"
    assert chunk_files(store, "valid") == chunk_files(store, "y") == ["0", "1"]
    assert chunk_files(store, "X") == ["0/0", "1/0"]
    assert zarrstore.open_store(store).valid.tolist() == [False, False, True, True]


@pytest.mark.parametrize("name, chunk", [("X", "1/0"), ("y", "2"), ("valid", "3")])
@pytest.mark.parametrize("command, code", [("train", 2), ("evaluate", 2), ("check", 2),
                                           ("predict", 1)])
def test_a_missing_chunk_file_is_refused_by_every_reader(store, tmp_path, name, chunk, command,
                                                         code):
    model = tmp_path / "model.npz"
    assert run("train", store, "-m", model, "--epochs", "2", "-q").exit_code == 0
    (store / name / "c" / chunk).unlink()
    args = {"train": ["train", store, "-m", tmp_path / "new.npz", "--epochs", "2", "-q"],
            "evaluate": ["evaluate", store, "-m", model], "check": ["check", store],
            "predict": ["predict", store, "-m", model]}[command]
    result = run(*args)
    assert (result.exit_code, result.stdout) == (code, "")
    assert result.stderr == (f"Error: {store}: damaged store ({name}: 1 of its 4 chunk files "
                             "missing); write it again with `logreg flatten`\n")
    assert not (tmp_path / "new.npz").exists()


def test_a_missing_chunk_is_one_line_from_the_real_command(store, tmp_path):
    (store / "X" / "c" / "0" / "0").unlink()
    done = subprocess.run(logreg_command("train", store, "-m", tmp_path / "m.npz", "-q"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"Error: {store}: damaged store (X: 1 of its 4 chunk files missing); "
                           "write it again with `logreg flatten`\n")


def test_converting_a_store_with_a_missing_chunk_writes_nothing(store, tmp_path):
    (store / "y" / "c" / "1").unlink()
    for output in ("copy.zarr", "copy.npz"):
        result = run("flatten", store, "-o", tmp_path / output)
        assert result.exit_code == 2 and "y: 1 of its 4 chunk files missing" in result.stderr
        assert not (tmp_path / output).exists()
