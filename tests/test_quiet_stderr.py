"""Pillow's own warnings and log lines never reach stderr: one line of ours per bad file."""

import io
import subprocess

from PIL import Image

from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders


def damaged_tiff(path):
    """A 10x12 TIFF whose first tag count is corrupted: Pillow warns about it, then fails."""
    buffer = io.BytesIO()
    Image.new("RGB", (10, 12), (1, 2, 3)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    data[14] ^= 0x40
    path.write_bytes(bytes(data))
    return path


def bomb(path):
    """A complete 1-bit PNG of 95 million pixels: over Pillow's limit, only warned about."""
    Image.new("1", (10000, 9500)).save(path)
    return path


def test_predict_names_each_bad_file_in_one_line_and_nothing_else(tmp_path):
    write_class_folders(tmp_path / "data", ["blue", "red"], 4)
    model = tmp_path / "model.npz"
    train_model(tmp_path / "data", model)
    bad = [damaged_tiff(tmp_path / "damaged.tif"), bomb(tmp_path / "bomb.png")]
    good = tmp_path / "data" / "red" / "000.png"
    result = subprocess.run(logreg_command("predict", *bad, good, "-m", model),
                            capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"Error: {bad[0]}: ")
    assert lines[1].startswith(f"Error: {bad[1]}: ") and "decompression-bomb limit" in lines[1]
    assert result.stdout.startswith(f"{good}\t")


def test_train_warns_once_per_bad_file(tmp_path):
    write_class_folders(tmp_path / "data", ["blue", "red"], 4)
    damaged_tiff(tmp_path / "data" / "blue" / "damaged.tif")
    result = subprocess.run(logreg_command("train", tmp_path / "data", "--size", "8x8",
                                           "--epochs", "5", "-m", tmp_path / "m.npz"),
                            capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "damaged.tif" in line]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: ")
    assert "UserWarning" not in result.stderr and "Metadata" not in result.stderr
