"""The text and JSON views of what the library returns: the train summary and --history
CSV, the predict lines (tsv, csv, jsonl), the evaluate report, the inspect summary, the
explain report and the check report. Plain values in, strings out: no click, no printing
(cli.py writes them), no numpy at import.
"""

import io
import json

from .names import shown


def as_json(value):
    """The JSON view of a report: indented, in key order, names as UTF-8 (see json_text)."""
    return json_text(value, indent=2)


def json_text(value, indent=None):
    """value as JSON with non-ASCII characters as themselves (`Über`, not `\\u00dc`), but
    each lone surrogate (an undecodable path byte, os.fsdecode's U+DCNN) as the escape
    `\\udcNN`: no UTF-8 stream can carry it raw, and json.loads + os.fsencode give back the
    bytes. A lone surrogate can only stand inside a JSON string, so escaping it there is exact."""
    from .names import LONE_SURROGATE

    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


# ---------------------------------------------------------------- train


def train_summary(metadata, model_path):
    """The lines printed on stderr after training, from the model's metadata."""
    final_cost = metadata.get("final_cost")
    cost = "n/a" if final_cost is None else f"{final_cost:.6f}"
    epochs_run = metadata["epochs_run"]
    validation = metadata.get("validation")
    lines = []
    if metadata.get("interrupted"):
        lines.append(f"interrupted by {metadata['interrupted_by']}: stopped after {epochs_run} "
                     "epochs (the model file records the interruption)")
    elif validation and validation.get("early_stopped"):
        lines.append(f"early stop: no better validation cost for "
                     f"{epochs_run - validation['kept_epoch']} epochs")
    saved = metadata.get("saved_epoch")
    of_saved = "" if saved is None else f" (epoch {saved}, the weights saved)"
    lines.append(f"trained {epochs_run} epochs in {metadata['seconds']:.2f} s "
                 f"({metadata['method']}); final cost {cost}{of_saved}")
    lines.append(f"train accuracy {_percent(metadata['train_accuracy'])} "
                 f"({metadata['data']['images']} images)")
    positive = (metadata.get("options") or {}).get("positive")
    if positive is not None:
        lines.append(f"positive class {positive} (the score, --threshold and explain are about "
                     "it; --positive chooses another)")
    if validation:
        lines.append(f"validation accuracy {_percent(validation['accuracy'])} "
                     f"({validation['images']} images)")
        if validation["kept_epoch"] is not None:
            lines.append(f"kept the weights of epoch {validation['kept_epoch']}, after "
                         f"{validation['kept_epoch']} updates (lowest validation cost "
                         f"{validation['kept_val_cost']:.6f})")
    lines.append(f"model written to {model_path}")
    return lines


def epoch_postfix(stats, decaying):
    """The training bar's figures for one epoch (core.EpochStats), short enough that the bar
    line (EPOCH_BAR_FORMAT, 5-digit epochs) fits an 80-column terminal: the cost, the
    validation cost and accuracy, and the learning rate when it decays and there is room."""
    text = f"cost {stats.cost:.4f}"
    if stats.val_cost is not None:
        return text + f" val {stats.val_cost:.4f} {100 * stats.val_accuracy:.0f}%"
    return text + f" lr {stats.lr:.3g}" if decaying else text


# The training bar without tqdm's epochs/s (the remaining time says it), to leave room.
EPOCH_BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f} %"


def history_csv(history):
    """The --history CSV text of a model's history (lists per column): epoch, lr, cost
    (+ val_cost, val_accuracy), one row per epoch, floats as repr (exact)."""
    columns = ["epoch", "lr", "cost"]
    if "val_cost" in history:
        columns += ["val_cost", "val_accuracy"]
    lines = [",".join(columns)]
    for row in zip(*(history[name] for name in columns)):
        lines.append(",".join([str(row[0])] + [repr(float(value)) for value in row[1:]]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- predict


class PredictionWriter:
    """Formats one prediction per line as tsv, csv (header first) or jsonl.

    tsv/csv columns: path, label, probability, then label_2, probability_2 ... for --top-k,
    then p_<class> for every class with all_probabilities. jsonl always carries every
    class's probability under "probabilities", and "top" with --top-k.
    """

    def __init__(self, output_format, classes, top_k=1, with_path=True,
                 all_probabilities=False):
        self.format = output_format
        self.classes = classes
        self.top_k = top_k
        self.with_path = with_path
        self.all_probabilities = all_probabilities
        self.header_pending = output_format == "csv"
        self._csv_buffer = io.StringIO()
        self._csv_writer = None

    def header(self):
        columns = ["path"] if self.with_path else []
        columns += ["label", "probability"]
        for rank in range(2, min(self.top_k, len(self.classes)) + 1):
            columns += [f"label_{rank}", f"probability_{rank}"]
        if self.all_probabilities:
            columns += [f"p_{name}" for name in self.classes]
        return columns

    def start(self):
        """Text that opens the output: the csv header, so it is there even with no rows."""
        if not self.header_pending:
            return ""
        self.header_pending = False
        return self._csv_row(self.header())

    def line(self, path, proba, decision):
        if self.format == "jsonl":
            return self._json_line(path, proba, decision)
        cells = [str(path)] if self.with_path else []
        cells += [decision.label, f"{decision.probability:.6f}"]
        for label, probability in decision.ranked:
            cells += [label, f"{probability:.6f}"]
        if self.all_probabilities:
            cells += [f"{p:.6f}" for p in proba]
        if self.format == "tsv":
            return "\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in cells) + "\n"
        return self._csv_lines(cells)

    def _csv_lines(self, cells):
        return self.start() + self._csv_row(cells)

    def _csv_row(self, cells):
        """cells as one csv line: one writer and buffer for the whole output."""
        if self._csv_writer is None:
            import csv

            self._csv_writer = csv.writer(self._csv_buffer, lineterminator="\n")
        self._csv_buffer.seek(0)
        self._csv_buffer.truncate()
        self._csv_writer.writerow(cells)
        return self._csv_buffer.getvalue()

    def _json_line(self, path, proba, decision):
        record = {"path": str(path)} if self.with_path else {}
        record.update(label=decision.label, probability=decision.probability,
                      probabilities=dict(zip(self.classes, map(float, proba))))
        if self.top_k > 1:
            top = [(decision.label, decision.probability)] + decision.ranked
            record["top"] = [{"label": label, "probability": p} for label, p in top]
        return json_text(record) + "\n"


# ---------------------------------------------------------------- evaluate


def evaluate_text(result):
    """The evaluate report as aligned text."""
    classes = result["classes"]
    width = max(len(name) for name in classes + ["class"])
    lines = [
        f"accuracy  {100 * result['accuracy']:.2f} % ({result['correct']}/{result['images']})",
        f"log-loss  {result['log_loss']:.6f}",
    ]
    if "roc_auc" in result:
        lines += _binary_figures(result)
    lines += ["", f"{'class':<{width}}  precision  recall     f1  support"]
    for name in classes:
        row = result["per_class"][name]
        lines.append(f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                     f"{row['f1']:5.3f}  {row['support']:7d}")
    cell = max([len(str(v)) for r in result["confusion_matrix"] for v in r] + [len(c) for c in classes])
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * width + "  " + "  ".join(f"{name:>{cell}}" for name in classes)]
    for name, counts in zip(classes, result["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + "  ".join(f"{count:>{cell}}" for count in counts))
    if "misclassified" in result:
        lines += ["", f"most confidently wrong ({len(result['misclassified'])})",
                  "path\ttrue\tpredicted\tprobability"]
        lines += [f"{m['path']}\t{m['true']}\t{m['predicted']}\t{m['probability']:.6f}"
                  for m in result["misclassified"]]
    return "\n".join(lines)


def _binary_figures(result):
    """ROC AUC and the best-F1 threshold lines of a binary model's report."""
    auc, best = result["roc_auc"], result["best_threshold"]
    positive = result["positive_class"]
    lines = [f"ROC AUC   {'n/a (needs both classes)' if auc is None else f'{auc:.6f}'}"
             f"  (positive class: {positive})"]
    if best is not None:
        lines.append(f"best F1   {best['f1']:.6f} at threshold {best['threshold']:.6f} "
                     f"(P({positive}) >= threshold; precision {best['precision']:.3f}, "
                     f"recall {best['recall']:.3f})")
    return lines


# ---------------------------------------------------------------- inspect


def inspect_text(summary):
    """The inspect report (explaining.model_summary) as aligned text, values as a person
    reads them: percentages, `none`, seconds, and no JSON inside a line."""
    pairs = []
    for key in ("model", "format_version", "logreg_version", "created", "classes",
                "positive_class", "size", "features", "scaling", "method", "epochs_run",
                "saved_epoch", "final_cost", "best_cost", "train_accuracy"):
        if summary[key] is not None:
            pairs.append((key, _inspect_value(key, summary[key], summary)))
    if summary.get("training_seconds") is not None:
        pairs.append(("training_time", f"{summary['training_seconds']:.2f} s"))
    if summary.get("interrupted") is not None:
        by = summary.get("interrupted_by")
        pairs.append(("interrupted", (f"yes, by {by}" if by else "yes")
                      if summary["interrupted"] else "no"))
    for group, prefix in (("options", "option"), ("data", "data"), ("validation", "validation")):
        pairs += [(f"{prefix} {key}", _inspect_value(key, value, summary))
                  for key, value in (summary[group] or {}).items()]
    width = max(len(label) for label, _ in pairs)
    # shown(): a path that was not UTF-8 (or any lone surrogate in a hostile file's
    # metadata) must print as \xNN on a strict UTF-8 stdout, not raise UnicodeEncodeError
    return "\n".join(shown(f"{label:<{width}}  {value}") for label, value in pairs)


def _inspect_value(key, value, summary):
    if key == "final_cost" and summary.get("saved_epoch") is not None:
        return f"{value} (epoch {summary['saved_epoch']}, the weights saved)"
    if "accuracy" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _percent(value)
    return _text(value)


def _text(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(_text, value)) or "none"
    if isinstance(value, dict) and set(value) == {"value", "epoch"}:
        return f"{value['value']} (epoch {value['epoch']})"
    if isinstance(value, dict):
        return ", ".join(f"{key} {_text(item)}" for key, item in value.items()) or "none"
    return str(value)


# ---------------------------------------------------------------- explain


def explain_text(facts):
    """The explain report (Explanation.as_dict()) as text."""
    scored = facts["class"]
    if facts["binary"]:
        positive, = (name for name in facts["probabilities"] if name != facts["class"]) \
            if facts["negated"] else (facts["class"],)
        scored += (" (the positive class: a binary model has one score z, P = sigmoid(z))"
                   if not facts["negated"] else
                   f" (the negative class of a binary model: z here is minus the score of "
                   f"{positive}, P = sigmoid(z))")
    lines = [
        f"image        {facts['image']}",
        f"predicted    {facts['predicted']} ({facts['probabilities'][facts['predicted']]:.6f})",
        f"explained    {scored}",
        f"z            {facts['z']:.6f}",
        f"b            {facts['b']:.6f}",
        f"sum of w*x   {facts['sum_of_contributions']:.6f}   (z = sum of w*x + b)",
        f"probability  {facts['probability']:.6f}",
    ]
    for key, title in (("strongest_positive", "raise z"), ("strongest_negative", "lower z")):
        pixels = ", ".join(f"({p['x']},{p['y']}) {p['contribution']:+.4f}" for p in facts[key])
        lines.append(f"{title:<12} {pixels or '-'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- check


def check_text(report):
    """The check report (check.audit) as lines of text for a person."""
    lines = [f"{report['data']}: {report['images']} image files, {report['readable']} readable, "
             f"{len(report['classes'])} classes"]
    width = max([len(name) for name in report["classes"]] + [5])
    lines += [f"  {name:<{width}}  {count:6d}" for name, count in report["classes"].items()]
    lines.append("sizes: " + _joined(report["sizes"]))
    lines.append("modes: " + _joined(report["modes"]))
    lines.append(f"unreadable: {len(report['unreadable'])}")
    lines += [f"  {item['path']}: {item['cause']}" for item in report["unreadable"]]
    lines.append(f"ignored (not images, or in no class): {len(report['ignored'])}")
    lines += [f"  {item['path']}: {item['cause']}" for item in report["ignored"]]
    lines.append(f"classes left out (no image to learn from): {len(report['left_out'])}")
    lines += [f"  {item['path']}: {item['cause']}" for item in report["left_out"]]
    lines.append(f"files under two classes: {len(report['shared_files'])}")
    lines += [f"  {item['path']} = {item['same_as']} ({', '.join(item['classes'])})"
              for item in report["shared_files"]]
    lines.append(f"identical images: {len(report['duplicates'])} group(s)")
    for group in report["duplicates"]:
        lines.append("  " + "  =  ".join(f"{p} ({label})"
                                         for p, label in zip(group["paths"], group["labels"])))
    imbalance = report["imbalance"]
    if imbalance["ratio"] == 1:
        lines.append("imbalance: none (every class has as many images)")
    elif imbalance["ratio"] is not None:
        lines.append(f"imbalance: {imbalance['largest']!r} / {imbalance['smallest']!r} = "
                     f"{imbalance['ratio']:.2f} (limit {imbalance['limit']:g})")
    if "against" in report:
        other = report["against"]
        lines.append(f"against {other['data']}: {other['images']} image files, "
                     f"{other['readable']} readable, {len(other['shared'])} shared with "
                     f"{report['data']}")
        lines += [f"  {item['path']} = {', '.join(item['other_paths'])}" for item in other["shared"]]
        lines += [f"  {item['path']}: {item['cause']}" for item in other["unreadable"]]
    if report["problems"]:
        lines.append(f"{len(report['problems'])} problem(s):")
        lines += [f"  - {problem}" for problem in report["problems"]]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def _joined(counts):
    return ", ".join(f"{key} ({count})" for key, count in counts.items()) or "none"
