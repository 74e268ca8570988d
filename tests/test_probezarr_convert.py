"""Conversions back and forth between .npz and Zarr stores keep the rows, the labels and the
source folder that --val-split places rows by: every copy, in any chain, holds out the same
images and trains to the same model, bit for bit."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli.cli import cli  # noqa: E402

TRAIN = ["--epochs", "30", "--lr", "0.5", "--val-split", "0.3", "-q"]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def original(make_image_folder, tmp_path):
    """A store flattened from a folder of three classes with one undecodable image (a row
    that is not valid) -> (data folder, store)."""
    data = make_image_folder({"a": 6, "b": 6, "c": 6})
    (data / "b" / "002bad.png").write_bytes(b"not a png")
    run("flatten", data, "-o", tmp_path / "original.zarr", "--size", "8x8")
    return data, tmp_path / "original.zarr"


def trained(data, model):
    run("train", data, "-m", model, *TRAIN)
    with np.load(model, allow_pickle=False) as archive:
        metadata = json.loads(str(archive["metadata"]))
        return archive["weights"].copy(), metadata["data"]["images"], metadata["validation"]


def metadata_of(location):
    if str(location).endswith(".zarr"):
        return zarr.open_group(str(location), mode="r").attrs["metadata"]
    with np.load(location, allow_pickle=False) as archive:
        return json.loads(str(archive["metadata"]))


@pytest.mark.parametrize("chain", [
    ["a.npz"], ["a.npz", "b.zarr"], ["a.zarr"], ["a.npz", "b.npz"], ["a.zarr", "b.npz"],
    ["a.npz", "b.zarr", "c.npz"], ["a.zarr", "b.npz", "c.zarr"],
])
def test_every_copy_holds_out_the_same_rows_and_trains_the_same_model(original, tmp_path,
                                                                     chain):
    data, store = original
    weights, images, validation = trained(store, tmp_path / "m0.npz")
    assert images + validation["images"] == 18  # the readable images
    source = store
    for name in chain:
        run("flatten", source, "-o", tmp_path / name)
        source = tmp_path / name
        metadata = metadata_of(source)
        assert metadata["source"] == str(data)
        assert metadata["converted_from"] == str(tmp_path / chain[chain.index(name) - 1]
                                                 if chain.index(name) else store)
        assert metadata["images"] == 18 and metadata["size"] == "8x8"
        assert metadata["class_counts"] == {"a": 6, "b": 6, "c": 6}
    copy_weights, copy_images, copy_validation = trained(source, tmp_path / "m1.npz")
    assert copy_images == images
    assert 0 < validation["images"] < 18
    for key in set(validation) - {"source"}:  # the source names the file read
        assert copy_validation[key] == validation[key], key
    assert np.array_equal(copy_weights, weights)
