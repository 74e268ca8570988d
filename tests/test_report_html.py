"""logreg report: one self-contained HTML page (parsed, no external reference, every picture
decodes, the figures those of evaluate), its refusals, and the page in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from logreg_cli.cli import cli
from logreg_cli.model import Model, load_model, save_model
from tiny_models import write_class_folders

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def trained(root, classes, per_class, seed, epochs):
    data = root / "data"
    write_class_folders(data, classes, per_class, seed=seed)
    model = root / "model.npz"
    result = invoke("train", data, "-m", model, "--size", "8x8", "--epochs", str(epochs), "--lr",
                    "0.05", "--val-split", "0.25", "-q")
    assert result.exit_code == 0, result.output
    return model, data


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("binary"), ["blue", "red"], 10, seed=3, epochs=30)


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("multi"), ["blue", "green", "red"], 8, seed=4,
                   epochs=4)


class Page(HTMLParser):
    """Every tag with its attributes, the text of each <h2>, and each table's cell texts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.headings, self.cells = [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("h2", "td", "th"):
            self._in = tag
            (self.headings if tag == "h2" else self.cells).append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "h2":
            self.headings[-1] += data
        elif self._in in ("td", "th"):
            self.cells[-1] += data


def parsed(path):
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    page.close()
    return text, page


def images_of(page):
    """(PIL image, attributes) of every <img>, decoded from its data: URI."""
    decoded = []
    for tag, attrs in page.tags:
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix)
            image = Image.open(io.BytesIO(base64.b64decode(attrs["src"][len(prefix):])))
            image.load()
            decoded.append((image, attrs))
    return decoded


def evaluated(model, data, mistakes):
    result = invoke("evaluate", data, "-m", model, "--format", "json", "--misclassified",
                    mistakes)
    assert result.exit_code == 0
    return json.loads(result.stdout)


@pytest.mark.parametrize("fixture", ["binary", "multiclass"])
def test_report_is_one_self_contained_page_with_evaluates_figures(fixture, request, tmp_path):
    model, data = request.getfixturevalue(fixture)
    output = tmp_path / "report.html"
    result = invoke("report", data, "-m", model, "-o", output, "--misclassified", 3)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(rf"wrote {re.escape(str(output))} \(\d+ KB; accuracy [\d.]+%\)\n",
                        result.stderr)
    text, page = parsed(output)
    # self-contained: no address, no script, no style sheet or font from elsewhere
    outside_pictures = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"https?:|//[a-z]|url\(|@import", outside_pictures)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed"}
    assert all(attrs.get("src", "data:").startswith("data:") for _, attrs in page.tags)
    # every picture decodes, at the size the page gives it
    binary = fixture == "binary"
    facts = evaluated(model, data, 3)
    assert len(facts["misclassified"]) >= 1  # the fixtures' models make mistakes to show
    expected = {"Learning curve", "Evaluation", "Confusion matrix", "The model",
                "What the model looks for: its weights",
                f"Most confidently wrong images ({len(facts['misclassified'])})"}
    assert set(page.headings) == expected | ({"ROC curve"} if binary else set())
    images = images_of(page)
    assert len(images) == 2 + binary + len(facts["misclassified"])
    for image, attrs in images:
        assert image.format == "PNG" and image.size == (int(attrs["width"]),
                                                       int(attrs["height"]))
        assert image.width >= 512
    # the figures are evaluate's: accuracy, per-class table, confusion counts
    cells = page.cells
    assert f"{100 * facts['accuracy']:.1f} %" in cells or \
        f"{100 * facts['accuracy']:.1f} %" in text
    for name, figures in facts["per_class"].items():
        at = cells.index(name, cells.index("support"))
        assert cells[at:at + 5] == [name, f"{100 * figures['precision']:.1f} %",
                                    f"{100 * figures['recall']:.1f} %",
                                    f"{100 * figures['f1']:.1f} %", str(figures["support"])]
    corner = cells.index("true \\ predicted")
    k = len(facts["classes"])
    grid = cells[corner + k + 1:corner + (k + 1) * (k + 1)]
    for row, name in enumerate(facts["classes"]):
        assert grid[row * (k + 1)] == name
        assert grid[row * (k + 1) + 1:(row + 1) * (k + 1)] == \
            [str(count) for count in facts["confusion_matrix"][row]]
    # the mistakes are evaluate's, in its order, with true, predicted and probability
    for mistake in facts["misclassified"]:
        at = cells.index(mistake["path"])
        assert cells[at + 2] == mistake["true"] and cells[at + 4] == mistake["predicted"]
        assert cells[at + 6] == f"{mistake['probability']:.3f}"
    kept = load_model(model).metadata["validation"]["kept_epoch"]
    assert cells[cells.index("kept epoch") + 1] == f"{kept} (lowest validation cost)"


@pytest.mark.parametrize("count", [0, 1])
def test_report_shows_as_many_mistakes_as_asked(count, binary, tmp_path):
    model, data = binary
    output = tmp_path / "r.html"
    assert invoke("report", data, "-m", model, "-o", output, "--misclassified",
                  count).exit_code == 0
    _, page = parsed(output)
    wrong = len(evaluated(model, data, 1)["misclassified"])
    assert wrong == 1  # the fixture's model makes mistakes, so the count shows
    assert len(images_of(page)) == 3 + min(count, wrong)
    assert any(h.startswith("Most confidently wrong") for h in page.headings) == bool(count)


@pytest.mark.parametrize("output, message", [
    ("{model}", "{model}: --output would replace the --model this command reads"),
    ("{data}/blue/000.png", "would replace a file of the DATA"),
    ("{tmp}/missing/r.html", "missing"),
    ("", "--output: the path is empty"),
])
def test_report_refuses_an_output_it_must_not_write(output, message, binary, tmp_path):
    model, data = binary
    before = model.read_bytes()
    values = {"model": model, "data": data, "tmp": tmp_path}
    result = invoke("report", data, "-m", model, "-o", output.format(**values))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert message.format(**values) in lines[0]
    assert model.read_bytes() == before and not (tmp_path / "missing").exists()


def test_report_of_a_missing_model_is_one_line(binary, tmp_path):
    _, data = binary
    result = invoke("report", data, "-m", tmp_path / "none.npz", "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'none.npz'}")
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- in a browser

LOADED_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute("data-checked", images.length + " " + broken);
});
</script>"""


def chromium(tmp_path, *args):
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           *args], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium_with_every_image_loaded(binary, tmp_path):
    model, data = binary
    output = tmp_path / "report.html"
    assert invoke("report", data, "-m", model, "-o", output).exit_code == 0
    shown = len(images_of(parsed(output)[1]))
    # every <img> loaded: a copy of the page with a check run at its load event
    checked = tmp_path / "checked.html"
    checked.write_text(output.read_text(encoding="utf-8").replace("</body>",
                                                                  LOADED_CHECK + "</body>"),
                       encoding="utf-8")
    dom = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    assert re.search(r'data-checked="(\d+) (\d+)"', dom).groups() == (str(shown), "0")
    # the page itself, as a person sees it: rendered, at the window's size, not blank
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1000,2400", f"--screenshot={shot}", output.as_uri())
    with Image.open(shot) as picture:
        assert picture.size == (1000, 2400)
        pixels = np.asarray(picture.convert("RGB"))
    inked = (pixels < 200).any(axis=2)
    assert inked.mean() > 0.02  # text, tables and pictures, not an empty page
    assert inked[:, :500].any(axis=1).mean() > 0.3  # content down the page, not one line
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200  # the pictures drew (a text-only page has a few greys)


def test_report_of_a_model_without_history_or_validation(binary, tmp_path):
    """A model file with no per-epoch history (written by another program) still gets its
    page, saying so; a model trained without validation keeps its last epoch."""
    model_path, data = binary
    model = load_model(model_path)
    bare = Model(model.weights, model.bias, model.classes, model.size)
    save_model(bare, tmp_path / "bare.npz")
    output = tmp_path / "bare.html"
    assert invoke("report", data, "-m", tmp_path / "bare.npz", "-o", output).exit_code == 0
    text, page = parsed(output)
    assert "The model file holds no per-epoch history." in text
    assert page.cells[page.cells.index("kept epoch") + 1] == "none"
    assert len(images_of(page)) == 2 + 1  # ROC, weights, the one mistake
    plain = tmp_path / "plain.npz"
    assert invoke("train", data, "-m", plain, "--size", "8x8", "--epochs", 7, "-q").exit_code == 0
    assert invoke("report", data, "-m", plain, "-o", output, "--misclassified", 0).exit_code == 0
    cells = parsed(output)[1].cells
    assert cells[cells.index("kept epoch") + 1] == str(load_model(plain).history["epoch"][-1])


def test_report_skips_an_unreadable_image_with_a_warning_and_strict_stops(binary, tmp_path):
    model, data = binary
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "red" / "broken.png").write_bytes(b"not a png")
    output = tmp_path / "r.html"
    result = invoke("report", copy, "-m", model, "-o", output)
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Warning: {copy / 'red' / 'broken.png'}: ")
    assert lines[1] == f"skipped 1 unreadable file(s) in {copy}"
    assert lines[2].startswith(f"wrote {output} (") and len(lines) == 3
    output.unlink()
    strict = invoke("report", copy, "-m", model, "-o", output, "--strict")
    assert strict.exit_code == 2 and not output.exists()
    assert strict.stderr.startswith(f"Error: {copy / 'red' / 'broken.png'}: ")
    assert len(strict.stderr.splitlines()) == 1
