"""images.py: every mode to the right RGB pixels, bad files named with their cause, order kept."""

import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from logreg_cli.errors import ImageError, LogregError
from logreg_cli.images import (
    decode_full,
    is_image_name,
    iter_images,
    load_image,
    load_images,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def pixels(path, size):
    """load_image's row back as an H x W x 3 array."""
    return load_image(path, size).reshape(size[1], size[0], 3)


def solid(mode, size, color):
    return Image.new(mode, size, color)


def write_png_1bit(path, width, height):
    """A complete, valid all-black 1-bit PNG of any claimed size, without a big image in memory."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(1)
    parts = [compressor.compress(row * 1000) for _ in range(height // 1000)]
    parts += [compressor.compress(row * (height % 1000)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


# ---------------------------------------------------------------- modes


def test_16_bit_grey_ramp_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0, 257, ..., 65535
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    rgb = pixels(path, (16, 16))
    assert np.array_equal(rgb[..., 0], np.arange(256).reshape(16, 16))
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_16_bit_mid_values_round_to_nearest_level(tmp_path):
    values = np.array([[0, 128, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "mid16.tif"
    Image.fromarray(values).save(path)
    assert pixels(path, (4, 1))[0, :, 1].tolist() == [0, 0, 128, 255]


def test_16_bit_big_endian_tiff(tmp_path):
    values = np.array([[0, 25700, 65535]], dtype=">u2")
    path = tmp_path / "big_endian.tif"
    Image.frombuffer("I;16B", (3, 1), values.tobytes(), "raw", "I;16B", 0, 1).save(path)
    assert Image.open(path).mode == "I;16B"
    assert pixels(path, (3, 1))[0, :, 0].tolist() == [0, 100, 255]


def test_32_bit_integer_and_float_grey(tmp_path):
    ints = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.int32)).save(ints)
    assert Image.open(ints).mode == "I"
    assert pixels(ints, (3, 1))[0, :, 0].tolist() == [0, 100, 255]
    floats = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(floats)
    assert Image.open(floats).mode == "F"
    assert pixels(floats, (3, 1))[0, :, 0].tolist() == [0, 128, 255]


def test_one_bit(tmp_path):
    path = tmp_path / "bits.png"
    image = Image.new("1", (8, 1))
    image.putdata([0, 1] * 4)
    image.save(path)
    assert pixels(path, (8, 1))[0, :, 0].tolist() == [0, 255] * 4


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "rgba.png"
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 255), (0, 0, 255, 0), (0, 0, 0, 128)])
    image.save(path)
    row = pixels(path, (3, 1))[0]
    assert row[0].tolist() == list(RED)
    assert row[1].tolist() == list(WHITE)  # fully transparent: paper, not the hidden colour
    assert np.all(np.abs(row[2].astype(int) - 127) <= 1)  # half black over white


def test_grey_with_alpha_la(tmp_path):
    path = tmp_path / "la.png"
    image = Image.new("LA", (2, 1))
    image.putdata([(100, 255), (100, 0)])
    image.save(path)
    assert Image.open(path).mode == "LA"
    assert pixels(path, (2, 1))[0].tolist() == [[100] * 3, [255] * 3]


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency(tmp_path, fmt):
    path = tmp_path / f"palette.{fmt.lower()}"
    image = Image.new("P", (4, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1, 1, 0])
    image.save(path, transparency=0)  # index 0 (red) is transparent
    assert Image.open(path).mode == "P"
    assert pixels(path, (4, 1))[0].tolist() == [list(WHITE), list(BLUE), list(BLUE), list(WHITE)]


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([1, 0])
    image.save(path)
    assert pixels(path, (2, 1))[0].tolist() == [[200, 100, 50], [10, 20, 30]]


def test_rgb_with_transparent_colour_key(tmp_path):
    path = tmp_path / "key.png"
    image = Image.new("RGB", (2, 1))
    image.putdata([(1, 2, 3), (50, 60, 70)])
    image.save(path, transparency=(1, 2, 3))
    assert pixels(path, (2, 1))[0].tolist() == [list(WHITE), [50, 60, 70]]


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # red ink
    assert Image.open(path).mode == "CMYK"
    rgb = pixels(path, (16, 16)).astype(int)
    assert np.all(np.abs(rgb - RED) <= 3)


def test_progressive_jpeg_matches_baseline(tmp_path):
    image = Image.new("RGB", (64, 32), RED)
    image.paste(Image.new("RGB", (32, 32), BLUE), (32, 0))
    image.save(tmp_path / "base.jpg", quality=95)
    image.save(tmp_path / "prog.jpg", quality=95, progressive=True)
    assert Image.open(tmp_path / "prog.jpg").info.get("progressive")
    progressive = pixels(tmp_path / "prog.jpg", (64, 32)).astype(int)
    assert np.abs(progressive - pixels(tmp_path / "base.jpg", (64, 32))).max() <= 2
    assert np.all(np.abs(progressive[8:24, 4:24] - RED) <= 4)
    assert np.all(np.abs(progressive[8:24, 40:60] - BLUE) <= 4)


@pytest.mark.parametrize("fmt, suffix, options", [
    ("BMP", ".bmp", {}), ("TIFF", ".tif", {}), ("PNG", ".png", {}),
    ("WEBP", ".webp", {"lossless": True}),
])
def test_lossless_formats_are_exact(tmp_path, fmt, suffix, options):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow was built without WebP")
    colours = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    path = tmp_path / f"image{suffix}"
    Image.fromarray(colours).save(path, fmt, **options)
    assert np.array_equal(pixels(path, (5, 6)), colours)


def test_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [solid("RGB", (4, 4), RED), solid("RGB", (4, 4), BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert Image.open(path).n_frames == 2
    assert np.all(pixels(path, (4, 4)) == RED)


@pytest.mark.parametrize("orientation, top_left, size", [
    (1, RED, (40, 20)),   # as stored: red left half, blue right half
    (3, BLUE, (40, 20)),  # rotated 180
    (6, RED, (20, 40)),   # displayed turned 90 clockwise: the left half goes on top
    (8, BLUE, (20, 40)),  # turned 90 anticlockwise: the right half goes on top
])
def test_exif_orientation_is_applied(tmp_path, orientation, top_left, size):
    image = Image.new("RGB", (40, 20), RED)
    image.paste(Image.new("RGB", (20, 20), BLUE), (20, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    image.save(path, quality=95, exif=exif)
    info = {}
    row = load_image(path, size, info=info)
    rgb = row.reshape(size[1], size[0], 3).astype(int)
    assert info["original_size"] == size
    assert np.all(np.abs(rgb[2, 2] - top_left) <= 6)
    other = BLUE if top_left == RED else RED
    assert np.all(np.abs(rgb[-3, -3] - other) <= 6)


def test_resize_antialiases(tmp_path):
    """A 1-pixel checkerboard shrunk 8x must become mid-grey, not a sample of black or white."""
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    path = tmp_path / "board.png"
    Image.fromarray(board).save(path)
    small = pixels(path, (8, 8)).astype(int)
    assert np.all(np.abs(small - 127.5) <= 3)


def test_jpeg_draft_stays_close_to_full_decode(tmp_path):
    y, x = np.mgrid[0:768, 0:1024]
    picture = np.stack([x % 256, y % 256, (x // 4 + y // 4) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(picture).save(path, quality=90)
    with Image.open(path) as full:
        reference = np.asarray(full.convert("RGB").resize((32, 24), Image.Resampling.LANCZOS))
    assert np.abs(pixels(path, (32, 24)).astype(int) - reference).mean() < 2.0


def test_file_object_source(tmp_path):
    path = tmp_path / "a.png"
    solid("RGB", (2, 2), GREEN).save(path)
    with open(path, "rb") as file:
        assert load_image(file, (2, 2)).tolist() == list(GREEN) * 4


# ---------------------------------------------------------------- bad files


def assert_refused(path, *words):
    with pytest.raises(ImageError) as caught:
        load_image(path, (8, 8))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    cause = message.removeprefix(f"{path}: ")  # the words must be in the cause, not the path
    for word in words:
        assert word in cause
    return message


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_refused(path, "empty file (0 bytes)")


def test_text_file_with_image_extension(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    assert_refused(path, "not an image")


def test_missing_file_and_folder(tmp_path):
    assert_refused(tmp_path / "gone.png", "no such file")
    (tmp_path / "folder.png").mkdir()
    assert_refused(tmp_path / "folder.png", "folder")


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_file(tmp_path, fmt, suffix):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(noise).save(path, fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_refused(path, "truncated")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image data is decoded."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"decoded {self.size} pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_png_claiming_30000_by_30000_is_refused_unread(tmp_path, no_decoding):
    path = write_png_1bit(tmp_path / "bomb.png", 30000, 30000)
    assert_refused(path, "refused: 900000000 pixels, over Pillow's decompression-bomb limit of")


def test_bomb_between_one_and_two_times_the_limit_is_refused(tmp_path, no_decoding):
    """Pillow only warns here (DecompressionBombWarning); we refuse, warning filters or not."""
    path = write_png_1bit(tmp_path / "big.png", 10000, 10000)  # 1e8 pixels: 1.1x the limit
    assert Image.MAX_IMAGE_PIXELS < 10000 * 10000 < 2 * Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # even where the warning is silenced
        assert_refused(path, "refused: 10000 x 10000 = 100000000 pixels, over Pillow's "
                             f"decompression-bomb limit of {Image.MAX_IMAGE_PIXELS}")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        [(_, row, error)] = list(iter_images([path], (8, 8), jobs=1))
    assert row is None and "decompression-bomb limit" in str(error)
    assert not seen  # no Pillow warning text leaks to stderr


def test_decode_full_keeps_size_and_mode(tmp_path):
    path = tmp_path / "p.png"
    Image.new("L", (5, 3), 7).save(path)
    array, mode = decode_full(path)
    assert array.shape == (3, 5, 3) and mode == "L" and np.all(array == 7)


# ---------------------------------------------------------------- many images


def test_image_names():
    assert is_image_name("a/B.JPG") and is_image_name("x.Png") and is_image_name("y.tiff")
    assert not is_image_name(".hidden.png") and not is_image_name("notes.txt")


def make_mixed_set(folder, count=40):
    """count small PNGs of distinct colours, with a broken file at index 7."""
    paths = []
    for index in range(count):
        path = folder / f"{index:03d}.png"
        if index == 7:
            path.write_text("broken")
        else:
            Image.new("RGB", (6, 4), (index, 255 - index, 3 * index)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("jobs, min_for_processes, threads_from_bytes", [
    (1, 256, 1 << 20),  # one job
    (2, 256, 1 << 20),  # few small files: this thread
    (2, 256, 0),        # "big" files: threads
    (2, 1, 1 << 20),    # many small files: processes
])
def test_load_images_keeps_order_and_skips_bad(tmp_path, monkeypatch, jobs, min_for_processes,
                                               threads_from_bytes):
    monkeypatch.setattr("logreg_cli.images.THREADS_FROM_BYTES", threads_from_bytes)
    paths = make_mixed_set(tmp_path)
    errors, ticks = [], []
    X, kept = load_images(paths, (3, 2), jobs=jobs, on_error=errors.append,
                          on_image=lambda: ticks.append(1), min_for_processes=min_for_processes)
    assert kept == [i for i in range(40) if i != 7]
    assert X.shape == (39, 18) and X.dtype == np.uint8
    assert [row[0] for row in X] == kept  # red channel = index: rows in input order
    assert [str(e) for e in errors] == [f"{paths[7]}: not an image Pillow can read"]
    assert len(ticks) == 40


def test_iter_images_streams_in_order_with_threads(tmp_path):
    paths = make_mixed_set(tmp_path, 20)
    results = list(iter_images(iter(paths), (3, 2), jobs=3))
    assert [path for path, _, _ in results] == paths
    assert [row[0] for _, row, error in results if error is None] == [i for i in range(20) if i != 7]


def test_strict_stop_leaves_no_workers_hanging(tmp_path):
    paths = make_mixed_set(tmp_path)

    def stop(error):
        raise error

    with pytest.raises(ImageError, match="007.png"):
        load_images(paths, (3, 2), jobs=2, on_error=stop, min_for_processes=1)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no worker left, running or unreaped


def test_a_dying_worker_process_is_one_clear_error(tmp_path, monkeypatch):
    paths = make_mixed_set(tmp_path)
    monkeypatch.setattr("logreg_cli.images._try_load", lambda path, size: os._exit(9))
    with pytest.raises(LogregError, match="an image-decoding process died"):
        load_images(paths, (3, 2), jobs=2, min_for_processes=1)
