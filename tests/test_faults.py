"""Faults: a train killed at any moment, a full disk, a read-only folder, decompression bombs
and folders full of bad files. Nothing the user had is lost; nothing half-written is left.
"""

import errno
import io
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile

from logreg_cli import atomic
from logreg_cli.atomic import is_temporary_of, remove_stale_temporaries
from logreg_cli.cli import cli
from logreg_cli.errors import ImageError
from logreg_cli.images import load_image
from logreg_cli.model import load_model, save_model
from tiny_models import logreg_command, subprocess_env, write_class_folders

TRAIN = ["--size", "8x8", "--epochs", "30", "--lr", "0.05", "-q"]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def leftovers(folder, keep=("model.npz",)):
    """Names in folder other than keep: temporaries or partial files a save left behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in keep)


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    write_class_folders(root, ["blue", "red"], 6)
    return root


@pytest.fixture
def old_model(tmp_path, data):
    """models/model.npz trained once: (path, its bytes)."""
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "model.npz"
    assert run("train", data, "-m", path, *TRAIN).exit_code == 0
    return path, path.read_bytes()


# ---------------------------------------------------------------- SIGKILL at any moment

# Loaded at start-up by the killed subprocesses (through PYTHONPATH), never by logreg itself:
# it slows os.fsync and os.replace so that the save, which takes a few milliseconds, spans a
# window that kills at chosen moments can land in: temporary written but not synced, synced
# but not renamed, renamed but the folder not synced.
SLOW_SAVE_SITECUSTOMIZE = '''
import os
import time

_DELAY = float(os.environ["LOGREG_KILL_TEST_SAVE_DELAY"])
_fsync, _replace = os.fsync, os.replace


def _slow_fsync(fd):
    time.sleep(_DELAY)
    return _fsync(fd)


def _slow_replace(source, target, **options):
    time.sleep(_DELAY)
    return _replace(source, target, **options)


os.fsync, os.replace = _slow_fsync, _slow_replace
'''


def slow_save_env(tmp_path, delay):
    """The environment of a logreg subprocess whose saves sleep `delay` s at each step
    (fsync, rename, folder fsync), through a sitecustomize.py on its PYTHONPATH only."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_SAVE_SITECUSTOMIZE)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    env["LOGREG_KILL_TEST_SAVE_DELAY"] = str(delay)
    return env
SAVE_DELAY = 0.05
KILLS_SPREAD_OVER_THE_RUN = 20
KILLS_AFTER_THE_TEMPORARY_APPEARS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]  # x SAVE_DELAY; 0 last


def kill_train(command, env, folder, after_seconds=None, after_temporary=None):
    """Start train and SIGKILL it after_seconds after start, or after_temporary seconds after
    its temporary file appears in folder. Returns True when it was killed while running."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        if after_seconds is not None:
            time.sleep(after_seconds)
        else:
            while process.poll() is None and not any(
                    is_temporary_of(name, "model.npz") for name in os.listdir(folder)):
                time.sleep(0.002)
            time.sleep(after_temporary)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    return process.returncode == -signal.SIGKILL


def test_sigkill_at_any_moment_leaves_the_old_model_or_a_complete_new_one(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 10)
    env = slow_save_env(tmp_path, SAVE_DELAY)
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "model.npz"

    def command(lr, path=model):
        # A large history (3000 epochs in the metadata) makes a ~0.4 MB file.
        return logreg_command("train", data, "-m", path, "--size", "8x8", "--epochs", "3000",
                              "--lr", lr, "-q")

    durations = []
    for _ in range(2):  # the shorter of two runs, so that kills land before the end
        started = time.monotonic()
        subprocess.run(command(0.001, tmp_path / "timing.npz"), env=env, check=True, timeout=60)
        durations.append(time.monotonic() - started)
    duration = min(durations)

    rng = random.Random(6)
    # Over the first 90 % of the measured run: a run a little faster than the timing runs
    # would otherwise end before the last kills (the kills below cover the save itself).
    spread = 0.9 * duration
    moments = [{"after_seconds": spread * (i + rng.random()) / KILLS_SPREAD_OVER_THE_RUN}
               for i in range(KILLS_SPREAD_OVER_THE_RUN)]
    moments += [{"after_temporary": SAVE_DELAY * f} for f in KILLS_AFTER_THE_TEMPORARY_APPEARS[::-1]]

    previous = None  # no model file yet: the first runs may leave none, never a broken one
    killed = old_intact = new_complete = left_temporaries = 0
    for run_index, moment in enumerate(moments):
        lr = round(0.01 + 0.001 * run_index, 6)  # tells this run's model from the others
        killed += kill_train(command(lr), env, folder, **moment)
        stray = [name for name in os.listdir(folder) if name != "model.npz"]
        assert all(is_temporary_of(name, model) for name in stray), stray
        left_temporaries += bool(stray)
        if not model.exists():
            assert previous is None, f"kill {run_index} ({moment}) removed the model file"
            old_intact += 1
            continue
        current = model.read_bytes()
        if current == previous:
            old_intact += 1
        else:
            loaded = load_model(model)  # raises if the new file is incomplete
            assert loaded.metadata["options"]["lr"] == lr
            assert len(loaded.metadata["history"]["cost"]) == 3000
            new_complete += 1
            previous = current

    print(f"\nSIGKILL: {len(moments)} runs, {killed} killed while running; "
          f"model file afterwards: {old_intact} old intact (byte-identical), "
          f"{new_complete} new complete; {left_temporaries} left a temporary file "
          f"(run took {duration:.2f} s)")
    assert killed >= 20, "most kills must land while train runs"
    assert left_temporaries >= 1, "no kill landed inside the save"
    assert old_intact + new_complete == len(moments)
    assert any(is_temporary_of(name, model) for name in os.listdir(folder)), \
        "the last kill (as its temporary appears) must leave a temporary for the check below"

    finished = subprocess.run(command(0.5), env=env, timeout=60)
    assert finished.returncode == 0
    assert os.listdir(folder) == ["model.npz"], "a successful save removes stale temporaries"
    assert load_model(model).metadata["options"]["lr"] == 0.5


# ---------------------------------------------------------------- the order of a save


def test_a_save_is_temp_in_the_same_folder_then_fsync_then_rename_then_folder_fsync(
        tmp_path, old_model, monkeypatch):
    if not os.path.exists("/proc/self/fd"):
        pytest.skip("needs /proc to name a file descriptor")
    path, _ = old_model
    steps = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            steps.append(("fsync folder", info.st_ino))
        else:
            name = os.readlink(f"/proc/self/fd/{fd}")
            steps.append(("fsync file", name, os.path.getsize(name)))
        return real_fsync(fd)

    def replace(source, target):
        steps.append(("rename", str(source), str(target)))
        return real_replace(source, target)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    save_model(load_model(path), path)

    assert [step[0] for step in steps] == ["fsync file", "rename", "fsync folder"]
    _, synced, synced_size = steps[0]
    _, source, target = steps[1]
    assert synced == source and Path(source).parent == path.parent
    assert is_temporary_of(Path(source).name, path)
    assert target == str(path) and synced_size == path.stat().st_size  # all bytes before sync
    assert steps[2][1] == path.parent.stat().st_ino


def test_two_trains_saving_the_same_model_at_once_both_succeed(tmp_path):
    """Each writer's cleanup leaves the other's live temporary alone (it is locked), so both
    renames succeed and the model is one of the two, complete."""
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 4)
    # Saves take 3 x 0.2 s (fsync, rename, folder fsync); the second train starts 0.4 s after
    # the first, so the first one's cleanup (at ~0.6 s) runs while the second one's temporary
    # exists (from ~0.4 s to ~0.8 s) and must leave it alone.
    env = slow_save_env(tmp_path, 0.2)
    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "model.npz"
    for round_number in range(2):
        lrs = [0.1 + round_number, 0.2 + round_number]
        processes = []
        for lr in lrs:
            processes.append(subprocess.Popen(
                logreg_command("train", data, "-m", model, "--size", "8x8", "--epochs", "5",
                               "--lr", lr, "-q"), env=env, stderr=subprocess.PIPE))
            time.sleep(0.4)
        errors = [process.communicate(timeout=60)[1] for process in processes]
        assert [process.returncode for process in processes] == [0, 0], errors
        assert os.listdir(folder) == ["model.npz"]
        assert load_model(model).metadata["options"]["lr"] in lrs


# ---------------------------------------------------------------- stale temporaries


def test_a_successful_save_removes_only_stale_temporaries_of_its_own_file(tmp_path, old_model):
    path, _ = old_model
    folder = path.parent
    stale = [folder / ".model.npz.abcd_123.tmp", folder / ".model.npz.zz9zz9zz.tmp"]
    others = [folder / ".other.npz.abcd_123.tmp",   # another file's temporary
              folder / ".model.npz.backup.tmp",     # not mkstemp's pattern: the user's
              folder / "model.npz.abcd_123.tmp",    # not hidden
              folder / "notes.txt"]
    for file in stale + others:
        file.write_bytes(b"half a model")

    save_model(load_model(path), path)

    assert leftovers(folder) == sorted(p.name for p in others)


def test_a_live_writers_temporary_is_left_alone(tmp_path, old_model):
    import fcntl

    path, _ = old_model
    live = path.parent / ".model.npz.live0000.tmp"
    live.write_bytes(b"being written")
    with open(live, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # as a concurrent writer holds its own
        save_model(load_model(path), path)
        assert live.exists()
    assert remove_stale_temporaries(path) == 1
    assert not live.exists()


def test_saved_files_get_ordinary_permissions_not_mkstemps_0600(tmp_path, old_model):
    path, _ = old_model
    old_umask = os.umask(0o022)
    try:
        fresh = path.parent / "fresh.npz"
        save_model(load_model(path), fresh)
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        os.chmod(path, 0o640)
        save_model(load_model(path), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(old_umask)


def test_a_file_system_without_permissions_or_locks_still_saves(tmp_path, old_model,
                                                                 monkeypatch):
    """FAT (no chmod) and some network file systems (no flock): the save goes on."""
    path, before = old_model

    def unsupported(*args):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(atomic.os, "fchmod", unsupported)
    monkeypatch.setattr(atomic.fcntl, "flock", unsupported)
    model = load_model(path)
    model.metadata["note"] = "saved again"
    save_model(model, path)
    assert load_model(path).metadata["note"] == "saved again"
    assert leftovers(path.parent) == []


# ---------------------------------------------------------------- full disk


class FillsUpAfter(io.RawIOBase):
    """A file that takes `room` bytes, then fails as a full disk does (ENOSPC)."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            self.file.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self):
        return self.file.fileno()

    def flush(self):
        self.file.flush()

    def close(self):
        super().close()
        self.file.close()


def disk_full_while_writing(monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen",
                        lambda fd, mode: FillsUpAfter(real_fdopen(fd, mode), room=300))


def disk_full_at_fsync(monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", fsync)


@pytest.mark.parametrize("fault", [disk_full_while_writing, disk_full_at_fsync],
                         ids=["while-writing", "at-fsync"])
@pytest.mark.parametrize("command", ["train", "flatten"])
def test_a_full_disk_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, old_model, data,
                                                                   monkeypatch, fault, command):
    path, before = old_model
    fault(monkeypatch)
    if command == "train":
        result = run("train", data, "-m", path, *TRAIN)
    else:
        result = run("flatten", data, "-o", path, "--size", "8x8", "-q")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"Error: {path}: cannot write (No space left on device)\n"
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


# ---------------------------------------------------------------- read-only folder


def make_folder_read_only(folder, monkeypatch):
    """Make folder refuse new files, as honestly as this user can; returns an undo function.

    A normal user: chmod 0555. root ignores permission bits, so for root the folder is made
    immutable (chattr +i, which stops root too); where that is unsupported (tmpfs, no
    CAP_LINUX_IMMUTABLE) creating the temporary file is made to fail with EACCES instead.
    """
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode == 0:
        return lambda: subprocess.run([chattr, "-i", str(folder)], check=True)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    return lambda: None


def test_a_read_only_folder_is_one_error_line_and_the_old_model_stays(tmp_path, old_model, data,
                                                                      monkeypatch):
    path, before = old_model
    undo = make_folder_read_only(path.parent, monkeypatch)
    try:
        result = run("train", data, "-m", path, *TRAIN)
        listing = leftovers(path.parent)
    finally:
        undo()
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0] in (f"Error: {path}: cannot write (Permission denied)",
                        f"Error: {path}: cannot write (Operation not permitted)")
    assert path.read_bytes() == before
    assert listing == []


# ---------------------------------------------------------------- decompression bombs


def png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def huge_black_png(width, height):
    """A complete, valid 1-bit PNG of width x height black pixels (compresses to ~100 KB)."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(1)
    block = 200
    parts = [compressor.compress(row * block) for _ in range(height // block)]
    parts += [compressor.compress(row * (height % block)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """Complete PNGs over Pillow's pixel limit: 2x over (an error at once) and just over it
    (Pillow only warns; we refuse too)."""
    folder = tmp_path_factory.mktemp("bombs")
    limit = Image.MAX_IMAGE_PIXELS
    side_over = int((limit * 1.2) ** 0.5) + 1
    files = {"30000x30000.png": (30000, 30000), "just-over.png": (side_over, side_over)}
    for name, (width, height) in files.items():
        (folder / name).write_bytes(huge_black_png(width, height))
    return folder, files


def test_the_bombs_are_complete_valid_pngs(bombs, monkeypatch):
    """Control: with the limit lifted (here only), Pillow opens and verifies them."""
    folder, files = bombs
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    for name, size in files.items():
        with Image.open(folder / name) as image:
            assert image.size == size
            image.verify()  # every chunk present, every CRC right


def test_a_bomb_is_refused_before_any_pixel_is_decoded(bombs, monkeypatch):
    folder, files = bombs
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    for name in files:
        with pytest.raises(ImageError, match="decompression-bomb limit") as caught:
            load_image(folder / name, (8, 8))
        assert str(caught.value).startswith(f"{folder / name}: ")
    assert decoded == []
    assert Image.MAX_IMAGE_PIXELS is not None


MEASURE_BOMB = """
import sys
from logreg_cli.errors import ImageError
from logreg_cli.images import load_image
try:
    load_image(sys.argv[1], (64, 64))
except ImageError as error:
    print(error)
# VmHWM, not ru_maxrss: Linux carries the forking parent's (pytest's) peak over into ru_maxrss
print(next(int(line.split()[1]) // 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM:")))
"""


def test_refusing_a_bomb_costs_no_memory(bombs):
    """Decoding 30000 x 30000 would take 900 MB at one byte a pixel; refusing it takes what
    starting Python with numpy and Pillow takes."""
    folder, _ = bombs
    completed = subprocess.run([sys.executable, "-c", MEASURE_BOMB, str(folder / "30000x30000.png")],
                               capture_output=True, text=True, env=subprocess_env(), timeout=60)
    message, peak_mb = completed.stdout.splitlines()
    assert "decompression-bomb limit" in message
    assert int(peak_mb) < 150, f"peak memory {peak_mb} MB"


# ---------------------------------------------------------------- many bad files


def write_bad_files(folder, bombs_folder):
    """Every kind of unreadable file an image folder may hold; returns their paths."""
    good_png = folder / "000.png"
    data = good_png.read_bytes()
    bad = {
        "truncated.png": data[: len(data) // 2],
        "random.png": np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "empty.jpg": b"",
        "text.gif": b"this is not a gif\n",
        "header-only.bmp": b"BM" + b"\0" * 12,
        "bad-crc.png": data[:29] + bytes([data[29] ^ 0xFF]) + data[30:],
        "bomb.png": (bombs_folder / "30000x30000.png").read_bytes(),
    }
    paths = []
    for name, content in bad.items():
        (folder / name).write_bytes(content)
        paths.append(folder / name)
    dangling = folder / "dangling.png"
    dangling.symlink_to(folder / "no-such-target.png")
    paths.append(dangling)
    return paths


def test_train_skips_each_bad_file_with_one_warning_and_trains_on_the_rest(tmp_path, data,
                                                                           bombs):
    bad = write_bad_files(data / "blue", bombs[0]) + write_bad_files(data / "red", bombs[0])
    model = tmp_path / "model.npz"
    result = run("train", data, "-m", model, "--size", "8x8", "--epochs", "30", "--lr", "0.05")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == len(bad)
    for path in bad:
        assert sum(line.startswith(f"Warning: {path}: ") for line in warnings) == 1, path
    assert f"skipped {len(bad)} unreadable file(s)" in result.stderr
    assert "Traceback" not in result.stderr
    metadata = load_model(model).metadata
    assert metadata["data"]["images"] == 12
    assert metadata["data"]["skipped"] == len(bad)
    assert metadata["data"]["class_counts"] == {"blue": 6, "red": 6}


def test_strict_stops_at_the_first_bad_file(tmp_path, data, bombs):
    write_bad_files(data / "red", bombs[0])
    result = run("train", data, "-m", tmp_path / "model.npz", *TRAIN, "--strict")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {data / 'red'}")
    assert not (tmp_path / "model.npz").exists()
