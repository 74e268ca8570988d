"""atomic.written_together: the files of one run are renamed into place together, or none."""

import os

import pytest

from logreg_cli import atomic
from logreg_cli.atomic import is_temporary_of, write_atomically, written_together
from logreg_cli.errors import LogregError

NAMES = ("model.npz", "h.csv", "curve.png")


@pytest.fixture
def old_files(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_bytes(b"old " + name.encode())
    return tmp_path


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def write_all(folder):
    for name in NAMES:
        write_atomically(folder / name, lambda file, name=name: file.write(b"new " + name.encode()))


def test_files_appear_only_at_commit_then_all_at_once(old_files):
    before = contents(old_files)
    with written_together() as outputs:
        write_all(old_files)
        assert {n: c for n, c in contents(old_files).items() if n in NAMES} == before
        assert sum(is_temporary_of(n, t) for n in os.listdir(old_files) for t in NAMES) == 3
        outputs.commit()
    assert contents(old_files) == {name: b"new " + name.encode() for name in NAMES}


def test_leaving_without_commit_keeps_every_old_file_and_no_temporary(old_files):
    before = contents(old_files)
    with pytest.raises(KeyboardInterrupt):
        with written_together():
            write_all(old_files)
            raise KeyboardInterrupt
    assert contents(old_files) == before


def test_a_rename_that_fails_leaves_no_temporary_and_no_open_descriptor(old_files, monkeypatch):
    real_replace = os.replace

    def refuse_the_plot(source, target):
        if str(target).endswith("curve.png"):
            raise PermissionError(13, "Permission denied")
        return real_replace(source, target)

    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    monkeypatch.setattr(atomic.os, "replace", refuse_the_plot)
    with pytest.raises(LogregError, match="curve.png: cannot write"):
        with written_together() as outputs:
            write_all(old_files)
            outputs.commit()
    assert sorted(contents(old_files)) == sorted(NAMES)  # no temporary left
    assert (old_files / "curve.png").read_bytes() == b"old curve.png"
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before
