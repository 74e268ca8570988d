"""Issue 10 re-tested (probe10), case 1: an EXIF block Pillow cannot parse (cut short, or
junk after the 'Exif' header) was a Python traceback for a PNG (eXIf chunk) or a WebP, in
every command, while the same block in a JPEG was read as stored (Pillow drops the error
when it opens a JPEG). Now every format reads such an image as stored, as a viewer shows it.
"""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image, features

from tiny_models import logreg_command, subprocess_env, write_class_folders

DAMAGED_EXIF = {
    "no IFD offset": b"Exif\0\0II*\0",
    "not TIFF": b"Exif\0\0" + bytes(range(64)),
}
FORMATS = [
    ("JPEG", ".jpg", {"quality": 95}),
    ("PNG", ".png", {}),
    pytest.param("WEBP", ".webp", {"lossless": True},
                 marks=pytest.mark.skipif(not features.check("webp"), reason="no WebP")),
]


def stored_picture():
    """4 wide x 8 high, no flip or turn maps it onto itself."""
    return np.random.default_rng(0).integers(0, 256, (8, 4, 3), dtype=np.uint8)


def run(*args):
    return subprocess.run(logreg_command(*args), capture_output=True, env=subprocess_env(),
                          timeout=120)


@pytest.mark.parametrize("fmt, suffix, options", FORMATS)
def test_an_image_with_a_damaged_exif_block_is_read_as_stored(tmp_path, fmt, suffix, options):
    data = tmp_path / "data"
    write_class_folders(data, ["blue", "red"], 2, size=(4, 8))
    names = []
    for index, exif in enumerate(DAMAGED_EXIF.values()):
        name = f"damaged{index}{suffix}"
        Image.fromarray(stored_picture()).save(data / "blue" / name, fmt, exif=exif, **options)
        names.append(name)
    out = tmp_path / "features.npz"
    flattened = run("flatten", data, "-o", out, "--size", "4x8", "-q")
    assert flattened.returncode == 0, flattened.stderr.decode()
    assert flattened.stderr == b""
    with np.load(out, allow_pickle=False) as arrays:
        rows = dict(zip(arrays["paths"].tolist(), arrays["X"]))
    for name in names:
        path = data / "blue" / name
        with Image.open(path) as image:
            expected = np.asarray(image.convert("RGB"))
        assert np.array_equal(rows[str(path)].reshape(8, 4, 3), expected), name
    checked = run("check", data, "--format", "json", "-q")
    assert checked.stderr == b""
    report = json.loads(checked.stdout)  # the two damaged ones are one picture: duplicates
    assert report["unreadable"] == [] and report["sizes"] == {"4x8": 6}
    model = tmp_path / "m.npz"
    assert run("train", data, "-m", model, "--size", "4x8", "--epochs", "2", "-q").returncode == 0
    predicted = run("predict", "-v", "-m", model, *(data / "blue" / name for name in names))
    assert predicted.returncode == 0, predicted.stderr.decode()
    assert len(predicted.stdout.decode().splitlines()) == 2
