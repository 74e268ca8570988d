"""`logreg report`: a model and its evaluation on labelled data as ONE self-contained HTML
page (every picture an inline PNG data: URI; no script, font or style from elsewhere), for
a person to read on screen or print.

Built from the library's results (api.evaluation, explaining.explain, plots); no click.
"""

import base64
import html
import io
import time

import numpy as np

from . import __version__, core
from .explaining import explain, model_summary, weight_captions
from .metrics import most_confident_mistakes, ranked_counts
from .names import shown
from .plots import (diverging_colours, kept_epoch, learning_curve_image, model_learning_curve,
                    explanation_picture, weights_picture)

ROC_SIZE = (560, 520)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 24px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 2em; }
.subtitle { color: #555; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 10px; border: 1px solid #ccc; text-align: left; vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.facts th { background: #f4f4f4; font-weight: 600; }
.headline { display: flex; gap: 16px; flex-wrap: wrap; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 8px 16px; min-width: 140px; }
.figure .value { font-size: 1.8em; font-weight: 600; }
.confusion td.count { text-align: center; min-width: 64px; font-weight: 600; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 0.9em; color: #444; }
.legend .scale { width: 200px; height: 14px; border: 1px solid #999; }
img { max-width: 100%; height: auto; }
.mistake { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; border-top: 1px solid #eee;
           padding: 12px 0; break-inside: avoid; page-break-inside: avoid; }
.mistake .facts { min-width: 220px; }
.note { color: #555; font-size: 0.92em; }
section { break-inside: avoid-page; }
@media print { body { max-width: none; padding: 0; } h2 { break-after: avoid; } }
"""


def build_report(model, dataset, source, model_path, evaluation, misclassified=12, scores=None):
    """The report page (str, HTML5) of model on a loaded dataset.Dataset from source.

    evaluation: the dict of api.evaluation for this model and dataset (without
    misclassified); scores: model.scores(dataset.X), when the caller has them. misclassified:
    how many of the most confidently wrong images to show with their explanation heat maps. Raises what plots and explain raise (nothing for a
    dataset that api.evaluation accepted).
    """
    if scores is None:
        scores = model.scores(dataset.X)
    parts = [
        _header(model_path, source, evaluation),
        _model_section(model, model_path),
        _curve_section(model),
        _evaluation_section(evaluation),
        _confusion_section(evaluation),
    ]
    if len(model.classes) == 2:
        parts.append(_roc_section(dataset.y == 1, scores[:, 0], evaluation, model.classes))
    parts.append(_weights_section(model))
    if misclassified:
        parts.append(_mistakes_section(model, dataset, scores, misclassified))
    title = f"logreg report: {shown(str(model_path))} on {shown(str(source))}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(parts)
            + "\n</body>\n</html>\n")


# ---------------------------------------------------------------- sections


def _header(model_path, source, evaluation):
    return (f"<h1>{_e(shown(str(model_path)))} on {_e(shown(str(source)))}</h1>\n"
            f"<p class=\"subtitle\">{evaluation['images']} images, "
            f"{len(evaluation['classes'])} classes; written by logreg {_e(__version__)} on "
            f"{_e(time.strftime('%Y-%m-%d %H:%M'))}</p>")


def _model_section(model, model_path):
    summary = model_summary(model, model_path)
    meta = model.metadata
    options = summary.get("options") or {}
    kept = kept_epoch(model)
    rows = [
        ("classes", ", ".join(model.classes)),
        ("positive class", summary["positive_class"] or "none (one score per class)"),
        ("image size", f"{summary['size']} ({summary['features']} features)"),
        ("scaling", summary["scaling"]),
        ("options", ", ".join(f"{name} {_value(value)}" for name, value in options.items())),
        ("trained on", _value((summary.get("data") or {}).get("source"))),
        ("epochs run", _value(summary["epochs_run"])),
        ("training time", _seconds(meta.get("seconds"))),
        ("kept epoch", _value(kept) + ("" if not isinstance(meta.get("validation"), dict)
                                       else " (lowest validation cost)")),
        ("interrupted", _value(meta.get("interrupted_by")) if meta.get("interrupted")
         else "no"),
        ("final cost", _number(summary["final_cost"])),
        ("training accuracy", _percent(summary["train_accuracy"])),
        ("created", _value(summary["created"])),
    ]
    body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows)
    return f"<section><h2>The model</h2>\n<table class=\"facts\">{body}</table></section>"


def _curve_section(model):
    if not model.history.get("cost"):
        return ("<section><h2>Learning curve</h2><p class=\"note\">The model file holds no "
                "per-epoch history.</p></section>")
    image = model_learning_curve(model, "cost per epoch")
    return ("<section><h2>Learning curve</h2>\n"
            + _img(image, "learning curve: cost per epoch, the kept epoch marked")
            + "<p class=\"note\">The cost the training minimised, per epoch (with validation "
              "data, the validation cost too); the dashed line is the epoch whose weights the "
              "model file holds.</p></section>")


def _evaluation_section(evaluation):
    figures = [("accuracy", _percent(evaluation["accuracy"]),
                f"{evaluation['correct']} of {evaluation['images']} right"),
               ("log-loss", _number(evaluation["log_loss"]), "lower is better")]
    if evaluation.get("roc_auc") is not None:
        figures.append(("ROC AUC", _number(evaluation["roc_auc"]),
                        f"positive class {evaluation['positive_class']}"))
    cards = "".join(f"<div class=\"figure\"><div>{_e(name)}</div><div class=\"value\">"
                    f"{_e(value)}</div><div class=\"note\">{_e(note)}</div></div>"
                    for name, value, note in figures)
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td class=\"number\">{_percent(c['precision'])}</td>"
        f"<td class=\"number\">{_percent(c['recall'])}</td>"
        f"<td class=\"number\">{_percent(c['f1'])}</td>"
        f"<td class=\"number\">{c['support']}</td></tr>"
        for name, c in evaluation["per_class"].items())
    return ("<section><h2>Evaluation</h2>\n"
            f"<div class=\"headline\">{cards}</div>\n"
            "<table class=\"per-class\"><tr><th>class</th><th>precision</th><th>recall</th>"
            f"<th>F1</th><th>support</th></tr>{rows}</table></section>")


def _confusion_section(evaluation):
    classes, matrix = evaluation["classes"], np.array(evaluation["confusion_matrix"])
    support = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, support, out=np.zeros(matrix.shape), where=support > 0)
    # right answers in red shades, wrong ones in blue: the diverging scale of the pictures
    signed = np.where(np.eye(len(classes), dtype=bool), shares, -shares)
    colours = diverging_colours(signed, 1.0)
    head = "".join(f"<th>{_e(name)}</th>" for name in classes)
    rows = []
    for i, name in enumerate(classes):
        cells = "".join(
            f"<td class=\"count\" style=\"background: rgb{tuple(int(v) for v in colours[i, j])};"
            f" color: {'#fff' if shares[i, j] > 0.6 else '#000'}\" title=\"{shares[i, j]:.1%} "
            f"of true {_e(name)}\">{matrix[i, j]}</td>" for j in range(len(classes)))
        rows.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
    legend = ("<div class=\"legend\"><span>share of the row's images: 0 %</span>"
              "<span class=\"scale\" style=\"background: linear-gradient(to right, "
              "rgb(255,255,255), rgb(178,24,43))\"></span><span>100 % right</span>"
              "<span class=\"scale\" style=\"background: linear-gradient(to right, "
              "rgb(255,255,255), rgb(33,102,172))\"></span><span>100 % wrong</span></div>")
    return ("<section><h2>Confusion matrix</h2>\n<p class=\"note\">Rows: the true class; "
            "columns: the predicted class; each cell the number of images.</p>\n"
            "<table class=\"confusion\"><tr><th>true \\ predicted</th>"
            f"{head}</tr>{''.join(rows)}</table>\n{legend}</section>")


def roc_points(is_positive, score):
    """The ROC curve of score (m) for the labels is_positive (m bool): (false positive
    rates, true positive rates), float64 arrays from (0, 0) to (1, 1), one point per
    distinct score (ties move both rates at once)."""
    _, true_positive, predicted = ranked_counts(is_positive, score)
    false_positive = predicted - true_positive
    positives = int(np.count_nonzero(is_positive))
    negatives = len(score) - positives
    tpr = np.concatenate([[0.0], true_positive / max(positives, 1)])
    fpr = np.concatenate([[0.0], false_positive / max(negatives, 1)])
    return fpr, tpr


def _roc_section(is_positive, score, evaluation, classes):
    if evaluation.get("roc_auc") is None:
        return ("<section><h2>ROC curve</h2><p class=\"note\">The data holds images of one "
                "class only: no ROC curve.</p></section>")
    fpr, tpr = roc_points(is_positive, score)
    positive = classes[1]
    image = learning_curve_image(
        [(f"ROC, AUC = {evaluation['roc_auc']:.3f}", fpr, tpr),
         ("chance", [0.0, 1.0], [0.0, 1.0])],
        title=f"ROC curve: {positive} as positive", size=ROC_SIZE,
        x_label=f"false positive rate ({classes[0]} called {positive})",
        y_label=f"true positive rate ({positive} found)", legend_low=True)
    best = evaluation.get("best_threshold") or {}
    note = ("" if not best else f"<p class=\"note\">Best F1 of {_e(positive)} on this data: "
            f"{best['f1']:.3f} at threshold {best['threshold']:.3f} "
            "(predict --threshold).</p>")
    return ("<section><h2>ROC curve</h2>\n" + _img(image, "ROC curve") + note + "</section>")


def _weights_section(model):
    picture = weights_picture(model.weights, weight_captions(model), model.size)
    return ("<section><h2>What the model looks for: its weights</h2>\n"
            + _img(picture, "the learned weights of each class as pictures")
            + "<p class=\"note\">Each class's weights laid out as the image: where a tile is "
              "red (bottom) or bright (top), bright pixels there raise that class's score."
              "</p></section>")


def _mistakes_section(model, dataset, scores, count):
    probabilities = core.probabilities(scores)
    wrong = most_confident_mistakes(dataset.y, probabilities, count)
    if not wrong:
        return ("<section><h2>Most confidently wrong images</h2><p>None: every image was "
                "classified right.</p></section>")
    items = [_mistake(model, dataset, index, probabilities[index]) for index in wrong]
    return (f"<section><h2>Most confidently wrong images ({len(wrong)})</h2>\n"
            "<p class=\"note\">Each image as the model sees it, each pixel's contribution to "
            "the explained score (red raises it, blue lowers it) and the two overlaid.</p>\n"
            + "\n".join(items) + "</section>")


def _mistake(model, dataset, index, probabilities):
    predicted = model.classes[int(np.argmax(probabilities))]
    true = model.classes[int(dataset.y[index])]
    path = shown(str(dataset.paths[index])) if len(dataset.paths) else f"row {index}"
    row = np.asarray(dataset.X[index], dtype=np.uint8)
    result = explain(model, row, path, None if len(model.classes) == 2 else predicted)
    caption = [f"explained: {result.explained_class}, z = {result.z:.3f}, "
               f"P = {result.probability:.3f}"]
    picture = explanation_picture(result.pixels, result.contributions, caption)
    facts = [("image", path), ("true class", true), ("predicted", predicted),
             ("probability", f"{float(np.max(probabilities)):.3f}")]
    body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in facts)
    return (f"<div class=\"mistake\"><table class=\"facts\">{body}</table>"
            f"{_img(picture, f'{path}: true {true}, predicted {predicted}')}</div>")


# ---------------------------------------------------------------- helpers


def png_data_uri(picture):
    """A PIL image as a data: URI of its PNG bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(picture, alt):
    return (f"<img src=\"{png_data_uri(picture)}\" width=\"{picture.width}\" "
            f"height=\"{picture.height}\" alt=\"{_e(alt)}\">")


def _e(text):
    return html.escape(str(text), quote=True)


def _value(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(item) for item in value) or "none"
    return str(value)


def _number(value):
    return "none" if value is None else f"{value:.4f}"


def _percent(value):
    return "none" if value is None else f"{100 * value:.1f} %"


def _seconds(value):
    return "unknown" if value is None else f"{value:.1f} s"
