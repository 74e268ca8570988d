"""logreg predict as a shell tool: real pipes, streaming, stdin, formats, errors."""

import csv
import io
import json
import os
import select
import subprocess
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.errors import LogregError
from logreg_cli.predicting import (Decoded, decide, decode_in_order, expand_inputs, sniff,
                                   stdin_inputs)
from tiny_models import (draw_image, logreg_command, subprocess_env, train_model,
                         write_class_folders)

TIMEOUT = 60


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    root = tmp_path_factory.mktemp("binary")
    paths = write_class_folders(root / "data", ["blue", "red"], 6)
    model = train_model(root / "data", root / "model.npz")
    return model, paths


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    paths = write_class_folders(root / "data", ["blue", "green", "red"], 4, seed=1)
    model = train_model(root / "data", root / "model.npz")
    return model, paths


def run(*args, input=None):
    """`logreg predict ARGS`; its exit 1 (some inputs failed) must never be a crash."""
    result = CliRunner().invoke(cli, ["predict", *map(str, args)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def jsonl(model, *inputs):
    result = run("-m", model, "--format", "jsonl", *inputs)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def read_line(stream, timeout=TIMEOUT):
    """One line from a pipe, failing if it does not arrive within timeout seconds."""
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(remaining, 0))
        if not ready:
            raise AssertionError(f"no result within {timeout} s; got {line!r} so far")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            break
        line += byte
    return line.decode()


# ---------------------------------------------------------------- pipelines (real pipes)


def test_slow_producer_sees_each_result_before_sending_the_next_path(binary):
    model, paths = binary
    process = subprocess.Popen(logreg_command("predict", "-m", model, "-j", "2", "-"),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=subprocess_env())
    try:
        for path in paths[:3]:
            process.stdin.write(f"{path}\n".encode())
            process.stdin.flush()
            line = read_line(process.stdout)
            name, label, probability = line.rstrip("\n").split("\t")
            assert name == str(path)
            assert label == path.parent.name
            assert 0.5 <= float(probability) <= 1.0
        process.stdin.close()
        assert process.stdout.read() == b""
        assert process.wait(TIMEOUT) == 0
        assert process.stderr.read() == b""
    finally:
        process.kill()
        process.wait()


def test_nul_separated_paths_keep_newlines_in_file_names(binary, tmp_path):
    model, paths = binary
    odd = tmp_path / "line\nbreak and space.png"
    odd.write_bytes(paths[0].read_bytes())
    listing = b"\0".join(os.fsencode(p) for p in [odd, paths[-1]]) + b"\0"
    done = subprocess.run(logreg_command("predict", "-m", model, "-0", "-", "--format", "jsonl"),
                          input=listing, capture_output=True, env=subprocess_env(),
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["path"] for r in records] == [str(odd), str(paths[-1])]
    assert [r["label"] for r in records] == ["blue", "red"]


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF"])
def test_image_bytes_on_stdin_are_classified(binary, tmp_path, image_format):
    model, paths = binary
    buffer = io.BytesIO()
    lossless = {"lossless": True} if image_format == "WEBP" else {}
    Image.open(paths[-1]).convert("RGB").save(buffer, image_format, **lossless)
    done = subprocess.run(logreg_command("predict", "-m", model, "-"), input=buffer.getvalue(),
                          capture_output=True, env=subprocess_env(), timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    name, label, probability = done.stdout.decode().rstrip("\n").split("\t")
    assert name == "-"
    assert 0.0 < float(probability) <= 1.0
    if image_format in ("PNG", "BMP", "TIFF", "WEBP"):  # lossless: same pixels as the file
        expected = jsonl(model, paths[-1])[0]
        assert label == expected["label"]
        assert float(probability) == pytest.approx(expected["probability"], abs=1e-6)


def test_closed_pipe_ends_quietly(binary):
    model, paths = binary
    predict = " ".join(f"'{part}'" for part in logreg_command("predict", "-m", model, "-"))
    script = (f"{{ echo '{paths[0]}'; sleep 1; echo '{paths[1]}'; sleep 1; echo '{paths[2]}'; }}"
              f" | {predict} | head -1; echo \"status ${{PIPESTATUS[1]}}\" >&2")
    done = subprocess.run(["bash", "-c", script], capture_output=True, env=subprocess_env(),
                          timeout=TIMEOUT)
    assert done.stdout.decode().count("\n") == 1
    assert done.stdout.decode().startswith(f"{paths[0]}\t")
    assert "Traceback" not in done.stderr.decode()
    assert done.stderr.decode().strip() == "status 1"


def test_missing_file_among_good_ones(binary, tmp_path):
    model, paths = binary
    missing = tmp_path / "missing.png"
    done = subprocess.run(logreg_command("predict", "-m", model, paths[0], missing, paths[-1]),
                          capture_output=True, env=subprocess_env(), timeout=TIMEOUT)
    assert done.returncode == 1
    assert [line.split("\t")[0] for line in done.stdout.decode().splitlines()] == [
        str(paths[0]), str(paths[-1])]
    assert done.stderr.decode().splitlines() == [f"Error: {missing}: no such file"]


# ---------------------------------------------------------------- formats


def test_tsv_csv_and_jsonl_agree_and_parse_back(multiclass):
    model, paths = multiclass
    folder = paths[0].parents[1]
    tsv = run("-m", model, folder)
    rows = [line.split("\t") for line in tsv.stdout.splitlines()]
    table = list(csv.DictReader(io.StringIO(run("-m", model, folder, "--format", "csv").stdout)))
    records = jsonl(model, folder)
    assert [r[0] for r in rows] == [t["path"] for t in table] == [r["path"] for r in records] == [
        str(p) for p in paths]
    for row, line, record in zip(rows, table, records):
        assert sum(record["probabilities"].values()) == pytest.approx(1.0)
        best = max(record["probabilities"], key=record["probabilities"].get)
        assert row[1] == line["label"] == record["label"] == best
        assert float(row[2]) == float(line["probability"]) == pytest.approx(
            record["probability"], abs=5e-7)
    assert [r["label"] for r in records] == [p.parent.name for p in paths]


def test_top_k_lists_classes_by_falling_probability(multiclass):
    model, paths = multiclass
    result = run("-m", model, "--top-k", "3", "--format", "csv", paths[0])
    (line,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(line) == ["path", "label", "probability", "label_2", "probability_2",
                          "label_3", "probability_3"]
    assert {line["label"], line["label_2"], line["label_3"]} == {"blue", "green", "red"}
    assert float(line["probability"]) >= float(line["probability_2"]) >= float(
        line["probability_3"])
    (record,) = jsonl(model, "--top-k", "2", paths[0])
    assert [t["label"] for t in record["top"]] == [line["label"], line["label_2"]]


def test_all_probabilities_and_a_header_even_without_rows(multiclass, tmp_path):
    model, paths = multiclass
    result = run("-m", model, "--format", "csv", "--all-probabilities", paths[0])
    (line,) = list(csv.DictReader(io.StringIO(result.stdout)))
    (record,) = jsonl(model, paths[0])
    for name in ("blue", "green", "red"):
        assert float(line[f"p_{name}"]) == pytest.approx(record["probabilities"][name], abs=5e-7)
    empty = run("-m", model, "--format", "csv", tmp_path / "missing.png")
    assert (empty.exit_code, empty.stdout) == (1, "path,label,probability\n")


def test_threshold_picks_the_positive_class_by_its_probability(binary):
    model, paths = binary
    folder = paths[0].parents[1]
    records = jsonl(model, folder)
    positive = [r["probabilities"]["red"] for r in records]
    threshold = float(np.median(positive))
    labelled = jsonl(model, "--threshold", str(threshold), folder)
    for p_red, record in zip(positive, labelled):
        assert record["label"] == ("red" if p_red >= threshold else "blue")
        assert record["probability"] == pytest.approx(record["probabilities"][record["label"]])
    assert {r["label"] for r in labelled} == {"blue", "red"}
    assert {r["label"] for r in jsonl(model, "--threshold", "0", folder)} == {"red"}


def test_threshold_on_a_multiclass_model_is_an_error(multiclass):
    model, paths = multiclass
    result = run("-m", model, "--threshold", "0.5", paths[0])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("Error: --threshold needs a binary model; this one has 3 classes "
                             "(blue, green, red)\n")


def test_min_confidence_prints_unknown_below_it(multiclass):
    model, paths = multiclass
    folder = paths[0].parents[1]
    records = jsonl(model, folder)
    cut = float(np.median([r["probability"] for r in records]))
    rows = [line.split("\t") for line in run("-m", model, "--min-confidence", str(cut),
                                            folder).stdout.splitlines()]
    for record, row in zip(records, rows):
        assert row[1] == (record["label"] if record["probability"] >= cut else "unknown")
    assert 0 < sum(row[1] == "unknown" for row in rows) < len(rows)


def test_no_path_for_a_single_image(binary):
    model, paths = binary
    result = run("-m", model, "--no-path", paths[-1])
    label, probability = result.stdout.rstrip("\n").split("\t")
    assert (result.exit_code, label) == (0, "red")
    assert float(probability) > 0.5


def test_feature_files_predict_like_their_images(binary, tmp_path):
    model, paths = binary
    folder = paths[0].parents[1]
    features = tmp_path / "features.npz"
    flat = CliRunner().invoke(cli, ["flatten", str(folder), "-o", str(features), "--size", "8x8",
                                    "-q"])
    assert flat.exit_code == 0, flat.stderr
    assert jsonl(model, features) == jsonl(model, folder)


def test_feature_file_of_another_size_fails_named_and_the_rest_go_on(binary, tmp_path):
    model, paths = binary
    features = tmp_path / "big.npz"
    CliRunner().invoke(cli, ["flatten", str(paths[0].parents[1]), "-o", str(features),
                             "--size", "4x4", "-q"])
    result = run("-m", model, paths[0], features)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{paths[0]}\t")
    assert "has 48 features but the model expects 192 (trained at --size 8x8)" in result.stderr


def test_verbose_notes_an_image_far_from_the_models_aspect(binary, tmp_path):
    model, _ = binary
    wide = draw_image(tmp_path / "wide.png", 0, np.random.default_rng(3), size=(40, 8))
    quiet = run("-m", model, wide)
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    noisy = run("-m", model, "-v", wide)
    assert noisy.stdout == quiet.stdout
    assert noisy.stderr == (f"Note: {wide}: aspect 40x8 is far from the model's 8x8; "
                            "it was stretched to fit\n")


def test_nul_bytes_in_line_mode_get_a_hint(binary):
    model, paths = binary
    result = run("-m", model, "-", input=f"{paths[0]}\0{paths[1]}\0")
    assert result.exit_code == 1
    assert "use: logreg predict -0 -" in result.stderr


# ---------------------------------------------------------------- the parts


def test_sniff_tells_images_from_path_lists():
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "image"
    assert sniff(b"\x89PN") == "maybe"
    assert sniff(b"BMW.jpg\n") == "paths"
    assert sniff(b"BM\x36\x00\x0c\x00\x00\x00\x00\x00") == "image"
    assert sniff(b"RIFF\x10\x00\x00\x00WAVE") == "paths"
    assert sniff(b"photos/a.png\n") == "paths"


class Dribble(io.RawIOBase):
    """A stdin that hands out its chunks one read at a time, like a slow pipe."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.chunks:
            return 0
        chunk = self.chunks.pop(0)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_stdin_paths_are_split_across_reads():
    stream = io.BufferedReader(Dribble([b"a.p", b"ng\nb.png\r\n", b"\n", b"c.png"]))
    assert list(stdin_inputs(stream)) == ["a.png", "b.png", "c.png"]


def test_results_are_not_held_back_by_a_blocked_input():
    """The first result arrives while the input iterator is still waiting for a line."""
    release = threading.Event()

    def items():
        yield Decoded("first", row=np.zeros(3, dtype=np.uint8))
        release.wait(TIMEOUT)
        yield Decoded("second", row=np.zeros(3, dtype=np.uint8))

    results = decode_in_order(items(), (1, 1), jobs=4)
    unblock = threading.Timer(2.0, release.set)  # a loader that waits for every input gets
    unblock.start()                               # its first result only after this
    try:
        first = next(results)
        arrived_while_blocked = not release.is_set()
        release.set()
        rest = [d.name for d in results]
    finally:
        unblock.cancel()
        release.set()
    assert first.name == "first" and arrived_while_blocked
    assert rest == ["second"]


def test_decoding_keeps_input_order_and_names_failures(binary, tmp_path):
    _, paths = binary
    order = [str(p) for p in paths] + [str(tmp_path / "gone.png")]
    decoded = list(decode_in_order(expand_inputs(order), (8, 8), jobs=3))
    assert [d.name for d in decoded] == order
    assert all(d.row is not None and d.row.shape == (192,) for d in decoded[:-1])
    assert str(decoded[-1].error) == f"{tmp_path / 'gone.png'}: no such file"


def test_an_input_error_reaches_the_caller():
    def items():
        yield Decoded("ok", row=np.zeros(3, dtype=np.uint8))
        raise LogregError("stdin: cannot read")

    results = decode_in_order(items(), (1, 1), jobs=1)
    assert next(results).name == "ok"
    with pytest.raises(LogregError, match="stdin: cannot read"):
        next(results)


def test_decide_binary_threshold_and_unknown():
    classes = ["cat", "dog"]
    proba = np.array([0.3, 0.7])
    assert decide(proba, classes).label == "dog"
    assert decide(proba, classes, threshold=0.8).label == "cat"
    assert decide(proba, classes, threshold=0.8).probability == pytest.approx(0.3)
    assert decide(proba, classes, min_confidence=0.75).label == "unknown"
    assert decide(proba, classes, top_k=2).ranked == [("cat", pytest.approx(0.3))]


def test_verbose_note_uses_the_exif_turned_size(binary, tmp_path):
    model, _ = binary
    tall = tmp_path / "turned.jpg"
    pixels = np.random.default_rng(4).integers(0, 256, size=(40, 8, 3)).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 8 wide x 40 high, shown turned a quarter: 40 x 8
    Image.fromarray(pixels).save(tall, exif=exif)
    result = run("-m", model, "-v", tall)
    assert result.stderr == (f"Note: {tall}: aspect 40x8 is far from the model's 8x8; "
                             "it was stretched to fit\n")
