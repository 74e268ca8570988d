"""Issue 10, case 2: a colour key (PNG tRNS) is composited on white in every mode and depth.

The PNGs are written byte by byte (Pillow cannot write 2-, 4- or 16-bit keys): a background of
the key value with a square of another value in the middle. The background must read white,
the square exactly the grey or colour Pillow decodes for it, at every bit depth.
"""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from logreg_cli.images import decode_full, load_image, to_rgb

WHITE = (255, 255, 255)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_keyed_png(path, samples, depth, key):
    """samples: H x W (grey, colour type 0) or H x W x 3 (RGB, type 2) ints of `depth` bits;
    key: the transparent grey value or (r, g, b), in the same units."""
    height, width = samples.shape[:2]
    colour_type = 2 if samples.ndim == 3 else 0
    rows = []
    for line in samples.reshape(height, -1):
        if depth == 16:
            data = line.astype(">u2").tobytes()
        else:  # 1, 2, 4 or 8 bits a sample, packed from the most significant bit
            bits = np.unpackbits(line.astype(np.uint8)[:, None], axis=1)[:, 8 - depth:]
            data = np.packbits(bits.reshape(-1)).tobytes()
        rows.append(b"\0" + data)
    key_bytes = b"".join(struct.pack(">H", value) for value in np.atleast_1d(key))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", key_bytes)
                     + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    return path


def keyed_picture(background, square, colour=False):
    """8 x 8 of the background value, a 4 x 4 square of another in the middle."""
    shape = (8, 8, 3) if colour else (8, 8)
    samples = np.empty(shape, dtype=np.int64)
    samples[...] = background
    samples[2:6, 2:6] = square
    return samples


CASES = [  # depth, key (= background), square, the square's RGB as Pillow decodes it
    pytest.param(1, 0, 1, WHITE, id="1-bit-black-key"),
    pytest.param(2, 1, 2, (170,) * 3, id="2-bit"),
    pytest.param(4, 5, 9, (153,) * 3, id="4-bit"),
    pytest.param(8, 195, 10, (10,) * 3, id="8-bit"),
    pytest.param(16, 50000, 1000, (4,) * 3, id="16-bit"),  # 1000 / 257 = 3.9
    pytest.param(16, 0, 65535, WHITE, id="16-bit-black-key"),
    pytest.param(8, (200, 100, 50), (10, 20, 30), (10, 20, 30), id="RGB-8-bit"),
    pytest.param(16, (50000, 20000, 1000), (2560, 5120, 7680), (10, 20, 30), id="RGB-16-bit"),
]


@pytest.mark.parametrize("depth, key, square, square_rgb", CASES)
def test_colour_key_is_white_at_every_depth(tmp_path, depth, key, square, square_rgb):
    path = write_keyed_png(tmp_path / "keyed.png",
                           keyed_picture(key, square, colour=isinstance(key, tuple)), depth, key)
    expected = np.empty((8, 8, 3), dtype=np.uint8)
    expected[...] = WHITE
    expected[2:6, 2:6] = square_rgb
    assert np.array_equal(load_image(path, (8, 8)).reshape(8, 8, 3), expected)
    pixels, _ = decode_full(path)  # check's decoding: the same pixels
    assert np.array_equal(pixels, expected)


def test_16_bit_key_reads_like_its_8_bit_version(tmp_path):
    """The issue's picture: background 50000 transparent, a dark square; white, as in 8 bits."""
    wide = write_keyed_png(tmp_path / "16.png", keyed_picture(50000, 3000), 16, 50000)
    narrow = write_keyed_png(tmp_path / "8.png", keyed_picture(195, 12), 8, 195)
    assert load_image(wide, (4, 4)).tolist() == load_image(narrow, (4, 4)).tolist()
    assert load_image(wide, (8, 8))[:3].tolist() == [255, 255, 255]


def test_16_bit_key_is_exact(tmp_path):
    """Only the key itself is transparent: 50001 reads as its grey, though it rounds to the
    same 8-bit level as 50000."""
    samples = keyed_picture(50000, 50001)
    path = write_keyed_png(tmp_path / "near.png", samples, 16, 50000)
    rgb = load_image(path, (8, 8)).reshape(8, 8, 3)
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[4, 4].tolist() == [195, 195, 195]


@pytest.mark.parametrize("mode, values, key, square, grey", [
    ("I", np.int32, 40000, 70000, 255),  # beyond 16 bits: stretched, the key to black before
    ("I;16", np.uint16, 50000, 1000, 4),
    ("L", np.uint8, 200, 10, 10),
])
def test_to_rgb_composites_a_grey_key_in_every_grey_mode(mode, values, key, square, grey):
    samples = keyed_picture(key, square).astype(values)
    image = Image.fromarray(samples)
    assert image.mode == mode
    image.info["transparency"] = key
    rgb = np.asarray(to_rgb(image))
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[4, 4].tolist() == [grey] * 3


@pytest.mark.parametrize("mode, key", [("P", 3), ("1", 0), ("L", 3), ("RGB", (3, 3, 3))])
def test_pillow_written_keys_are_white(tmp_path, mode, key):
    """Files Pillow writes with transparency=key: key pixels white, the rest as Pillow reads
    them without the key."""
    grey = keyed_picture(3, 255 if mode == "1" else 90).astype(np.uint8)
    if mode == "1":
        grey[grey == 3] = 0
    image = Image.fromarray(grey)
    image = image.convert(mode) if mode != "L" else image
    path = tmp_path / "keyed.png"
    image.save(path, transparency=key)
    with Image.open(path) as stored:
        assert stored.mode == mode and "transparency" in stored.info
        expected = np.array(stored.convert("RGB"))
    expected[grey == grey[0, 0]] = WHITE
    assert np.array_equal(load_image(path, (8, 8)).reshape(8, 8, 3), expected)
