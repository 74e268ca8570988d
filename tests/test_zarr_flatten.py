"""`logreg flatten DATA -o features.zarr` and the commands that read a store like an .npz:
train, evaluate, predict and check give what they give on the .npz of the same images."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

zarr = pytest.importorskip("zarr", reason="the dask extra (zarr 3) is not installed")

from logreg_cli import images, zarrstore  # noqa: E402
from logreg_cli.cli import cli  # noqa: E402

SIZE = ["--size", "8x8"]
TRAIN = ["--epochs", "25", "--lr", "0.5", "-q"]


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_user_error(result, line):
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {line}\n")


@pytest.fixture
def damaged(make_image_folder):
    """Classes a, b, c (4 images each) plus one undecodable a/bad.png and a stray b/notes.txt."""
    root = make_image_folder({"a": 4, "b": 4, "c": 4})
    (root / "a" / "002bad.png").write_bytes(b"not a png at all")
    (root / "b" / "notes.txt").write_text("hello")
    return root


def flatten_both(data, tmp_path, *options):
    """flatten data to an .npz and to a store: (npz path, store path, npz run, store run)."""
    npz, store = tmp_path / "f.npz", tmp_path / "f.zarr"
    by_npz = run("flatten", data, "-o", npz, *SIZE, *options)
    by_store = run("flatten", data, "-o", store, *SIZE, *options)
    return npz, store, by_npz, by_store


def test_flatten_store_holds_what_the_npz_holds_plus_the_invalid_rows(damaged, tmp_path):
    npz, store, by_npz, by_store = flatten_both(damaged, tmp_path)
    assert (by_npz.exit_code, by_store.exit_code) == (0, 0)
    # the same warnings, in path order, and the same counts
    assert by_store.stderr.replace("f.zarr", "f.npz") == by_npz.stderr
    assert "002bad.png: " in by_store.stderr and "notes.txt: " in by_store.stderr
    opened = zarrstore.open_store(store)
    with np.load(npz) as arrays:
        listed = sorted(str(p) for p in damaged.glob("*/*.png"))
        assert opened.paths == listed and opened.valid.tolist() == [
            not p.endswith("002bad.png") for p in listed]
        valid = opened.valid
        assert np.array_equal(opened.rows(0, opened.m)[valid], arrays["X"])
        assert not opened.rows(0, opened.m)[~valid].any()  # the bad image's row is zeros
        assert np.array_equal(opened.y[valid], arrays["y"])
        assert opened.classes == arrays["classes"].tolist()
        assert [p for p, keep in zip(opened.paths, valid) if keep] == arrays["paths"].tolist()
        npz_info = json.loads(str(arrays["metadata"]))
    for key in ("format", "format_version", "images", "size", "class_counts", "source",
                "skipped", "logreg_version"):
        assert opened.metadata[key] == npz_info[key], key


def test_flatten_store_decodes_one_chunk_at_a_time(damaged, tmp_path, monkeypatch):
    monkeypatch.setattr(zarrstore, "CHUNK_BYTES", 5 * 8 * 8 * 3)  # chunks of 5 rows
    decoded = []
    load_images = images.load_images
    monkeypatch.setattr(images, "load_images",
                        lambda paths, *a, **k: decoded.append(len(paths)) or
                        load_images(paths, *a, **k))
    assert run("flatten", damaged, "-o", tmp_path / "f.zarr", *SIZE).exit_code == 0
    assert decoded == [5, 5, 3]  # 13 files, never more than one chunk held
    X = zarr.open_group(str(tmp_path / "f.zarr"), mode="r")["X"]
    assert X.chunks == (5, 192)


@pytest.mark.parametrize("options", [
    [],                                                    # full batch, in memory
    ["--stream"],                                          # X streamed from the store
    ["--batch-size", "4", "--val-split", "0.25", "--seed", "3"],
    ["--stream", "--batch-size", "5", "--early-stop", "3", "--val-split", "0.3"],
    ["--standardize", "--l2", "0.1"],
])
def test_store_and_npz_of_the_same_images_train_the_same_model(damaged, tmp_path, options):
    npz, store, *_ = flatten_both(damaged, tmp_path)
    models = []
    for data, name in ((npz, "a.npz"), (store, "b.npz"),
                       (f"file://{store}", "c.npz")):  # the URL form too
        result = run("train", data, "-m", tmp_path / name, *TRAIN, *options)
        assert result.exit_code == 0, result.stderr
        models.append(np.load(tmp_path / name))
    for other in models[1:]:
        for key in ("weights", "bias", "classes", "history"):
            assert np.array_equal(other[key], models[0][key]), key


def test_store_evaluates_predicts_and_checks_as_the_npz(damaged, tmp_path):
    npz, store, *_ = flatten_both(damaged, tmp_path)
    model = tmp_path / "m.npz"
    assert run("train", npz, "-m", model, *TRAIN).exit_code == 0
    for command in (["evaluate", "--format", "json"], ["predict", "--format", "jsonl"],
                    ["check", "--format", "json"]):
        extra = ["-m", model] if command[0] != "check" else []
        by_npz = run(*command[:1], npz, *extra, *command[1:])
        by_store = run(*command[:1], store, *extra, *command[1:])
        by_url = run(*command[:1], f"file://{store}", *extra, *command[1:])
        assert by_npz.exit_code == 0, by_npz.stderr
        expected = by_npz.stdout.replace(str(npz), "DATA")
        assert by_store.stdout.replace(str(store), "DATA") == expected, command
        assert by_url.stdout.replace(f"file://{store}", "DATA") == expected, command
        assert (by_store.exit_code, by_url.exit_code) == (0, 0)


def test_npz_to_store_to_npz_keeps_every_array(damaged, tmp_path):
    npz = tmp_path / "f.npz"
    assert run("flatten", damaged, "-o", npz, *SIZE).exit_code == 0
    result = run("flatten", npz, "-o", tmp_path / "c.zarr")
    assert (result.exit_code, result.stderr) == (0, f"wrote 12 images x 192 features to "
                                                    f"{tmp_path / 'c.zarr'}\n")
    assert run("flatten", tmp_path / "c.zarr", "-o", tmp_path / "back.npz").exit_code == 0
    with np.load(npz) as before, np.load(tmp_path / "back.npz") as after:
        for key in ("X", "y", "classes", "paths", "size"):
            assert np.array_equal(before[key], after[key]), key
    info = zarrstore.open_store(tmp_path / "c.zarr").metadata
    assert info["source"] == str(damaged) and info["converted_from"] == str(npz)


def test_a_class_with_no_readable_image_is_left_out_as_for_an_npz(make_image_folder, tmp_path):
    root = make_image_folder({"a": 3, "b": 2, "c": 3})
    for path in (root / "b").iterdir():
        path.write_bytes(b"broken")
    npz, store, by_npz, by_store = flatten_both(root, tmp_path)
    assert by_store.exit_code == 0 and "class 'b'" in by_store.stderr
    assert by_store.stderr.replace("f.zarr", "f.npz") == by_npz.stderr
    opened = zarrstore.open_store(store)
    assert opened.classes == ["a", "c"]
    assert opened.y.tolist() == [0, 0, 0, -1, -1, 1, 1, 1]  # b's rows: no label, not valid
    with np.load(npz) as arrays:
        assert np.array_equal(opened.y[opened.valid], arrays["y"])


def test_strict_stops_at_the_first_bad_image_and_leaves_no_store(damaged, tmp_path):
    store = tmp_path / "f.zarr"
    assert run("flatten", damaged, "-o", store, *SIZE).exit_code == 0
    before = zarrstore.open_store(store).rows(0, 3)
    (damaged / "b" / "notes.txt").unlink()
    result = run("flatten", damaged, "-o", store, *SIZE, "--strict")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")
    assert "002bad.png" in result.stderr and len(result.stderr.splitlines()) == 1
    # the old store is untouched and nothing else is left beside it
    assert np.array_equal(zarrstore.open_store(store).rows(0, 3), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "f.zarr"]


def test_an_existing_store_is_replaced_by_the_new_one(make_image_folder, tmp_path):
    first, second = make_image_folder({"a": 2, "b": 2}, name="one"), \
        make_image_folder({"x": 3, "y": 3}, name="two")
    store = tmp_path / "f.zarr"
    assert run("flatten", first, "-o", store, *SIZE).exit_code == 0
    assert run("flatten", second, "-o", store, *SIZE).exit_code == 0
    assert zarrstore.open_store(store).classes == ["x", "y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr", "one", "two"]


def test_a_folder_or_file_that_is_not_a_store_is_never_replaced(damaged, tmp_path):
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert_user_error(run("flatten", damaged, "-o", folder, *SIZE),
                      f"{folder}: exists and is a folder, not a Zarr store; not replaced "
                      "(remove it or write elsewhere)")
    assert (folder / "keep.txt").read_text() == "mine"
    (tmp_path / "file.zarr").write_text("x")
    assert_user_error(run("flatten", damaged, "-o", tmp_path / "file.zarr", *SIZE),
                      f"{tmp_path / 'file.zarr'}: exists and is a file, not a Zarr store; "
                      "not replaced (remove it or write elsewhere)")
    write_store_link = tmp_path / "link.zarr"
    assert run("flatten", damaged, "-o", tmp_path / "real.zarr", *SIZE).exit_code == 0
    write_store_link.symlink_to(tmp_path / "real.zarr")
    assert_user_error(run("flatten", damaged, "-o", write_store_link, *SIZE),
                      f"{write_store_link}: exists and is a symlink; not replaced (remove it "
                      "or write elsewhere)")
    assert write_store_link.is_symlink() and zarrstore.open_store(write_store_link).m == 13
    assert_user_error(run("flatten", tmp_path / "nowhere", "-o", tmp_path / "f.zarr"),
                      f"{tmp_path / 'nowhere'}: no such file or folder")
    assert not (tmp_path / "f.zarr").exists()


def test_flatten_to_a_file_url(damaged, tmp_path):
    result = run("flatten", damaged, "-o", f"file://{tmp_path}/u.zarr", *SIZE)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.endswith(f"wrote 12 images x 192 features to file://{tmp_path}/u.zarr\n")
    assert zarrstore.open_store(tmp_path / "u.zarr").m == 13


def half_written(damaged, tmp_path):
    """A store whose flatten stopped before its completion marker, at tmp_path/f.zarr."""
    writer = zarrstore.StoreWriter(tmp_path / "f.zarr", 12, 192)
    writer.write_rows(0, np.zeros((12, 192), np.uint8), np.zeros(12), np.ones(12, bool))
    (tmp_path / writer.target.rsplit("/", 1)[1]).rename(tmp_path / "f.zarr")
    return tmp_path / "f.zarr"


def test_every_command_refuses_a_half_written_store_by_name(damaged, tmp_path):
    store = half_written(damaged, tmp_path)
    model = tmp_path / "m.npz"
    (damaged / "b" / "notes.txt").unlink()
    (damaged / "a" / "002bad.png").unlink()
    assert run("train", damaged, "-m", model, *SIZE, *TRAIN).exit_code == 0
    message = (f"{store}: incomplete store (no completion marker: its writing did not "
               "finish; arrays present: X, valid, y); write it again with `logreg flatten`")
    assert_user_error(run("train", store, "-m", tmp_path / "n.npz", *TRAIN), message)
    assert_user_error(run("train", damaged, "--val", store, "-m", tmp_path / "n.npz", *SIZE,
                          *TRAIN), message)
    assert_user_error(run("evaluate", store, "-m", model), message)
    assert_user_error(run("flatten", store, "-o", tmp_path / "g.zarr"), message)
    assert_user_error(run("flatten", store, "-o", tmp_path / "g.npz"), message)
    predicted = run("predict", store, "-m", model)  # one input failed, the rest answered
    assert (predicted.exit_code, predicted.stderr) == (1, f"Error: {message}\n")
    assert not (tmp_path / "n.npz").exists()


def test_without_zarr_each_command_says_how_to_install_it(damaged, tmp_path, monkeypatch):
    npz, store, *_ = flatten_both(damaged, tmp_path)
    model = tmp_path / "m.npz"
    assert run("train", npz, "-m", model, *TRAIN).exit_code == 0
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` raises ImportError
    extra = "needs the dask extra (zarr is not installed): pip install 'logreg-cli[dask]'"
    assert_user_error(run("train", store, "-m", tmp_path / "n.npz"), f"{store}: {extra}")
    assert_user_error(run("evaluate", store, "-m", model), f"{store}: {extra}")
    assert_user_error(run("flatten", damaged, "-o", tmp_path / "g.zarr", *SIZE),
                      f"{tmp_path / 'g.zarr'}: {extra}")
    assert not (tmp_path / "g.zarr").exists()
    assert run("train", npz, "-m", tmp_path / "n.npz", *TRAIN).exit_code == 0  # .npz: no zarr


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    """2,400 tiny images in two classes: two chunks of rows at --size 64x64 (2048 rows)."""
    from conftest import write_image

    root = tmp_path_factory.mktemp("many") / "data"
    for class_index, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for index in range(1200):
            write_image(root / name / f"{index:04d}.png", index, class_index, size=(4, 4))
    return root


def start_flatten(data, output, tmp_path):
    """logreg flatten DATA -o output in a subprocess with SIGINT at its default (as in a
    shell), returned once its store's temporary folder exists (decoding has begun)."""
    import signal
    import subprocess
    import time

    from tiny_models import logreg_command, subprocess_env

    process = subprocess.Popen(
        logreg_command("flatten", data, "-o", output, "--size", "64x64", "--jobs", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f".{output.name}.*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.02)
    time.sleep(0.2)
    return process


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_an_interrupted_flatten_leaves_the_old_store(make_image_folder, many_images, tmp_path,
                                                    signal_name):
    import signal

    store = tmp_path / "f.zarr"
    assert run("flatten", make_image_folder({"x": 2, "y": 2}), "-o", store, *SIZE).exit_code == 0
    process = start_flatten(many_images, store, tmp_path)
    process.send_signal(getattr(signal, signal_name))
    _, stderr = process.communicate(timeout=60)
    assert zarrstore.open_store(store).classes == ["x", "y"]  # the old store, whole
    left = list(tmp_path.glob(".f.zarr.*.tmp"))
    if signal_name == "SIGINT":
        assert (process.returncode, stderr.splitlines()[-1]) == (130, "Interrupted.")
        assert left == []  # the unfinished store is removed
    else:  # killed outright: its unfinished store stays hidden, and is refused if named
        assert process.returncode == -signal.SIGKILL and len(left) == 1
        assert_user_error(run("train", left[0], "-m", tmp_path / "m.npz"),
                          f"{left[0]}: incomplete store (no completion marker: its writing did "
                          "not finish; arrays present: X, valid, y); write it again with "
                          "`logreg flatten`")


def test_a_labels_file_flattens_to_the_store_the_npz_holds(damaged, tmp_path):
    listing = tmp_path / "labels.csv"
    listing.write_text("path,label\ndata/c/000.png,cat\ndata/a/002bad.png,dog\n"
                       "data/a/000.png,dog\ndata/b/001.png,cat\n")
    npz, store, by_npz, by_store = flatten_both(listing, tmp_path)
    assert (by_npz.exit_code, by_store.exit_code) == (0, 0)
    assert by_store.stderr.replace("f.zarr", "f.npz") == by_npz.stderr
    opened = zarrstore.open_store(store)
    assert opened.valid.tolist() == [True, False, True, True]
    with np.load(npz) as arrays:
        assert np.array_equal(opened.rows(0, 4)[opened.valid], arrays["X"])
        assert np.array_equal(opened.y[opened.valid], arrays["y"])
        assert opened.classes == arrays["classes"].tolist() == ["cat", "dog"]
        assert [p for p, keep in zip(opened.paths, opened.valid) if keep] == \
            arrays["paths"].tolist()


def test_a_url_whose_backend_is_not_installed_is_one_line(damaged, tmp_path, monkeypatch):
    import fsspec  # noqa: F401 (fsspec.registry, the module, is shadowed by a mapping)

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as on a machine without s3fs
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    cause = ("s3://bucket/f.zarr: cannot open this URL (Install s3fs to access S3); its "
             "fsspec backend is yours to install (e.g. pip install s3fs for s3://)")
    assert_user_error(run("train", "s3://bucket/f.zarr", "-m", tmp_path / "m.npz"), cause)
    assert_user_error(run("flatten", damaged, "-o", "s3://bucket/f.zarr", *SIZE), cause)
    model = tmp_path / "m.npz"
    assert run("train", damaged, "-m", model, *SIZE, "-q").exit_code == 0
    predicted = run("predict", "s3://bucket/f.zarr", "-m", model)
    assert (predicted.exit_code, predicted.stderr) == (1, f"Error: {cause}\n")
    assert_user_error(run("evaluate", "nope://bucket/f.zarr", "-m", model),
                      "nope://bucket/f.zarr: not a readable Zarr store (Protocol not known: "
                      "nope)")
    assert_user_error(run("flatten", damaged, "-o", "nope://bucket/f.zarr", *SIZE),
                      "nope://bucket/f.zarr: not a writable Zarr store (Protocol not known: "
                      "nope)")
