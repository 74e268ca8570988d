"""Every error path of every subcommand, from one table.

Each row runs a command with bad input and checks what the README promises: the exit code of
its table (2 for an error that stops the command, 1 for predict when some inputs fail),
stderr of one or two lines naming the cause (`Error: ...`), no traceback anywhere, stdout
empty or whole lines only, and no file created or changed.
Commands not present in this build (e.g. `check` before it lands) are skipped.
"""

import os
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from feature_files import write_feature_file_claiming_rows
from test_files_hostile import raw_zip, stored_entries
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders


@dataclass
class Case:
    args: list          # {name} is replaced by the workspace path of name
    exit_code: int
    words: list         # each appears in stderr ({name} replaced too)
    stdin: bytes = b""


IMG = "{data}/blue/000.png"

CASES = {
    # ------------------------------------------------------------ train
    "train-missing-data": Case(["train", "{nowhere}", "-m", "{out}"], 2, ["{nowhere}", "no such"]),
    "train-no-argument": Case(["train"], 2, ["Missing argument", "DATA"]),
    "train-data-is-a-text-file": Case(["train", "{notes}", "-m", "{out}"], 2, ["{notes}"]),
    "train-data-is-an-image": Case(["train", IMG, "-m", "{out}"], 2, ["000.png"]),
    "train-data-is-a-model": Case(["train", "{model}", "-m", "{out}"], 2, ["{model}", "model"]),
    "train-empty-folder": Case(["train", "{empty}", "-m", "{out}"], 2, ["{empty}", "0 images"]),
    "train-empty-class-folders": Case(["train", "{emptyclasses}", "-m", "{out}"], 2,
                                      ["{emptyclasses}", "0 images"]),
    "train-one-class": Case(["train", "{one}", "-m", "{out}", "--size", "8x8"], 2,
                            ["{one}", "one class"]),
    "train-one-class-feature-file": Case(["train", "{one_features}", "-m", "{out}"], 2,
                                         ["{one_features}", "one class"]),
    "train-empty-feature-file": Case(["train", "{empty_features}", "-m", "{out}"], 2,
                                     ["{empty_features}"]),
    "train-model-in-missing-folder": Case(
        ["train", "{data}", "-m", "{nowhere}/m.npz", "--size", "8x8", "--epochs", "1"], 2,
        ["{nowhere}/m.npz", "cannot write"]),
    "train-model-is-a-folder": Case(["train", "{data}", "-m", "{data}"], 2, ["--model", "{data}"]),
    "train-history-in-missing-folder": Case(
        ["train", "{data}", "-m", "{out}", "--history", "{nowhere}/h.csv", "--size", "8x8",
         "--epochs", "1"], 2, ["{nowhere}/h.csv", "cannot write"]),
    "train-size-one-number": Case(["train", "{data}", "--size", "64"], 2, ["--size", "64"]),
    "train-size-three-numbers": Case(["train", "{data}", "--size", "8x8x3"], 2, ["--size", "8x8x3"]),
    "train-size-empty": Case(["train", "{data}", "--size", ""], 2, ["--size"]),
    "train-size-zero": Case(["train", "{data}", "--size", "0x5"], 2, ["--size", "0x5"]),
    "train-size-negative": Case(["train", "{data}", "--size", "-1x4"], 2, ["--size", "-1x4"]),
    "train-size-huge": Case(["train", "{data}", "--size", "100000x100000"], 2,
                            ["--size", "100000x100000", "too large"]),
    "train-lr-text": Case(["train", "{data}", "--lr", "abc"], 2, ["--lr", "abc"]),
    "train-lr-negative": Case(["train", "{data}", "--lr", "-1"], 2, ["--lr"]),
    "train-lr-zero": Case(["train", "{data}", "--lr", "0"], 2, ["--lr"]),
    "train-learning-rate-negative": Case(["train", "{data}", "--learning-rate", "-1"], 2,
                                         ["--lr"]),
    "train-lr-nan": Case(["train", "{data}", "--lr", "nan"], 2, ["--lr", "nan"]),
    "train-lr-inf": Case(["train", "{data}", "--lr", "inf"], 2, ["--lr", "inf"]),
    "train-epochs-negative": Case(["train", "{data}", "--epochs", "-3"], 2, ["--epochs"]),
    "train-epochs-fraction": Case(["train", "{data}", "--epochs", "1.5"], 2, ["--epochs", "1.5"]),
    "train-epochs-text": Case(["train", "{data}", "--epochs", "many"], 2, ["--epochs", "many"]),
    "train-unknown-decay": Case(["train", "{data}", "--decay", "cosine"], 2, ["--decay", "cosine"]),
    "train-decay-rate-negative": Case(["train", "{data}", "--decay", "inverse", "--decay-rate",
                                       "-1"], 2, ["--decay-rate"]),
    "train-decay-rate-nan": Case(["train", "{data}", "--decay", "exponential", "--decay-rate",
                                  "nan"], 2, ["--decay-rate"]),
    "train-decay-steps-zero": Case(["train", "{data}", "--decay-steps", "0"], 2, ["--decay-steps"]),
    "train-batch-size-zero": Case(["train", "{data}", "--batch-size", "0"], 2, ["--batch-size"]),
    "train-l2-negative": Case(["train", "{data}", "--l2", "-1"], 2, ["--l2"]),
    "train-l2-nan": Case(["train", "{data}", "--l2", "nan"], 2, ["--l2"]),
    "train-jobs-zero": Case(["train", "{data}", "--jobs", "0"], 2, ["--jobs"]),
    "train-unknown-option": Case(["train", "{data}", "--colour"], 2, ["--colour"]),
    "train-diverges": Case(["train", "{data}", "-m", "{out}", "--size", "8x8", "--epochs", "50",
                            "--lr", "1e39"], 2, ["diverged", "--lr"]),
    "train-val-and-val-split": Case(["train", "{data}", "-m", "{out}", "--val", "{data}",
                                     "--val-split", "0.2"], 2, ["--val", "--val-split"]),
    # ------------------------------------------------------------ predict
    "predict-no-argument": Case(["predict"], 2, ["Missing argument"]),
    "predict-missing-model": Case(["predict", IMG, "-m", "{nowhere}.npz"], 2,
                                  ["{nowhere}.npz", "no such model file"]),
    "predict-feature-file-as-model": Case(["predict", IMG, "-m", "{features16}"], 2,
                                          ["{features16}", "feature file"]),
    "predict-missing-image": Case(["predict", "{nowhere}.png", "-m", "{model}"], 1,
                                  ["{nowhere}.png", "no such file"]),
    "predict-unreadable-image": Case(["predict", "{bad}", "-m", "{model}"], 1, ["{bad}"]),
    "predict-some-unreadable": Case(["predict", IMG, "{bad}", "{notes}", "-m", "{model}"], 1,
                                    ["{bad}", "{notes}"]),
    "predict-folder-without-images": Case(["predict", "{empty}", "-m", "{model}"], 1,
                                          ["{empty}", "no image files"]),
    "predict-empty-feature-file": Case(["predict", "{empty_features}", "-m", "{model}"], 1,
                                       ["{empty_features}", "no images"]),
    "predict-size-mismatch-feature-file": Case(["predict", "{features16}", "-m", "{model}"], 1,
                                               ["768 features", "expects 192", "8x8"]),
    "predict-missing-path-on-stdin": Case(["predict", "-", "-m", "{model}"], 1,
                                          ["{nowhere}.png"], stdin=b"{nowhere}.png\n"),
    "predict-unknown-format": Case(["predict", IMG, "-m", "{model}", "--format", "xml"], 2,
                                   ["--format", "xml"]),
    "predict-top-k-zero": Case(["predict", IMG, "-m", "{model}", "--top-k", "0"], 2, ["--top-k"]),
    "predict-threshold-above-1": Case(["predict", IMG, "-m", "{model}", "--threshold", "2"], 2,
                                      ["--threshold"]),
    "predict-threshold-multiclass": Case(["predict", IMG, "-m", "{model3}", "--threshold", "0.5"],
                                         2, ["--threshold", "3 classes"]),
    "predict-threshold-and-top-k": Case(["predict", IMG, "-m", "{model}", "--threshold", "0.5",
                                         "--top-k", "2"], 2, ["--threshold", "--top-k"]),
    "predict-min-confidence-negative": Case(["predict", IMG, "-m", "{model}", "--min-confidence",
                                             "-1"], 2, ["--min-confidence"]),
    "predict-unknown-option": Case(["predict", IMG, "-m", "{model}", "--size", "8x8"], 2,
                                   ["--size"]),
    # ------------------------------------------------------------ evaluate
    "evaluate-no-argument": Case(["evaluate", "-m", "{model}"], 2, ["Missing argument", "DATA"]),
    "evaluate-missing-data": Case(["evaluate", "{nowhere}", "-m", "{model}"], 2, ["{nowhere}"]),
    "evaluate-missing-model": Case(["evaluate", "{data}", "-m", "{nowhere}.npz"], 2,
                                   ["{nowhere}.npz"]),
    "evaluate-data-is-a-text-file": Case(["evaluate", "{notes}", "-m", "{model}"], 2, ["{notes}"]),
    "evaluate-data-is-a-model": Case(["evaluate", "{model}", "-m", "{model}"], 2, ["{model}"]),
    "evaluate-empty-folder": Case(["evaluate", "{empty}", "-m", "{model}"], 2,
                                  ["{empty}", "0 images"]),
    "evaluate-empty-feature-file": Case(["evaluate", "{empty_features}", "-m", "{model}"], 2,
                                        ["{empty_features}", "0 images"]),
    "evaluate-unknown-class": Case(["evaluate", "{three}", "-m", "{model}"], 2,
                                   ["{three}", "green"]),
    "evaluate-size-mismatch-feature-file": Case(["evaluate", "{features16}", "-m", "{model}"], 2,
                                                ["{features16}", "768 features", "8x8"]),
    "evaluate-unknown-format": Case(["evaluate", "{data}", "-m", "{model}", "--format", "xml"], 2,
                                    ["--format"]),
    "evaluate-misclassified-negative": Case(["evaluate", "{data}", "-m", "{model}",
                                             "--misclassified", "-1"], 2, ["--misclassified"]),
    "evaluate-strict-bad-image": Case(["evaluate", "{dirty}", "-m", "{model}", "--strict"], 2,
                                      ["broken.png"]),
    # ------------------------------------------------------------ inspect
    "inspect-missing-model": Case(["inspect", "{nowhere}.npz"], 2, ["{nowhere}.npz"]),
    "inspect-folder": Case(["inspect", "{data}"], 2, ["{data}", "directory"]),
    "inspect-text-file": Case(["inspect", "{notes}"], 2, ["{notes}", "not an .npz"]),
    "inspect-feature-file": Case(["inspect", "{features16}"], 2, ["{features16}", "feature file"]),
    "inspect-unknown-format": Case(["inspect", "{model}", "--format", "xml"], 2, ["--format"]),
    "inspect-extra-argument": Case(["inspect", "{model}", "more"], 2, ["more"]),
    "inspect-weights-png-in-missing-folder": Case(
        ["inspect", "{model}", "--weights-png", "{nowhere}/w.png"], 2,
        ["{nowhere}/w.png", "cannot write"]),
    # ------------------------------------------------------------ explain
    "explain-no-argument": Case(["explain", "-m", "{model}"], 2, ["Missing argument", "IMAGE"]),
    "explain-missing-image": Case(["explain", "{nowhere}.png", "-m", "{model}"], 2,
                                  ["{nowhere}.png", "no such file"]),
    "explain-unreadable-image": Case(["explain", "{bad}", "-m", "{model}"], 2, ["{bad}"]),
    "explain-folder": Case(["explain", "{data}", "-m", "{model}"], 2, ["{data}", "folder"]),
    "explain-empty-stdin": Case(["explain", "-", "-m", "{model}"], 2, ["-: "]),
    "explain-missing-model": Case(["explain", IMG, "-m", "{nowhere}.npz"], 2, ["{nowhere}.npz"]),
    "explain-unknown-class": Case(["explain", IMG, "-m", "{model3}", "--class", "zebra"], 2,
                                  ["--class", "zebra"]),
    "explain-unknown-format": Case(["explain", IMG, "-m", "{model}", "--format", "xml"], 2,
                                   ["--format"]),
    "explain-heat-map-in-missing-folder": Case(["explain", IMG, "-m", "{model}", "-o",
                                                "{nowhere}/h.png"], 2,
                                               ["{nowhere}/h.png", "cannot write"]),
    # ------------------------------------------------------------ flatten
    "flatten-no-output": Case(["flatten", "{data}"], 2, ["--output"]),
    "flatten-missing-data": Case(["flatten", "{nowhere}", "-o", "{out}"], 2, ["{nowhere}"]),
    "flatten-empty-folder": Case(["flatten", "{empty}", "-o", "{out}"], 2, ["{empty}", "0 images"]),
    "flatten-output-in-missing-folder": Case(["flatten", "{data}", "-o", "{nowhere}/f.npz",
                                              "--size", "8x8"], 2, ["{nowhere}/f.npz"]),
    "flatten-output-is-a-folder": Case(["flatten", "{data}", "-o", "{data}"], 2, ["--output"]),
    "flatten-bad-size": Case(["flatten", "{data}", "-o", "{out}", "--size", "eight"], 2,
                             ["--size", "eight"]),
    "flatten-strict-bad-image": Case(["flatten", "{dirty}", "-o", "{out}", "--size", "8x8",
                                      "--strict"], 2, ["broken.png"]),
    # ------------------------------------------------------------ check (issue 3)
    "check-missing-data": Case(["check", "{nowhere}"], 2, ["{nowhere}"]),
    "check-against-missing": Case(["check", "{data}", "--against", "{nowhere}"], 2,
                                  ["{nowhere}"]),
    "check-unknown-format": Case(["check", "{data}", "--format", "xml"], 2, ["--format"]),
    # ------------------------------------------------------------ files (issue 11)
    "train-feature-file-claims-more-rows": Case(
        ["train", "{short_features}", "-m", "{out}"], 2,
        ["{short_features}", "X.npy claims more bytes than the file holds"]),
    "train-val-feature-file-claims-more-rows": Case(
        ["train", "{data}", "-m", "{out}", "--size", "8x8", "--val", "{short_features_x_last}"],
        2, ["{short_features_x_last}", "X.npy claims more bytes than the file holds"]),
    "evaluate-feature-file-claims-more-rows": Case(
        ["evaluate", "{short_features_x_last}", "-m", "{model}"], 2,
        ["{short_features_x_last}", "X.npy claims more bytes than the file holds"]),
    "predict-feature-file-claims-more-rows": Case(
        ["predict", "{short_features}", "-m", "{model}"], 1,
        ["{short_features}", "X.npy claims more bytes than the file holds"]),
    "train-model-empty-path": Case(["train", "{data}", "-m", ""], 2, ["--model", "empty"]),
    "train-history-empty-path": Case(["train", "{data}", "-m", "{out}", "--history", ""], 2,
                                     ["--history", "empty"]),
    "train-plot-empty-path": Case(["train", "{data}", "-m", "{out}", "--plot", ""], 2,
                                  ["--plot", "empty"]),
    "flatten-output-empty-path": Case(["flatten", "{data}", "-o", ""], 2, ["--output", "empty"]),
    "inspect-weights-png-empty-path": Case(["inspect", "{model}", "--weights-png", ""], 2,
                                           ["--weights-png", "empty"]),
    "explain-output-empty-path": Case(["explain", IMG, "-m", "{model}", "-o", ""], 2,
                                      ["--output", "empty"]),
    "train-model-is-the-data": Case(["train", "{features8}", "-m", "{features8}"], 2,
                                    ["{features8}", "--model would replace the DATA"]),
    "train-history-is-the-data": Case(["train", "{features8}", "-m", "{out}", "--history",
                                       "{features8}"], 2,
                                      ["{features8}", "--history would replace the DATA"]),
    "train-model-is-the-val-data": Case(["train", "{data}", "--size", "8x8", "--val",
                                         "{features8}", "-m", "{features8}"], 2,
                                        ["{features8}", "--model would replace the --val"]),
    "train-history-is-the-init-model": Case(["train", "{data}", "--init", "{model}", "-m",
                                             "{out}", "--history", "{model}"], 2,
                                            ["{model}", "--history would replace the --init"]),
    "train-plot-is-an-image-of-the-data": Case(["train", "{data}", "-m", "{out}", "--plot", IMG],
                                               2, [IMG, "a file of the DATA folder"]),
    "predict-model-member-listed-twice": Case(["predict", IMG, "-m", "{model_twice}"], 2,
                                              ["{model_twice}", "weights.npy is listed more "
                                               "than once"]),
    "train-init-model-member-listed-twice": Case(
        ["train", "{data}", "-m", "{out}", "--init", "{model_twice}"], 2,
        ["{model_twice}", "weights.npy is listed more than once"]),
    "train-compare-lr-text": Case(["train", "{data}", "--compare-lr", "0.1,fast"], 2,
                                  ["--compare-lr", "0.1,fast"]),
    "train-compare-lr-zero": Case(["train", "{data}", "--compare-lr", "0.1,0"], 2,
                                  ["--compare-lr", "positive"]),
    "train-compare-lr-model-is-the-data": Case(
        ["train", "{rate_named}", "--compare-lr", "0.1", "-m", "{workspace}/f.npz"], 2,
        ["{rate_named}", "--compare-lr 0.1 would replace the DATA"]),
    "train-model-and-history-one-file": Case(["train", "{data}", "-m", "{out}", "--history",
                                              "{out}"], 2,
                                             ["{out}", "both --model and --history"]),
    "train-history-and-plot-one-file": Case(["train", "{data}", "-m", "{out}", "--history",
                                             "{workspace}/h.csv", "--plot",
                                             "{workspace}/./h.csv"], 2,
                                            ["both --history and --plot"]),
    "flatten-output-is-the-labels-file": Case(["flatten", "{labels}", "-o", "{labels}"], 2,
                                              ["{labels}", "--output would replace the DATA"]),
    "inspect-weights-png-is-the-model": Case(["inspect", "{model}", "--weights-png", "{model}"],
                                             2, ["{model}", "--weights-png would replace"]),
    "explain-output-is-the-image": Case(["explain", IMG, "-m", "{model}", "-o", IMG], 2,
                                        [IMG, "--output would replace the IMAGE"]),
    "explain-output-is-the-model": Case(["explain", IMG, "-m", "{model}", "-o", "{model}"], 2,
                                        ["{model}", "--output would replace the --model"]),
    # ------------------------------------------------------------ the group
    "unknown-command": Case(["learn", "{data}"], 2, ["learn"]),
    "unknown-global-option": Case(["--colour"], 2, ["--colour"]),
    # ------------------------------------------------------------ paths, stdin, optimizers
    "predict-model-name-too-long": Case(["predict", IMG, "-m", "{workspace}/" + "m" * 300], 2,
                                        ["cannot read (File name too long)"]),
    "train-model-name-too-long": Case(["train", "{data}", "--size", "8x8", "--epochs", "1",
                                       "-m", "{workspace}/" + "m" * 300], 2,
                                      ["cannot write (File name too long)"]),
    "predict-stdin-record-longer-than-any-path": Case(
        ["predict", "-m", "{model}", "-"], 1, ["longer than 4096 bytes is not a path"],
        stdin=b"x" * 100_000),
    "train-unknown-optimizer": Case(["train", "{data}", "--optimizer", "sgd"], 2,
                                    ["--optimizer", "sgd"]),
    "train-lbfgs-with-batch-size": Case(["train", "{data}", "--optimizer", "lbfgs",
                                         "--batch-size", "2", "-m", "{out}"], 2,
                                        ["--optimizer lbfgs", "--batch-size"]),
    "train-tol-nan": Case(["train", "{data}", "--optimizer", "lbfgs", "--tol", "nan"], 2,
                          ["--tol", "nan"]),
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Every file the table names, made once: {name: path}."""
    root = tmp_path_factory.mktemp("errors")
    places = {name: root / name for name in
              ["data", "three", "one", "empty", "emptyclasses", "dirty", "notes", "bad", "model",
               "model3", "features16", "one_features", "empty_features", "nowhere", "out"]}
    places.update(notes=root / "notes.txt", bad=root / "bad.png", model=root / "model.npz",
                  model3=root / "model3.npz", features16=root / "features16.npz",
                  one_features=root / "one.npz", empty_features=root / "empty.npz",
                  out=root / "out.npz")
    write_class_folders(places["data"], ["blue", "red"], 4)
    write_class_folders(places["three"], ["blue", "green", "red"], 2)
    write_class_folders(places["one"], ["red"], 3)
    write_class_folders(places["dirty"], ["blue", "red"], 2)
    (places["dirty"] / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    places["empty"].mkdir()
    (places["emptyclasses"] / "a").mkdir(parents=True)
    (places["emptyclasses"] / "b").mkdir()
    (places["emptyclasses"] / "b" / "notes.txt").write_text("no images here\n")
    places["notes"].write_text("just text\n")
    places["bad"].write_bytes(b"\x89PNG\r\n\x1a\n and then nothing of a PNG")
    train_model(places["data"], places["model"], epochs=5)
    train_model(places["three"], places["model3"], epochs=5)
    for source, target, size in (("data", "features16", "16x16"), ("one", "one_features", "8x8")):
        result = CliRunner().invoke(cli, ["flatten", str(places[source]), "-o",
                                          str(places[target]), "--size", size, "-q"])
        assert result.exit_code == 0, result.stderr
    np.savez(places["empty_features"], X=np.zeros((0, 192), np.uint8), y=np.zeros(0, np.int64),
             classes=np.array(["blue", "red"]), paths=np.zeros(0, dtype="<U1"),
             size=np.array([8, 8]), metadata=np.array("{}"))
    places["workspace"] = root
    places["features8"] = root / "features8.npz"
    result = CliRunner().invoke(cli, ["flatten", str(places["data"]), "-o",
                                      str(places["features8"]), "--size", "8x8", "-q"])
    assert result.exit_code == 0, result.stderr
    entries = stored_entries(places["model"])
    weights = [i for i, entry in enumerate(entries) if entry[0] == "weights.npy"]
    places["model_twice"] = root / "twice.npz"
    places["model_twice"].write_bytes(raw_zip(entries, listed=[*range(len(entries)), *weights]))
    places["rate_named"] = root / "f.lr0.1.npz"
    places["rate_named"].write_bytes(places["features8"].read_bytes())
    places["labels"] = root / "labels.csv"
    places["labels"].write_text("path,label\ndata/blue/000.png,blue\ndata/red/000.png,red\n")
    places["short_features"] = write_feature_file_claiming_rows(root / "short.npz", 40, 1000)
    places["short_features_x_last"] = write_feature_file_claiming_rows(
        root / "short_x_last.npz", 40, 1000, x_last=True)
    return places


def fill(text, places):
    return text.format(**{name: str(path) for name, path in places.items()})


def snapshot(root):
    """Every file and folder below root (hidden ones too) with its size and mtime."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            found[path] = (info.st_size, info.st_mtime_ns)
    return found


def assert_fails_cleanly(result, case, places):
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == case.exit_code, (result.exit_code, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == "" or result.stdout.endswith("\n")
    lines = result.stderr.splitlines()
    assert lines, "an error names its cause on stderr"
    if case.exit_code == 2:
        assert 1 <= len(lines) <= 2, result.stderr
        assert lines[0].startswith("Error: ")
    else:  # predict: one line per failed input, every other input still answered
        assert all(line.startswith("Error: ") for line in lines), result.stderr
    for word in case.words:
        assert fill(word, places) in result.stderr, (word, result.stderr)


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_path(workspace, name):
    case = CASES[name]
    root = workspace["data"].parent
    before = snapshot(root)

    args = [fill(arg, workspace) for arg in case.args]
    result = CliRunner().invoke(cli, args, input=fill(case.stdin.decode(), workspace).encode())

    assert_fails_cleanly(result, case, workspace)
    assert snapshot(root) == before, "a failed command created or changed a file"


def test_predict_still_answers_the_readable_inputs(workspace):
    """Exit 1 with one good input among bad ones: its line is on stdout, whole."""
    image = fill(IMG, workspace)
    result = CliRunner().invoke(cli, ["predict", image, str(workspace["bad"]),
                                      "-m", str(workspace["model"])])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{image}\tblue\t") or result.stdout.startswith(f"{image}\tred\t")
    assert result.stdout.count("\n") == 1 and result.stdout.endswith("\n")


def test_running_out_of_memory_is_one_line(workspace, monkeypatch):
    from logreg_cli import dataset

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(dataset, "load_data", exhausted)
    result = CliRunner().invoke(cli, ["evaluate", str(workspace["data"]), "-m",
                                      str(workspace["model"])])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (f"Error: {workspace['data']}: not enough memory (try a smaller "
                             "--size, fewer images or --jobs 1)\n")


def test_bare_logreg_prints_the_help_not_an_error():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: ")
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
    assert "train" in result.stderr and "predict" in result.stderr


@pytest.mark.parametrize("name", ["train-missing-data", "predict-some-unreadable",
                                  "inspect-text-file", "train-unknown-option"])
def test_error_paths_of_the_real_program(workspace, name):
    """The same through `python -m logreg_cli` in a process: exit status and streams as a
    shell sees them."""
    case = CASES[name]
    completed = subprocess.run(logreg_command(*[fill(a, workspace) for a in case.args]),
                               input=case.stdin, capture_output=True, env=subprocess_env(),
                               timeout=60)
    assert completed.returncode == case.exit_code, completed.stderr
    stderr = completed.stderr.decode()
    assert "Traceback" not in stderr
    for word in case.words:
        assert fill(word, workspace) in stderr
    assert completed.stdout in (b"",) or completed.stdout.endswith(b"\n")
