"""A feature store (or .npz) whose metadata was edited by hand: `source`, which --val-split
places rows by, of another type than a string is one line, exit 2, never a traceback; the
other fields are informational and a wrong type in them is no error."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli.cli import cli  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def flattened(make_image_folder, tmp_path):
    """A store and an .npz of the same images: name -> path."""
    data = make_image_folder({"a": 5, "b": 5})
    outputs = {"store": tmp_path / "f.zarr", "npz": tmp_path / "f.npz"}
    for output in outputs.values():
        assert run("flatten", data, "-o", output, "--size", "8x8").exit_code == 0
    assert run("train", outputs["npz"], "-m", tmp_path / "model.npz", "--epochs", "2",
               "-q").exit_code == 0
    return outputs


def edit_metadata(location, **fields):
    """Set fields of the metadata of a store (its zarr.json) or an .npz (rewritten)."""
    if location.suffix == ".zarr":
        document = json.loads((location / "zarr.json").read_text())
        document["attributes"]["metadata"].update(fields)
        (location / "zarr.json").write_text(json.dumps(document))
        return
    with np.load(location, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    metadata = {**json.loads(str(arrays["metadata"])), **fields}
    arrays["metadata"] = np.array(json.dumps(metadata))
    np.savez(location, **arrays)


@pytest.mark.parametrize("kind", ["store", "npz"])
@pytest.mark.parametrize("source, type_name", [([1], "list"), (7, "int"), (None, "NoneType"),
                                               ({"a": 1}, "dict")])
@pytest.mark.parametrize("command", ["train", "evaluate", "check", "flatten"])
def test_a_source_that_is_not_a_string_is_one_line_exit_2(flattened, tmp_path, kind, source,
                                                          type_name, command):
    location = flattened[kind]
    edit_metadata(location, source=source)
    args = {"train": ["train", location, "-m", tmp_path / "new.npz", "--val-split", "0.3",
                      "--epochs", "2", "-q"],
            "evaluate": ["evaluate", location, "-m", tmp_path / "model.npz"],
            "check": ["check", location],
            "flatten": ["flatten", location, "-o", tmp_path / "new.zarr"]}[command]
    result = run(*args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"Error: {location}: metadata source must be a string (the folder "
                             f"the paths are relative to), got {type_name}\n")
    assert not (tmp_path / "new.npz").exists() and not (tmp_path / "new.zarr").exists()


@pytest.mark.parametrize("kind", ["store", "npz"])
def test_other_metadata_of_the_wrong_type_is_no_error(flattened, tmp_path, kind):
    location = flattened[kind]
    before = run("train", location, "-m", tmp_path / "before.npz", "--val-split", "0.3",
                 "--epochs", "3", "-q")
    edit_metadata(location, images="x", size=5, class_counts=[1], skipped="no", created=3,
                  format_version="z", logreg_version=[])
    after = run("train", location, "-m", tmp_path / "after.npz", "--val-split", "0.3",
                "--epochs", "3", "-q")
    assert (before.exit_code, after.exit_code, after.stderr) == (0, 0, "")
    with np.load(tmp_path / "before.npz") as old, np.load(tmp_path / "after.npz") as new:
        assert np.array_equal(old["weights"], new["weights"])
    assert run("check", location).exit_code == 0
