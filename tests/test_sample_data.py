"""sample_data/ is made by our script, deterministically, and the defaults learn it."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from logreg_cli.cli import cli

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def digests(root):
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.png"))
    }


def test_script_rebuilds_the_committed_images_byte_for_byte(tmp_path):
    shutil.copy(SAMPLE / "make_sample_data.py", tmp_path)
    subprocess.run([sys.executable, str(tmp_path / "make_sample_data.py")], check=True)
    rebuilt = digests(tmp_path)
    assert len(rebuilt) == 189
    assert rebuilt == digests(SAMPLE)


def test_sample_data_is_small():
    total = sum(path.stat().st_size for path in SAMPLE.rglob("*.png"))
    assert total < 300_000


def test_defaults_learn_the_sample_data(tmp_path):
    model = str(tmp_path / "model.npz")
    runner = CliRunner()
    trained = runner.invoke(cli, ["train", str(SAMPLE / "train"), "-m", model, "-q"])
    assert trained.exit_code == 0, trained.stderr
    scored = runner.invoke(cli, ["evaluate", str(SAMPLE / "test"), "-m", model, "--format", "json"])
    assert scored.exit_code == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["classes"] == ["circle", "square", "stripes"]
    assert report["images"] == 54
    assert report["accuracy"] >= 0.85  # README says 87 % (47/54)
