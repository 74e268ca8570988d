"""Issue 15 part 2, "messages": --compare-lr honours --history (one CSV per rate, named like
the models) and validation (its cost is drawn too), and refuses --lr, which it cannot honour."""

import pytest
from click.testing import CliRunner

from logreg_cli import plots
from logreg_cli.cli import cli
from logreg_cli.model import load_model
from logreg_cli.views import history_csv
from tiny_models import write_class_folders


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def data(tmp_path):
    write_class_folders(tmp_path / "data", ["blue", "red"], 4)
    return tmp_path / "data"


@pytest.mark.parametrize("validation", [[], ["--val-split", "0.25"]])
def test_compare_lr_writes_one_history_per_rate_and_draws_validation(data, tmp_path,
                                                                     monkeypatch, validation):
    drawn = []
    original = plots.learning_curve_image
    monkeypatch.setattr(plots, "learning_curve_image",
                        lambda series, **kw: drawn.append([s[0] for s in series]) or
                        original(series, **kw))
    result = invoke("train", data, "--size", "8x8", "--epochs", "6", "--compare-lr", "0.1,0.01",
                    "-m", tmp_path / "m.npz", "--history", tmp_path / "h.csv",
                    "--plot", tmp_path / "p.png", "-q", *validation)
    assert result.exit_code == 0, result.output
    for rate in ("0.1", "0.01"):
        history = load_model(tmp_path / f"m.lr{rate}.npz").metadata["history"]
        text = (tmp_path / f"h.lr{rate}.csv").read_text()
        assert text == history_csv(history)
        assert text.splitlines()[0] == ("epoch,lr,cost,val_cost,val_accuracy" if validation
                                        else "epoch,lr,cost")
        assert {line.split(",")[1] for line in text.splitlines()[1:]} == {repr(float(rate))}
    assert not (tmp_path / "h.csv").exists()
    expected = (["lr 0.1", "lr 0.1 validation", "lr 0.01", "lr 0.01 validation"] if validation
                else ["lr 0.1", "lr 0.01"])
    assert drawn == [expected]


def test_compare_lr_refuses_lr(data, tmp_path):
    result = invoke("train", data, "--compare-lr", "0.1,0.01", "--lr", "0.5",
                    "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --lr cannot be combined with --compare-lr (each listed rate "
                             "is the learning rate of one model)\n")
    assert list(tmp_path.glob("m*")) == []
