"""Issue 10 re-tested (probe10): every message about a file is one line on stderr, whatever
its name holds. A file name may hold a newline, a CR or an ESC (Linux allows any byte but
'/' and NUL): printed raw, it split `Warning: path: cause` over two lines (or let the
terminal overwrite it), so one stderr line per problem was no longer true.
"""

import subprocess

from PIL import Image

from logreg_cli.names import shown
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders


def run(*args, stdin=b""):
    return subprocess.run(logreg_command(*args), input=stdin, capture_output=True,
                          env=subprocess_env(), timeout=120)


def test_shown_escapes_line_breaks_and_control_characters_but_not_tabs():
    assert shown("a\nb\rc\x1b[31md\te\x7f") == "a\\nb\\rc\\x1b[31md\te\\x7f"
    assert shown("caf\udcc3") == "caf\\xc3"


def test_a_file_name_with_a_newline_is_one_warning_line_in_train_and_check(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    (data / "blue" / "bad\nname.png").write_bytes(b"not an image")
    (data / "red" / "cr\rname.png").write_bytes(b"")
    trained = run("train", data, "-m", tmp_path / "m.npz", "--size", "8x8", "--epochs", "2",
                  "-q")
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr.decode().splitlines() == [
        f"Warning: {data}/blue/bad\\nname.png: not an image Pillow can read",
        f"Warning: {data}/red/cr\\rname.png: empty file (0 bytes)",
        f"skipped 2 unreadable file(s) in {data}"]
    checked = run("check", data, "-q")
    assert checked.returncode == 1
    assert f"  {data}/blue/bad\\nname.png: not an image Pillow can read" in \
        checked.stdout.decode().splitlines()


def test_predict_names_a_missing_or_bad_path_with_a_newline_on_one_line(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    model = train_model(data, tmp_path / "m.npz", epochs=2)
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "bad\nimage.png").write_bytes(b"junk")
    listing = b"\0".join([f"{tmp_path}/no\nsuch.png".encode(), f"{tmp_path}/ok.png".encode(),
                          f"{tmp_path}/esc\x1b[2J.png".encode(), b""])
    done = run("predict", "-0", "-", "-m", model, stdin=listing)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"Error: {tmp_path}/no\\nsuch.png: no such file",
        f"Error: {tmp_path}/esc\\x1b[2J.png: no such file"]
    assert len(done.stdout.decode().splitlines()) == 1
    named = run("predict", tmp_path / "bad\nimage.png", "-m", model)
    assert named.returncode == 1
    assert named.stderr.decode().splitlines() == [
        f"Error: {tmp_path}/bad\\nimage.png: not an image Pillow can read"]
