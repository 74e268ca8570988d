"""Issue 10, case 1: the EXIF orientation is applied exactly once, in every format carrying one.

Each file is built here with Pillow from one asymmetric picture stored 16 wide x 32 high, with
each orientation 1-8, in each format; logreg's pixels must equal Pillow's own
ImageOps.exif_transpose of the same file, and its reported size must be the size as viewed.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps, features

from logreg_cli.cli import cli
from logreg_cli.images import REDUCING_GAP, RESAMPLE, decode_full, load_image
from tiny_models import train_model, write_class_folders

STORED = (16, 32)  # (width, height) as stored
ORIENTATIONS = range(1, 9)
FORMATS = [
    ("JPEG", ".jpg", {"quality": 95}),
    ("PNG", ".png", {}),  # the orientation in an eXIf chunk
    pytest.param("WEBP", ".webp", {"lossless": True},
                 marks=pytest.mark.skipif(not features.check("webp"), reason="no WebP")),
    ("TIFF", ".tiff", {}),  # Pillow >= 13 turns TIFFs upright when it loads them
    ("MPO", ".jpg", {"save_all": True}),  # two frames, as a 3D camera writes them
]


def asymmetric_picture():
    """A 32 x 16 x 3 picture no flip or turn maps onto itself: ramps, a corner mark, noise."""
    height, width = STORED[1], STORED[0]
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                        np.full_like(x, 60)], axis=-1)
    picture[:4, :4] = (255, 255, 255)  # top-left mark
    picture += np.random.default_rng(0).integers(0, 20, picture.shape)
    return Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))


def write_turned(path, fmt, options, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture = asymmetric_picture()
    if fmt == "MPO":
        options = dict(options, append_images=[picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    picture.save(path, fmt, exif=exif, **options)
    return path


def viewed_size(orientation):
    return STORED[::-1] if orientation >= 5 else STORED


def pillow_reference(path, size=None):
    """What a person sees: Pillow's exif_transpose, RGB, resized like logreg resizes."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    if size is not None and upright.size != size:
        upright = upright.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)
    return np.asarray(upright)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("fmt, suffix, options", FORMATS)
def test_pixels_equal_pillows_exif_transpose(tmp_path, fmt, suffix, options, orientation):
    path = write_turned(tmp_path / f"photo{suffix}", fmt, options, orientation)
    viewed = viewed_size(orientation)
    for size in (viewed, STORED, (8, 8)):  # as viewed, as stored (a stretch), smaller
        info = {}
        row = load_image(path, size, info=info)
        assert np.array_equal(row.reshape(size[1], size[0], 3), pillow_reference(path, size)), size
        assert info["original_size"] == viewed
    pixels, _ = decode_full(path)
    assert np.array_equal(pixels, pillow_reference(path))


def test_a_big_turned_jpeg_is_drafted_then_turned_once(tmp_path):
    """The draft (decoder downscaling) happens before the turn: the size reported is the
    stored one turned, not the drafted one, and the picture stays close to a full decode."""
    big = asymmetric_picture().resize((160, 320), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "big.jpg"
    big.save(path, quality=95, exif=exif)
    info = {}
    row = load_image(path, (20, 10), info=info).reshape(10, 20, 3).astype(int)
    assert info["original_size"] == (320, 160)
    assert np.abs(row - pillow_reference(path, (20, 10))).mean() < 3


def test_check_reports_one_size_for_one_photo_in_every_format(tmp_path):
    data = tmp_path / "data"
    for index, (fmt, suffix, options) in enumerate([("JPEG", ".jpg", {}), ("PNG", ".png", {}),
                                                    ("TIFF", ".tiff", {})]):
        for orientation in (1, 6):
            folder = data / ("upright" if orientation == 1 else "turned")
            folder.mkdir(parents=True, exist_ok=True)
            write_turned(folder / f"{index}{suffix}", fmt, options, orientation)
    result = CliRunner().invoke(cli, ["check", str(data), "--format", "json"])
    report = json.loads(result.stdout)
    assert report["sizes"] == {"16x32": 3, "32x16": 3}
    assert report["unreadable"] == []


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("TIFF", ".tiff"), ("PNG", ".png")])
def test_predict_verbose_sees_a_turned_photo_as_viewed(tmp_path, fmt, suffix):
    """A model trained at 32x16 and a photo stored 16x32 viewed 32x16: no stretch note."""
    data = tmp_path / "data"
    write_class_folders(data, ["red", "blue"], 3, size=(32, 16))
    model = train_model(data, tmp_path / "model.npz", epochs=2, size="32x16")
    photo = write_turned(tmp_path / f"turned{suffix}", fmt, {}, 6)
    result = CliRunner().invoke(cli, ["predict", "-m", str(model), "-v", str(photo)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.startswith(f"{photo}\t")


@pytest.mark.parametrize("decoding", ["one-thread", "processes"])
def test_flatten_rows_equal_pillows_view_in_every_format(tmp_path, monkeypatch, decoding):
    """flatten (the rows train and evaluate use) decodes in this thread or in worker
    processes: either way each row is the picture as Pillow's exif_transpose shows it."""
    from logreg_cli import images

    if decoding == "processes":
        monkeypatch.setattr(images, "PROCESS_MIN_IMAGES", 2)
    data = tmp_path / "data"
    for fmt, suffix, options in [("JPEG", ".jpg", {}), ("TIFF", ".tiff", {}), ("PNG", ".png", {})]:
        for orientation in (3, 6, 8):
            folder = data / ("a" if orientation == 6 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            write_turned(folder / f"{orientation}{suffix}", fmt, options, orientation)
    result = CliRunner().invoke(cli, ["flatten", str(data), "-o", str(tmp_path / "f.npz"),
                                      "--size", "12x10", "-q",
                                      "--jobs", "1" if decoding == "one-thread" else "2"])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "f.npz", allow_pickle=False) as stored:
        rows, paths = stored["X"], stored["paths"]
    assert len(paths) == 9
    for row, path in zip(rows, paths):
        assert np.array_equal(row.reshape(10, 12, 3), pillow_reference(path, (12, 10))), path


def test_an_mpo_file_in_a_class_folder_is_an_image(tmp_path):
    """3D cameras name their two-picture files .MPO: listed, read, turned like a JPEG."""
    data = tmp_path / "data"
    write_class_folders(data, ["red", "blue"], 2, size=(32, 16))
    stereo = write_turned(data / "red" / "STEREO.MPO", "MPO", {"save_all": True}, 6)
    result = CliRunner().invoke(cli, ["flatten", str(data), "-o", str(tmp_path / "f.npz"),
                                      "--size", "32x16", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    with np.load(tmp_path / "f.npz", allow_pickle=False) as stored:
        paths, rows = list(stored["paths"]), stored["X"]
    assert str(stereo) in paths
    row = rows[paths.index(str(stereo))]
    assert np.array_equal(row.reshape(16, 32, 3), pillow_reference(stereo, (32, 16)))


def test_explain_sees_a_turned_tiff_as_pillow_shows_it(tmp_path):
    """explain decodes through the same loader: its probabilities are the model's on the
    picture as viewed."""
    from logreg_cli.model import load_model

    data = tmp_path / "data"
    write_class_folders(data, ["red", "blue"], 3, size=(32, 16))
    model_path = train_model(data, tmp_path / "model.npz", epochs=5, size="32x16")
    photo = write_turned(tmp_path / "turned.tiff", "TIFF", {}, 6)
    result = CliRunner().invoke(cli, ["explain", str(photo), "-m", str(model_path),
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    explained = json.loads(result.stdout)["probabilities"]
    model = load_model(model_path)
    expected = model.predict_proba(pillow_reference(photo, (32, 16)).reshape(1, -1))[0]
    assert [explained[name] for name in model.classes] == pytest.approx(expected, rel=1e-6)
