"""A store replaced (`logreg flatten -o` again) or deleted while a command reads it: the
reader keeps reading the store it opened, and rows that are gone are an error, never rows
of zeros (zarr reads a missing chunk as its fill value) nor rows of the new store."""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli import api, zarrstore  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402
from logreg_cli.errors import ModelFileError  # noqa: E402

N = 8 * 8 * 3


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def stores(make_image_folder, tmp_path, monkeypatch):
    """f.zarr (classes a, b) and other.zarr (other images and classes), chunks of 2 rows."""
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 2 * N)
    first = make_image_folder({"a": 4, "b": 4}, name="first")
    second = make_image_folder({"b0": 1, "c": 4, "d": 3}, name="second")  # other pixels
    run("flatten", first, "-o", tmp_path / "f.zarr", "--size", "8x8")
    run("flatten", second, "-o", tmp_path / "other.zarr", "--size", "8x8")
    return tmp_path / "f.zarr", tmp_path / "other.zarr", second


def test_a_store_renamed_over_is_not_mixed_into_the_rows_read(stores, tmp_path):
    location, other, _ = stores
    rows = zarrstore.StoreRows(zarrstore.open_store(location))
    original = zarrstore.open_store(location).rows(0, 8)
    assert np.array_equal(rows[0:2], original[0:2])
    location.rename(tmp_path / "aside.zarr")
    shutil.copytree(other, location)  # another store now at the name
    assert not np.array_equal(zarrstore.open_store(location).rows(2, 8), original[2:8])
    assert np.array_equal(rows[2:8], original[2:8])


@pytest.mark.parametrize("how", ["flatten", "delete"])
def test_rows_gone_while_read_are_an_error_not_zeros(stores, how):
    location, other, second = stores
    rows = zarrstore.StoreRows(zarrstore.open_store(location))
    assert rows[0:2].any()
    if how == "flatten":
        run("flatten", second, "-o", location, "--size", "8x8")  # the old one is removed
    else:
        shutil.rmtree(location)
    with pytest.raises(ModelFileError) as raised:
        rows[2:4]
    assert str(raised.value) == (f"{location}: damaged store (X: chunk file X/c/1/0 missing "
                                 "(the store was deleted or replaced while being read))")


def test_streamed_training_stops_with_the_error_when_its_store_is_replaced(stores):
    location, _, second = stores
    replaced = []

    def replace_after_first_epoch(stats):
        if not replaced:
            replaced.append(1)
            run("flatten", second, "-o", location, "--size", "8x8")

    with pytest.raises(ModelFileError, match=r"chunk file X/c/\d/0 missing \(the store was "
                                             r"deleted or replaced while being read\)"):
        api.train(location, epochs=5, stream=True, on_epoch=replace_after_first_epoch)
    assert replaced
