"""flatten -o a Zarr store that cannot be written (no permission, a folder that refuses new
entries, the disk full half-way) is one line `Error: STORE: cannot write (cause)`, exit 2,
as for an .npz: never a traceback, no temporary folder left, an old store there kept."""

import errno
import subprocess

import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli import zarrstore  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402
from tiny_models import logreg_command, subprocess_env  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def sources(make_image_folder, tmp_path):
    """An image folder and an .npz of it: what flatten decodes and what it converts."""
    data = make_image_folder({"a": 4, "b": 4})
    assert run("flatten", data, "-o", tmp_path / "f.npz", "--size", "8x8").exit_code == 0
    return {"folder": data, "npz": tmp_path / "f.npz"}


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_a_folder_that_refuses_the_store_is_one_line_exit_2(sources, kind):
    # /proc takes no new folder, even from root (a read-only folder would not stop root)
    done = subprocess.run(logreg_command("flatten", sources[kind], "-o", "/proc/x.zarr",
                                         "--size", "8x8"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "Error: /proc/x.zarr: cannot write (No such file or directory)\n"


@pytest.mark.parametrize("kind", ["folder", "npz"])
@pytest.mark.parametrize("failing", ["write_chunk", "finish_group", "_replace_folder"])
def test_disk_full_half_way_keeps_the_old_store_and_leaves_no_temporary(sources, tmp_path,
                                                                        monkeypatch, kind,
                                                                        failing):
    store = tmp_path / "out.zarr"
    assert run("flatten", sources["npz"], "-o", store).exit_code == 0
    before = sorted(path.relative_to(store) for path in store.rglob("*"))
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 2 * 8 * 8 * 3)  # 4 chunks of 2 rows
    real = getattr(zarrstore, failing)
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 or failing != "write_chunk":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(zarrstore, failing, full_disk)
    result = run("flatten", sources[kind], "-o", store, "--size", "8x8")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith(f"Error: {store}: cannot write (No space left on device)\n")
    assert result.stderr.count("\n") == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "f.npz", "out.zarr"]
    assert sorted(path.relative_to(store) for path in store.rglob("*")) == before
    assert zarrstore.open_store(store).m == 8
