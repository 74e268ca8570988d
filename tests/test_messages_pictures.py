"""Issue 15 part 3, "messages": a picture's format follows its file name's extension (as
Pillow knows it), or the option is refused by name before any work; never PNG bytes in a .jpg."""

import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from tiny_models import train_model, write_class_folders


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    write_class_folders(root / "data", ["blue", "red"], 3)
    return root / "data", train_model(root / "data", root / "m.npz", epochs=3)


def picture_command(option, data, model, picture, tmp_path):
    train = ["train", data, "--size", "8x8", "--epochs", "3", "-q"]
    return {"--plot": [*train, "-m", tmp_path / "out.npz", "--plot", picture],
            "--compare-lr --plot": [*train, "-m", tmp_path / "out.npz", "--compare-lr",
                                    "0.1,0.01", "--plot", picture],
            "--weights-png": ["inspect", model, "--weights-png", picture],
            "explain -o": ["explain", data / "red" / "000.png", "-m", model, "-o", picture],
            }[option]


OPTIONS = ["--plot", "--compare-lr --plot", "--weights-png", "explain -o"]


@pytest.mark.parametrize("option, name, image_format", [
    *[(option, name, image_format) for option in OPTIONS
      for name, image_format in (("curve.jpg", "JPEG"), ("curve.webp", "WEBP"))],
    ("--plot", "curve.JPEG", "JPEG"), ("explain -o", "curve.png", "PNG"), ("--plot", "curve", "PNG"),
    ("--weights-png", "curve.out", "PNG"),
])
def test_the_picture_format_follows_the_extension(work, tmp_path, option, name, image_format):
    data, model = work
    result = invoke(*picture_command(option, data, model, tmp_path / name, tmp_path))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / name) as picture:
        assert picture.format == image_format
        picture.load()


@pytest.mark.parametrize("option", OPTIONS)
def test_a_format_pillow_cannot_write_is_refused_by_name_before_any_work(work, tmp_path,
                                                                         option):
    data, model = work
    result = invoke(*picture_command(option, data, model, tmp_path / "curve.psd", tmp_path))
    shown_option = {"explain -o": "--output", "--compare-lr --plot": "--plot"}.get(option, option)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {shown_option} {tmp_path / 'curve.psd'}: Pillow reads .psd "
                             "pictures but cannot write them (name it .png, .jpg, .webp, .bmp, "
                             ".tif or .gif)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no model, no picture
