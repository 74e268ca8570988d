"""Issue 10/11, "folders": text from other systems and inputs that cannot be looked up.

Every command that reads a labels file or a list of paths: a byte-order mark and CRLF line
ends are accepted; a labels-file cell over csv's field limit is one line naming the file and
line; one predict input that cannot even be looked up fails alone (exit 1), the rest go on.
"""

import os
import subprocess

import pytest
from click.testing import CliRunner

from logreg_cli.cli import cli
from tiny_models import logreg_command, subprocess_env, train_model, write_class_folders

BOM = b"\xef\xbb\xbf"
TOO_LONG_NAME = "a" * 300 + ".png"  # over the 255 bytes a file name may have


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    paths = write_class_folders(root / "data", ["blue", "red"], 3)
    model = train_model(root / "data", root / "model.npz", epochs=5)
    return root, model, paths


def run(*args, input=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result


def predicted_paths(result):
    return [line.split("\t")[0] for line in result.stdout.splitlines()]


# ---------------------------------------------------------------- BOM and CRLF on stdin


@pytest.mark.parametrize("separator, flag", [(b"\r\n", []), (b"\n", []), (b"\0", ["-0"]),
                                             (b"\r\n", ["--format", "jsonl"])],
                         ids=["crlf", "lf", "nul", "crlf-jsonl"])
def test_a_bom_before_the_first_path_on_stdin_is_not_part_of_it(trained, separator, flag):
    root, model, paths = trained
    names = [str(path) for path in paths]
    listing = BOM + separator.join(os.fsencode(name) for name in names) + separator
    result = run("predict", "-m", model, *flag, "-", input=listing)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    if "jsonl" in flag:
        assert [line.split('"')[3] for line in result.stdout.splitlines()] == names
    else:
        assert predicted_paths(result) == names


def test_nul_separated_list_saved_with_a_final_crlf(trained):
    """An editor adds a line end after the last NUL: it is no file name."""
    root, model, paths = trained
    listing = BOM + b"\0".join(os.fsencode(str(path)) for path in paths) + b"\0\r\n"
    result = run("predict", "-m", model, "-0", "-", input=listing)
    assert (result.exit_code, result.stderr) == (0, "")
    assert predicted_paths(result) == [str(path) for path in paths]


def test_bom_arriving_one_byte_at_a_time_is_still_dropped(trained):
    """A slow producer may deliver the BOM's three bytes in separate reads."""
    from logreg_cli.predicting import stdin_inputs

    class Trickle:
        def __init__(self, data):
            self.data = data

        def read(self, _size):
            chunk, self.data = self.data[:1], self.data[1:]
            return chunk

    assert list(stdin_inputs(Trickle(BOM + b"a.png\r\nb.png\r\n"))) == ["a.png", "b.png"]


# ---------------------------------------------------------------- labels file: csv's limits


@pytest.mark.parametrize("command", ["train", "flatten", "evaluate", "check"])
def test_a_labels_cell_over_the_csv_field_limit_is_one_line(trained, tmp_path, command):
    root, model, paths = trained
    listing = tmp_path / "labels.csv"
    listing.write_text(f"path,label\n{paths[0]},blue\n{paths[-1]},{'r' * 131073}\n")
    args = {"train": ["-m", tmp_path / "m.npz"], "flatten": ["-o", tmp_path / "f.npz"],
            "evaluate": ["-m", model], "check": []}[command]
    result = run(command, listing, *args)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {listing}, line 3: a cell is longer than 131072 "
                             "characters\n")
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "f.npz").exists()


def test_a_labels_file_with_a_nul_byte_names_its_line(tmp_path):
    listing = tmp_path / "labels.tsv"
    listing.write_bytes(BOM + b"path\tlabel\r\na.png\tcat\r\nb\0.png\tdog\r\n")
    result = run("train", listing, "-m", tmp_path / "m.npz")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {listing}, line 3: holds a NUL byte (a damaged or binary file)\n"


# ---------------------------------------------------------------- per-input lookup failures


def lookup_failures(root, paths):
    """Inputs that fail while being looked up, each with the cause predict must print."""
    blocked = root / "blocked"
    return {
        "name-too-long": (str(root / TOO_LONG_NAME), "file name too long"),
        "file-as-folder": (f"{paths[0]}/x.png", "not a directory"),
        "link-loop": (f"{root / 'loop'}/x.png", "too many levels of symbolic links"),
        "locked-folder": (str(blocked / "x.png"), "permission denied"),
    }


@pytest.fixture
def failing_inputs(trained):
    root, model, paths = trained
    if not (root / "loop").is_symlink():
        os.symlink("loop", root / "loop")
    (root / "blocked").mkdir(exist_ok=True)
    (root / "blocked").chmod(0)
    yield lookup_failures(root, paths)
    (root / "blocked").chmod(0o755)


@pytest.mark.parametrize("kind", ["name-too-long", "file-as-folder", "link-loop",
                                  "locked-folder"])
@pytest.mark.parametrize("how", ["argument", "stdin", "stdin-nul"])
def test_an_input_that_cannot_be_looked_up_fails_alone(trained, failing_inputs, kind, how):
    root, model, paths = trained
    bad, cause = failing_inputs[kind]
    if kind == "locked-folder" and os.geteuid() == 0:
        pytest.skip("root reads any folder")
    inputs = [str(paths[0]), bad, str(paths[-1])]
    if how == "argument":
        result = run("predict", "-m", model, *inputs)
    else:
        separator = "\0" if how == "stdin-nul" else "\n"
        flags = ["-0"] if how == "stdin-nul" else []
        result = run("predict", "-m", model, *flags, "-", input=separator.join(inputs) + separator)
    assert result.exit_code == 1, result.stderr
    assert result.stderr == f"Error: {bad}: {cause}\n"
    assert predicted_paths(result) == [str(paths[0]), str(paths[-1])]


@pytest.mark.parametrize("separator", [b"\n", b"\0"], ids=["lines", "nul"])
def test_random_bytes_piped_into_predict_fail_per_line(trained, separator):
    """A real pipe (no PYTHONUNBUFFERED): binary junk records fail one by one, then the good
    path is still answered; exit 1, no traceback."""
    root, model, paths = trained
    junk = bytes(range(128, 256)) * 3  # one 384-byte record: no image signature, not UTF-8
    listing = separator.join([junk, b"\xff" * 20, os.fsencode(str(paths[0]))]) + separator
    flags = ["-0"] if separator == b"\0" else []
    completed = subprocess.run(logreg_command("predict", "-m", model, *flags, "-"),
                               input=listing, capture_output=True, env=subprocess_env(),
                               timeout=60)
    stderr = completed.stderr.decode("utf-8", "replace")
    assert completed.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [  # each byte that is not UTF-8 shown as \xNN
        "Error: " + "".join(f"\\x{byte:02x}" for byte in junk) + ": file name too long",
        "Error: " + "\\xff" * 20 + ": no such file"]
    assert completed.stdout.decode().split("\t")[0] == str(paths[0])


@pytest.mark.parametrize("kind", ["name-too-long", "link-loop"])
@pytest.mark.parametrize("command", ["train", "flatten", "evaluate", "check", "train --val"])
def test_a_data_path_that_cannot_be_looked_up_is_one_line(trained, tmp_path, kind, command):
    """DATA (or --val DATA) that cannot even be looked up stops the command (exit 2) with one
    line naming it and the cause, never a traceback."""
    root, model, paths = trained
    os.symlink("loop", tmp_path / "loop")
    bad, cause = {"name-too-long": (tmp_path / TOO_LONG_NAME, "file name too long"),
                  "link-loop": (tmp_path / "loop" / "x", "too many levels of symbolic links")}[kind]
    out = tmp_path / "out.npz"
    args = {"train": [bad, "-m", out], "flatten": [bad, "-o", out], "check": [bad],
            "evaluate": [bad, "-m", model],
            "train --val": [root / "data", "--val", bad, "-m", out, "--size", "8x8"]}[command]
    result = run(command.split()[0], *args)
    assert result.exit_code == 2
    prefix = "--val " if "--val" in command else ""
    assert result.stderr == f"Error: {prefix}{bad}: {cause}\n"
    assert not out.exists()


def test_a_permission_error_on_lookup_fails_that_input_only(trained, monkeypatch):
    """EACCES cannot be provoked as root, so os.stat refuses one path here."""
    from logreg_cli.predicting import Decoded, expand_inputs

    root, model, paths = trained
    locked = str(root / "locked" / "x.png")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    items = list(expand_inputs([str(paths[0]), locked, str(paths[-1])]))
    assert items[0] == (str(paths[0]), str(paths[0]))
    assert isinstance(items[1], Decoded) and str(items[1].error) == f"{locked}: permission denied"
    assert items[2] == (str(paths[-1]), str(paths[-1]))


# ---------------------------------------------------------------- endless records on stdin


@pytest.mark.parametrize("separator", [b"\n", b"\0"], ids=["lines", "nul"])
def test_a_record_longer_than_any_path_fails_alone_and_is_not_held_in_memory(separator):
    """`predict - < /dev/zero` held the whole endless line in memory (and split it again at
    each read). A record past PATH_MAX is reported from its first bytes, as soon as it is that
    long, its rest is skipped, and the records after it are still read."""
    from logreg_cli.predicting import MAX_RECORD_BYTES, Decoded, split_records

    filler = b"\x01" if separator == b"\0" else b"\0"  # never the separator
    chunks = [filler * 65536] * 128 + [separator + b"after.png" + separator]  # 8 MB, then a path
    read = iter(chunks)
    taken = []

    def read_some():
        chunk = next(read, b"")
        taken.append(len(chunk))
        return chunk

    records = split_records(b"", read_some, nul_separated=separator == b"\0")
    first = next(records)
    assert isinstance(first, Decoded) and sum(taken) < 2 * 65536
    assert str(first.error).endswith(f"an input record longer than {MAX_RECORD_BYTES} bytes "
                                     "is not a path")
    assert list(records) == ["after.png"]


def test_an_endless_line_then_a_path_through_predict(trained):
    root, model, paths = trained
    listing = b"x" * 100_000 + b"\n" + os.fsencode(str(paths[0])) + b"\n"
    result = run("predict", "-m", model, "-", input=listing)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: " + "x" * 40 + "...: an input record longer than 4096 bytes is not a path"]
    assert predicted_paths(result) == [str(paths[0])]
