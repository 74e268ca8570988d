"""A folder named *.zarr that is no logreg store is one line naming it as the user did (never
the /proc/self/fd/N folder the reader pins), and a Zarr v2 store is said to be one."""

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli.cli import cli  # noqa: E402


def v2_store(location):
    group = zarr.open_group(str(location), mode="w", zarr_format=2)
    group.create_array("X", data=np.zeros((2, 192), dtype=np.uint8))
    group.attrs.update({"complete": True})


@pytest.mark.parametrize("make, cause", [
    (lambda location: location.mkdir(),
     "not a Zarr v3 feature store (No group found in store '{location}' at path '')"),
    (lambda location: zarr.create_array(str(location), shape=(3,), dtype="int32"),
     "not a readable Zarr store (An array already exists in store {location} at path .)"),
    (v2_store, "not a Zarr v3 feature store (a Zarr v2 store: logreg reads the Zarr v3 stores "
               "`logreg flatten` writes)"),
])
@pytest.mark.parametrize("command", ["train", "check", "flatten"])
def test_a_folder_that_is_no_v3_store_is_named_as_given(tmp_path, monkeypatch, make, cause,
                                                        command):
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "x.zarr")
    args = {"train": ["train", "x.zarr", "-q"], "check": ["check", "x.zarr"],
            "flatten": ["flatten", "x.zarr", "-o", "y.npz"]}[command]
    result = CliRunner().invoke(cli, args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"Error: x.zarr: {cause.format(location='x.zarr')}\n"
