"""Issue 10, case 3: an image whose data stops early is damaged, even padded to its old length.

A JPEG cut after 40 % of its bytes and padded with zero bytes decodes without an error in
Pillow (the zeros become grey garbage); the missing end marker tells. The same for the other
formats: each cut (and padded) file is refused by name, like a plain truncated file.
"""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, features

from logreg_cli.cli import cli
from logreg_cli.errors import ImageError
from logreg_cli.images import load_image
from tiny_models import train_model, write_class_folders


def photo(width=160, height=120, seed=0):
    """A photo-like picture: smooth colour fields, waves and sensor-like noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC),
                       dtype=np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = 30 * np.sin(x / 20 + y / 40)[..., None]
    noise = rng.normal(0, 10, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(field + waves + noise, 0, 255).astype(np.uint8))


def encoded(fmt, **options):
    buffer = io.BytesIO()
    photo().save(buffer, fmt, **options)
    return buffer.getvalue()


def cut(data, keep=0.4, pad=b"\0"):
    """The first `keep` of data, padded back to its length with `pad` (b"" for none)."""
    head = data[: int(len(data) * keep)]
    return head + pad * (len(data) - len(head))


def refused_cause(path):
    with pytest.raises(ImageError) as caught:
        load_image(path, (16, 16))
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value.cause


# The issue's photo: 4:4:4 baseline JPEG, which Pillow decoded silently once padded.
JPEG_444 = {"quality": 90, "subsampling": 0}


def test_the_issues_padded_jpeg_is_damaged(tmp_path):
    data = encoded("JPEG", **JPEG_444)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(cut(data))
    assert padded.stat().st_size == len(data)
    assert refused_cause(padded) == ("truncated or damaged (no end-of-image marker after the "
                                     "JPEG data: cut short, maybe padded)")
    whole = tmp_path / "whole.jpg"
    whole.write_bytes(data)
    assert load_image(whole, (16, 16)).shape == (16 * 16 * 3,)


@pytest.mark.parametrize("options", [
    pytest.param(JPEG_444, id="baseline-444"),
    pytest.param({"quality": 90}, id="baseline-420"),
    pytest.param({"quality": 90, "progressive": True}, id="progressive"),
    pytest.param({"quality": 75, "optimize": True, "restart_marker_rows": 1}, id="restarts"),
])
@pytest.mark.parametrize("keep", [0.4, 0.9, 0.999])
@pytest.mark.parametrize("pad", [b"\0", b"\xff", b""], ids=["zeros", "ff", "unpadded"])
def test_every_cut_jpeg_is_truncated_or_damaged(tmp_path, options, keep, pad):
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut(encoded("JPEG", **options), keep, pad))
    assert refused_cause(path).startswith("truncated or damaged (")


def test_a_cut_jpeg_read_from_a_stream_is_damaged():
    stream = io.BytesIO(cut(encoded("JPEG", **JPEG_444)))
    stream.name = "-"
    with pytest.raises(ImageError, match="^-: truncated or damaged .*end-of-image"):
        load_image(stream, (16, 16))


def test_bytes_after_the_end_marker_are_allowed(tmp_path):
    """Camera padding after EOI, or a video appended to a motion photo: the picture is whole."""
    data = encoded("JPEG", **JPEG_444)
    for name, tail in (("zeros", b"\0" * 5000), ("video", bytes(range(256)) * 100)):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(data + tail)
        with Image.open(io.BytesIO(data)) as reference:
            expected = np.asarray(reference.convert("RGB"))
        assert np.array_equal(load_image(path, (160, 120)).reshape(120, 160, 3), expected)


@pytest.mark.parametrize("junk", [b"\xff\xff", b"\xff\x00", b"\x00\x00\x00"])
def test_junk_between_segments_does_not_make_a_whole_jpeg_damaged(tmp_path, junk):
    """Fill bytes or junk before the first scan (which Pillow skips) are not a cut."""
    data = encoded("JPEG", **JPEG_444)
    scan = data.index(b"\xff\xda")
    path = tmp_path / "junk.jpg"
    path.write_bytes(data[:scan] + junk + data[scan:])
    with Image.open(io.BytesIO(data)) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert np.array_equal(load_image(path, (160, 120)).reshape(120, 160, 3), expected)


def test_a_padded_mpo_is_damaged(tmp_path):
    buffer = io.BytesIO()
    photo().save(buffer, "MPO", save_all=True, append_images=[photo(seed=1)], **JPEG_444)
    path = tmp_path / "stereo.jpg"
    path.write_bytes(cut(buffer.getvalue(), 0.2))  # inside the first picture
    assert refused_cause(path).startswith("truncated or damaged (no end-of-image marker")


def png_without_iend():
    data = encoded("PNG")
    return data[: data.rindex(b"IEND") - 4]  # the 4 bytes of its length go too


@pytest.mark.parametrize("make, expected", [
    pytest.param(lambda: cut(encoded("PNG")), "truncated or damaged (", id="idat-cut-padded"),
    pytest.param(lambda: cut(encoded("PNG"), pad=b""), "truncated or damaged (", id="idat-cut"),
    pytest.param(png_without_iend, "truncated or damaged (no IEND chunk after the PNG data",
                 id="no-iend"),
    pytest.param(lambda: png_without_iend() + b"\0" * 12,
                 "truncated or damaged (no IEND chunk after the PNG data", id="iend-zeroed"),
])
def test_a_cut_png_is_truncated_or_damaged(tmp_path, make, expected):
    path = tmp_path / "cut.png"
    path.write_bytes(make())
    assert refused_cause(path).startswith(expected)


@pytest.mark.parametrize("fmt, suffix, options, pad", [
    ("GIF", ".gif", {}, b"\0"),
    ("GIF", ".gif", {}, b"\xff"),
    pytest.param("WEBP", ".webp", {"quality": 80}, b"\xff",
                 marks=pytest.mark.skipif(not features.check("webp"), reason="no WebP")),
])
def test_other_formats_cut_and_padded_are_truncated_or_damaged(tmp_path, fmt, suffix, options,
                                                                pad):
    """A GIF cut and padded fails to decode; so does a WebP padded with anything but zeros
    (zeros decode as valid data: see the README)."""
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(cut(encoded(fmt, **options), pad=pad))
    assert refused_cause(path).startswith("truncated or damaged (")


@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
def test_a_compressed_tiff_whose_strips_were_zeroed_is_damaged(tmp_path, compression):
    """The TIFF's directory (at its end) survives; its strips from 40 % on are zeros."""
    buffer = io.BytesIO()
    photo().save(buffer, "TIFF", compression=compression, tiffinfo={278: 16})  # 16 rows a strip
    data = bytearray(buffer.getvalue())
    with Image.open(io.BytesIO(bytes(data))) as stored:
        offsets, counts = stored.tag_v2[273], stored.tag_v2[279]
    first, end = offsets[0], offsets[-1] + counts[-1]
    start = first + int((end - first) * 0.4)
    data[start:end] = bytes(end - start)
    path = tmp_path / "zeroed.tiff"
    path.write_bytes(bytes(data))
    assert refused_cause(path).startswith("truncated or damaged (")


# ---------------------------------------------------------------- through the commands


@pytest.fixture
def data_with_a_padded_photo(tmp_path):
    data = tmp_path / "data"
    write_class_folders(data, ["red", "blue"], 3)
    padded = data / "red" / "padded.jpg"
    padded.write_bytes(cut(encoded("JPEG", **JPEG_444)))
    return data, padded


CAUSE = "truncated or damaged (no end-of-image marker after the JPEG data: cut short, maybe padded)"


def test_flatten_skips_it_with_a_warning_and_strict_stops(tmp_path, data_with_a_padded_photo):
    data, padded = data_with_a_padded_photo
    result = CliRunner().invoke(cli, ["flatten", str(data), "-o", str(tmp_path / "f.npz"),
                                      "--size", "8x8", "-q"])
    assert result.exit_code == 0, result.output
    assert f"Warning: {padded}: {CAUSE}\n" in result.stderr
    with np.load(tmp_path / "f.npz", allow_pickle=False) as features_file:
        assert len(features_file["y"]) == 6
    strict = CliRunner().invoke(cli, ["flatten", str(data), "-o", str(tmp_path / "g.npz"),
                                      "--size", "8x8", "-q", "--strict"])
    assert strict.exit_code == 2
    assert strict.stderr == f"Error: {padded}: {CAUSE}\n"
    assert not (tmp_path / "g.npz").exists()


def test_predict_names_it_and_does_the_rest(tmp_path, data_with_a_padded_photo):
    data, padded = data_with_a_padded_photo
    good = data / "blue" / "000.png"
    padded.rename(tmp_path / "padded.jpg")
    model = train_model(data, tmp_path / "model.npz", epochs=2)
    padded = tmp_path / "padded.jpg"
    result = CliRunner().invoke(cli, ["predict", "-m", str(model), str(padded), str(good)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {padded}: {CAUSE}\n"
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(good)]


def test_check_lists_it_as_unreadable(data_with_a_padded_photo):
    data, padded = data_with_a_padded_photo
    result = CliRunner().invoke(cli, ["check", str(data), "--format", "json"])
    report = json.loads(result.stdout)
    assert report["unreadable"] == [{"path": str(padded), "cause": CAUSE}]


def test_explain_refuses_it_in_one_line(tmp_path, data_with_a_padded_photo):
    data, padded = data_with_a_padded_photo
    padded.rename(tmp_path / "padded.jpg")
    padded = tmp_path / "padded.jpg"
    model = train_model(data, tmp_path / "model.npz", epochs=2)
    result = CliRunner().invoke(cli, ["explain", str(padded), "-m", str(model)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {padded}: {CAUSE}\n"


@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
@pytest.mark.parametrize("pad", [b"\0", b"\xff", b""], ids=["zeros", "ff", "unpadded"])
def test_a_tiff_cut_before_its_directory_is_damaged_not_a_non_image(tmp_path, compression, pad):
    """libtiff writes the directory last: a cut TIFF still starts like a TIFF."""
    path = tmp_path / "cut.tiff"
    path.write_bytes(cut(encoded("TIFF", compression=compression), pad=pad))
    assert refused_cause(path) == ("truncated or damaged (it starts like a TIFF file but "
                                   "cannot be read)")


def test_a_text_file_is_still_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    assert refused_cause(path) == "not an image Pillow can read"


@pytest.mark.parametrize("content, expected", [
    (b"no", "not an image Pillow can read"),
    (b"BM", "truncated or damaged (it starts like a BMP file but cannot be read)"),
    (b"\x89PNG\r\n\x1a\n", "truncated or damaged ("),
    (b"II*\x00", "truncated or damaged (it starts like a TIFF file but cannot be read)"),
])
def test_a_few_bytes_are_named_by_what_they_start_like(tmp_path, content, expected):
    path = tmp_path / "short.png"
    path.write_bytes(content)
    assert refused_cause(path).startswith(expected)


def test_a_png_whose_iend_has_a_wrong_crc_is_whole(tmp_path):
    """Some writers get the IEND chunk's CRC wrong; the picture before it is whole."""
    data = encoded("PNG")
    path = tmp_path / "bad-crc.png"
    path.write_bytes(data[:-4] + b"\0\0\0\0")
    with Image.open(io.BytesIO(data)) as reference:
        expected = np.asarray(reference.convert("RGB"))
    assert np.array_equal(load_image(path, (160, 120)).reshape(120, 160, 3), expected)
