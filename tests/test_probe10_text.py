"""Issue 10 re-tested (probe10), case 6: text from other systems, on predict's stdin.

Two lists saved by a Windows editor and joined (`cat a.txt b.txt`) hold a byte-order mark at
the start of the second one too; a list written by Windows PowerShell 5 (`dir > list.txt`)
is UTF-16 and was read as paths full of NUL bytes, each line an error.
"""

import subprocess
import time

import pytest
from PIL import Image

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

BOM = b"\xef\xbb\xbf"


@pytest.fixture
def model_and_images(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2)
    model = train_model(data, tmp_path / "m.npz", epochs=2)
    images = []
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8), (0, 0, 200)).save(tmp_path / name)
        images.append(str(tmp_path / name))
    return model, images


def predict_stdin(model, stdin, *options):
    return subprocess.run(logreg_command("predict", "-", "-m", model, *options), input=stdin,
                          capture_output=True, env=subprocess_env(), timeout=120)


@pytest.mark.parametrize("separator, options", [(b"\r\n", ()), (b"\0", ("-0",))])
def test_joined_lists_each_with_a_byte_order_mark(model_and_images, separator, options):
    model, (first, second) = model_and_images
    stdin = BOM + first.encode() + separator + BOM + second.encode() + separator
    done = predict_stdin(model, stdin, *options)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    assert [line.split("\t")[0] for line in done.stdout.decode().splitlines()] == [first, second]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_list_is_refused_by_name(model_and_images, encoding):
    model, (first, second) = model_and_images
    text = f"{first}\r\n{second}\r\n"
    stdin = text.encode(encoding)
    if encoding != "utf-16":  # Python's utf-16 writes the BOM; the others do not
        stdin = ("\ufeff" + text).encode(encoding)
    done = predict_stdin(model, stdin)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr.decode() == "Error: -: a list of paths must be UTF-8 text, not UTF-16\n"


def test_a_utf16_mark_arriving_one_byte_at_a_time_is_still_seen(model_and_images):
    """A slow writer: the first byte of the big-endian mark alone, then the rest."""
    model, (first, _) = model_and_images
    with subprocess.Popen(logreg_command("predict", "-", "-m", model), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=subprocess_env()) as process:
        process.stdin.write(b"\xfe")
        process.stdin.flush()
        time.sleep(1.0)  # the command reads the lone byte before the rest arrives
        stdout, stderr = process.communicate(f"\ufeff{first}\n".encode("utf-16-be")[1:],
                                             timeout=120)
    assert process.returncode == 2
    assert stderr.decode() == "Error: -: a list of paths must be UTF-8 text, not UTF-16\n"
