"""Fuzzing the two readers of untrusted files: the model reader and the image loader.

Every input must end in a loaded object or our own error (ModelFileError, ImageError), one
line naming the file, never another exception. The number of cases per test comes from
$LOGREG_FUZZ_EXAMPLES (default 300); e.g. LOGREG_FUZZ_EXAMPLES=5000 for a long run.
"""

import io
import json
import os
import re
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp
from PIL import Image

from logreg_cli.errors import ImageError, ModelFileError
from logreg_cli.explaining import model_summary
from logreg_cli.views import inspect_text
from logreg_cli.images import load_image
from logreg_cli.model import FORMAT_VERSION, Model, load_model, save_model

EXAMPLES = int(os.environ.get("LOGREG_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SIZE = (4, 3)  # width x height of the fuzzed model
N_FEATURES = 4 * 3 * 3


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder for the file each example writes (hypothesis runs many examples per test)."""
    return tmp_path_factory.mktemp("fuzz")


def reason_kind(cause):
    """The first words of an error's cause, without numbers or names: how the statistics
    group outcomes (pytest --hypothesis-show-statistics)."""
    cause = cause.removeprefix("not a readable model file (")
    return " ".join(re.sub(r"[0-9(),'\"\\[\\]:]+", " ", cause).split()[:4])


def record(outcome):
    """Count an outcome in hypothesis's statistics (outside a hypothesis test: nothing)."""
    try:
        event(outcome)
    except InvalidArgument:
        pass


# ---------------------------------------------------------------- mutations


@st.composite
def mutations(draw, original):
    """original with 1 to 6 edits: bytes flipped, overwritten, inserted or deleted, or a cut."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite" and data:
            junk = draw(st.binary(min_size=1, max_size=16))
            data[position : position + len(junk)] = junk
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[position:]
    return bytes(data)


# ---------------------------------------------------------------- the model reader


def valid_model_bytes(classes=("cat", "non-cat")):
    rng = np.random.default_rng(0)
    c = 1 if len(classes) == 2 else len(classes)
    model = Model(rng.normal(size=(N_FEATURES, c)).astype(np.float32),
                  rng.normal(size=c).astype(np.float32), list(classes), SIZE,
                  metadata={"options": {"lr": 0.1}, "data": {"images": 4},
                            "history": {"epoch": [0, 1], "lr": [0.1, 0.1], "cost": [0.69, 0.6]}})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        save_model(model, path)
        with open(path, "rb") as file:
            return file.read()


VALID_MODELS = [valid_model_bytes(), valid_model_bytes(("a", "b", "c"))]


def load_or_refuse(path):
    """load_model(path): a usable Model, or a one-line ModelFileError naming path."""
    try:
        model = load_model(path)
    except ModelFileError as error:
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert "\n" not in message
        record(f"refused: {reason_kind(message[len(str(path)) + 2:])}")
        return None
    # Whatever loads is a model every command can use.
    assert model.weights.dtype == np.float32 and model.weights.ndim == 2
    assert np.isfinite(model.weights).all() and np.isfinite(model.bias).all()
    pixels = np.zeros((2, model.n_features), dtype=np.uint8)
    probabilities = model.predict_proba(pixels)
    assert probabilities.shape == (2, len(model.classes))
    summary = model_summary(model, path)
    json.dumps(summary)
    inspect_text(summary)
    record("loaded")
    return model


@FUZZ
@given(data=st.sampled_from(VALID_MODELS).flatmap(mutations))
def test_mutated_model_files_load_or_are_refused(scratch, data):
    path = scratch / "mutated.npz"
    path.write_bytes(data)
    load_or_refuse(path)


def repacked(original, member, data):
    """The archive original with member's bytes replaced by data (CRCs made right again)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == member else source.read(info))
    return buffer.getvalue()


@st.composite
def models_with_a_mutated_member(draw):
    """A valid model whose one .npy member (header or data) is mutated inside a sound zip,
    so the mutation reaches the array reader rather than the zip's CRC check."""
    original = draw(st.sampled_from(VALID_MODELS))
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        member = draw(st.sampled_from(sorted(archive.namelist())))
        content = archive.read(member)
    return repacked(original, member, draw(mutations(content)))


@FUZZ
@given(data=models_with_a_mutated_member())
def test_models_with_a_mutated_array_load_or_are_refused(scratch, data):
    path = scratch / "member.npz"
    path.write_bytes(data)
    load_or_refuse(path)


def test_the_valid_model_files_load(scratch):
    """Control: unmutated, both fuzz seeds load."""
    for data in VALID_MODELS:
        path = scratch / "valid.npz"
        path.write_bytes(data)
        assert load_or_refuse(path) is not None


ANY_DTYPE = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                      hnp.complex_number_dtypes(), hnp.boolean_dtypes(),
                      hnp.unicode_string_dtypes(max_len=4), hnp.byte_string_dtypes(max_len=4),
                      hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
                      hnp.array_dtypes(max_size=2))


def any_array():
    return hnp.arrays(ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))


def valid_arrays():
    with np.load(io.BytesIO(VALID_MODELS[0]), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


METADATA_TEXTS = st.one_of(
    st.text(max_size=40),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.sampled_from(["options", "data", "history", "cost",
                                                    "epoch", "lr", "val_cost", "x",
                                                    "history_columns", "history_summary",
                                                    "best_cost", "value"]),
                                   inner, max_size=4),
                 max_leaves=12).map(json.dumps),
)


@st.composite
def structured_models(draw):
    """The keys of a model file, each kept, dropped, or holding an arbitrary array; and
    sometimes plausible-looking values (a size, a version, classes, metadata JSON)."""
    arrays = valid_arrays()
    for key in list(arrays):
        choice = draw(st.sampled_from(["keep"] * 4 + ["drop", "random"] + ["plausible"] * 2))
        if choice == "drop":
            del arrays[key]
        elif choice == "random":
            arrays[key] = draw(any_array())
        elif choice == "plausible":
            arrays[key] = draw({
                "format_version": st.integers(-2, 3).map(np.int64),
                "size": st.lists(st.integers(-1, 6), min_size=0, max_size=3).map(
                    lambda v: np.array(v, dtype=np.int64)),
                "classes": st.lists(st.text(max_size=3), max_size=4).map(
                    lambda v: np.array(v, dtype=str)),
                "metadata": METADATA_TEXTS.map(np.array),
                "weights": st.sampled_from([(36, 1), (36, 2), (36,), (12, 1), (0, 1)]).flatmap(
                    lambda shape: hnp.arrays(np.float32, shape)),
                "bias": hnp.arrays(np.float32, st.sampled_from([(1,), (2,), ()])),
                "history": hnp.arrays(np.float64, st.sampled_from([(2, 3), (0, 3), (2,), (3, 2)])),
                "feature_mean": hnp.arrays(np.float32, st.sampled_from([(0,), (36,), (5,)])),
                "feature_scale": hnp.arrays(np.float32, st.sampled_from([(0,), (36,), (5,)])),
            }[key])
    if draw(st.booleans()):
        arrays[draw(st.sampled_from(["X", "extra", "weights.npy"]))] = draw(any_array())
    return arrays


# numpy warns when it writes a field name that needs .npy format 3.0; writing is the test's part
@pytest.mark.filterwarnings("ignore:Stored array in format 3.0:UserWarning")
@FUZZ
@given(arrays=structured_models())
def test_model_files_of_arbitrary_arrays_load_or_are_refused(scratch, arrays):
    path = scratch / "structured.npz"
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    model = load_or_refuse(path)
    if model is not None:
        assert int(arrays["format_version"]) == FORMAT_VERSION


# ---------------------------------------------------------------- the image loader


def valid_image_bytes():
    """Small images in every format the loader takes, in several modes."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), "RGB")
    rgba = Image.fromarray(rng.integers(0, 256, (12, 10, 4), dtype=np.uint8), "RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned, so exif_transpose has work to do
    images = []
    for image, fmt, options in [
        (rgb, "JPEG", {"exif": exif.tobytes()}), (rgb, "PNG", {}), (rgba, "PNG", {}), (rgb.convert("P"), "PNG", {"transparency": 0}),
        (rgb.convert("I;16"), "PNG", {}),
        (rgb, "JPEG", {"quality": 80}), (rgb.convert("L"), "JPEG", {}),
        (rgb.convert("P"), "GIF", {}),
        (rgb, "BMP", {}), (rgb.convert("1"), "BMP", {}),
        (rgb, "WEBP", {"lossless": True}), (rgba, "WEBP", {"quality": 50}),
        (rgb, "TIFF", {}), (rgb, "TIFF", {"compression": "tiff_lzw"}), (rgb.convert("F"), "TIFF", {}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **options)
        images.append((fmt, buffer.getvalue()))
    return images


VALID_IMAGES = valid_image_bytes()
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp",
              "TIFF": ".tif"}


def load_or_refuse_image(path):
    try:
        row = load_image(path, (4, 4))
    except ImageError as error:
        assert str(error).startswith(f"{path}: "), str(error)
        assert "\n" not in str(error)
        record(f"refused: {reason_kind(error.cause)}")
        return None
    assert row.dtype == np.uint8 and row.shape == (4 * 4 * 3,)
    record("loaded")
    return row


def test_the_valid_images_load(scratch):
    """Control: unmutated, every fuzz seed decodes."""
    for fmt, data in VALID_IMAGES:
        path = scratch / f"valid{EXTENSIONS[fmt]}"
        path.write_bytes(data)
        assert load_or_refuse_image(path) is not None, fmt


@FUZZ
@given(case=st.sampled_from(VALID_IMAGES).flatmap(
    lambda image: mutations(image[1]).map(lambda data: (image[0], data))))
def test_mutated_images_load_or_are_refused(scratch, case):
    fmt, data = case
    path = scratch / f"mutated{EXTENSIONS[fmt]}"
    path.write_bytes(data)
    load_or_refuse_image(path)


# ---------------------------------------------------------------- feature files


def valid_feature_bytes():
    """A 5-image feature file (flatten's format) at SIZE, as bytes."""
    from logreg_cli.dataset import Dataset, save_features

    rng = np.random.default_rng(1)
    data = Dataset(rng.integers(0, 256, (5, N_FEATURES), dtype=np.uint8),
                   np.array([0, 1, 0, 1, 1]), ["cat", "dog"],
                   [f"img{i}.png" for i in range(5)], SIZE)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "features.npz")
        save_features(data, path, {"source": "fuzz"})
        with open(path, "rb") as file:
            return file.read()


VALID_FEATURES = valid_feature_bytes()


def load_features_or_refuse(path):
    """The feature reader's contract: a Dataset of consistent shapes, or ModelFileError."""
    from logreg_cli.dataset import load_features

    try:
        data = load_features(path)
    except ModelFileError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
        record("refused: " + reason_kind(str(error).removeprefix(f"{path}: ")))
        return
    assert data.X.shape == (len(data.y), data.size[0] * data.size[1] * 3)
    assert len(data.paths) == len(data.y)
    record("loaded")


def test_the_valid_feature_file_loads(scratch):
    path = scratch / "valid-features.npz"
    path.write_bytes(VALID_FEATURES)
    from logreg_cli.dataset import load_features

    assert load_features(path).classes == ["cat", "dog"]


@FUZZ
@given(data=st.one_of(mutations(VALID_FEATURES), st.builds(
    lambda member, mutated: repacked(VALID_FEATURES, member, mutated),
    st.just("X.npy"), mutations(zipfile.ZipFile(io.BytesIO(VALID_FEATURES)).read("X.npy"))),
    st.sampled_from(["y.npy", "classes.npy", "paths.npy", "size.npy", "metadata.npy"]).flatmap(
        lambda member: mutations(zipfile.ZipFile(io.BytesIO(VALID_FEATURES)).read(member)).map(
            lambda mutated: repacked(VALID_FEATURES, member, mutated)))))
def test_mutated_feature_files_load_or_are_refused(scratch, data):
    path = scratch / "features.npz"
    path.write_bytes(data)
    load_features_or_refuse(path)
