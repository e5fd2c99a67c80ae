"""report.html: the comparison table, tuned settings, per-class mOS, class confusion, timelines.

Plots are matplotlib PNGs embedded as base64 so the report is one self-contained file. The ensemble
stage writes it; the main job then adds what only it knows (`add_main_job`: the baseline row, the
stage timings, the heads' training curves), in place of marker comments.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ndar.ensemble.stacker import per_second_labels
from ndar.taxonomy import CLASSES, NUM_CLASSES
from ndar.utils.io import atomic_write_text


def confusion_per_second(
    pred: dict[str, list[tuple[int, float, float]]], truth: dict[str, list[tuple[int, float, float]]]
) -> np.ndarray:
    """(16, 16) counts of seconds: row = true class, column = predicted class (0 = nothing)."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for key, gt_segments in truth.items():
        segments = pred.get(key, [])
        seconds = int(np.ceil(max([e for _, _, e in gt_segments + segments] + [1])))
        t = per_second_labels(gt_segments, seconds)
        p = per_second_labels(segments, seconds)
        np.add.at(matrix, (t, p), 1)
    return matrix


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(png: str) -> str:
    return f"<img src='data:image/png;base64,{png}'>"


def timeline_png(
    title: str, rows: dict[str, list[tuple[int, float, float]]], duration: float | None = None
) -> str:
    """One lane per row name (e.g. "ground truth", "prediction"), legend, axis from 0 (utils.plots)."""
    from ndar.utils.plots import timeline_figure

    return _png(timeline_figure(title, rows, duration))


def confusion_png(matrix: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    names = [f"{i} {c}" for i, c in enumerate(CLASSES)]
    fig, ax = plt.subplots(figsize=(9, 8))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted class (0 = none)")
    ax.set_ylabel("true class (0 = none)")
    ax.set_xticks(range(NUM_CLASSES), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(NUM_CLASSES), names, fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title("seconds, row-normalised", fontsize=9)
    return _png(fig)


# groups of the comparison table, in the order shown
GROUPS = ("ensemble", "head", "feature_set", "baseline")


def comparison_frame(table: pd.DataFrame | str | Path, baseline: dict | None = None) -> pd.DataFrame:
    """The comparison table grouped (ensemble, heads, single feature sets, baseline), each group best
    first by A1 out-of-fold mOS, with a `best` column marking the best row of each group (★) and the
    best row overall (★★). `baseline` is the baseline's metrics.json: the reference row."""
    frame = pd.read_csv(table) if isinstance(table, (str, Path)) else table.copy()
    if baseline is not None:
        row = {
            "name": "baseline",
            "kind": "baseline",
            "method": "per-window classifier (reference)",
            "oof_mOS": (baseline.get("oof") or {}).get("mOS"),
            "test_mOS": baseline.get("mOS"),
        }
        frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
    frame["oof_mOS"] = pd.to_numeric(frame["oof_mOS"], errors="coerce")
    frame["test_mOS"] = pd.to_numeric(frame["test_mOS"], errors="coerce")
    rank = {kind: i for i, kind in enumerate(GROUPS)}
    frame["_group"] = frame["kind"].map(lambda k: rank.get(k, len(GROUPS)))
    frame = frame.sort_values(
        ["_group", "oof_mOS"], ascending=[True, False], na_position="last", kind="stable"
    )
    frame = frame.drop(columns="_group").reset_index(drop=True)
    best = pd.Series("", index=frame.index)
    for _, group in frame.groupby("kind", sort=False):
        if group["oof_mOS"].notna().any():
            best[group["oof_mOS"].idxmax()] = "★"
    if frame["oof_mOS"].notna().any():
        best[frame["oof_mOS"].idxmax()] = "★★"
    frame.insert(0, "best", best)
    return frame


def comparison_html(frame: pd.DataFrame) -> str:
    """The grouped table as HTML, the group boundaries ruled and the best rows in bold."""
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body, previous = [], None
    for row in frame.itertuples(index=False):
        record = row._asdict()
        style = []
        if previous is not None and record["kind"] != previous:
            style.append("border-top:2px solid #444")
        if record["best"]:
            style.append("font-weight:bold")
        cells = "".join(_td(v) for v in record.values())
        body.append(f"<tr style='{';'.join(style)}'>{cells}</tr>")
        previous = record["kind"]
    return f"<table class='wide'><tr>{header}</tr>{''.join(body)}</table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if np.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


def _td(value) -> str:
    """A table cell: numbers right-aligned, text left-aligned."""
    text = isinstance(value, str) and value not in ("★", "★★")
    return f"<td class='t'>{_cell(value)}</td>" if text else f"<td>{_cell(value)}</td>"


def per_class_html(frame: pd.DataFrame) -> str:
    """Per-class mOS; a class that scores 0 (never matched) gets a red row and a flag."""
    rows = []
    columns = list(frame.columns)
    for record in frame.to_dict(orient="records"):
        zero = "mos" in record and record["mos"] == 0
        flag = "<td class='flag'>scores 0</td>" if zero else "<td></td>"
        cells = "".join(_td(record[c]) for c in columns)
        rows.append(f"<tr{' class=zero' if zero else ''}>{cells}{flag}</tr>")
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "<th></th>"
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"


def zero_classes(frame: pd.DataFrame) -> list[str]:
    """Names of the classes (1..15) that score exactly 0 in a per-class mOS table."""
    if "mos" not in frame:
        return []
    hit = frame[(frame["mos"] == 0) & (frame["label"] != 0)]
    return [f"{int(r.label)} {r.name}" for r in hit.itertuples()]


def tuned_html(path: Path) -> str:
    """The tuned fusion weights and post-processing priors (tuned.yaml) as two small tables."""
    if not path.is_file():
        return "<p>no tuned.yaml beside the report</p>"
    tuned = yaml.safe_load(path.read_text()) or {}
    weights = {"curve pooling": tuned["curve_rule"]} if "curve_rule" in tuned else {}
    weights |= {f"curve: {k}": v for k, v in (tuned.get("curve_weights") or {}).items()}
    if "segment_weight" in tuned:
        weights["segment fusion"] = tuned["segment_weight"]
    parts = ["<div class='row'>", _kv_table("fusion weights", weights)]
    priors = {k: v for k, v in (tuned.get("priors") or {}).items()}
    per_class = {k: priors.pop(k) for k in list(priors) if isinstance(priors[k], (dict, list))}
    parts.append(_kv_table("post-processing priors", priors))
    for key, value in per_class.items():
        if isinstance(value, dict) and value:
            ordered = sorted(
                value.items(),
                key=lambda kv: (not str(kv[0]).isdigit(), int(kv[0]) if str(kv[0]).isdigit() else 0),
            )
            named = {f"{c} {CLASSES[int(c)]}" if str(c).isdigit() else c: v for c, v in ordered}
            parts.append(_kv_table(f"priors: {key} per class", named))
    other = {
        k: v for k, v in tuned.items() if k not in ("curve_weights", "segment_weight", "priors", "curve_rule")
    }
    if other:
        parts.append(_kv_table("other tuned settings", other))
    parts.append("</div>")
    return "".join(parts)


def _kv_table(title: str, values: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in values.items())
    return f"<table><caption>{html.escape(title)}</caption>{rows}</table>"


STYLE = (
    "<style>body{font-family:sans-serif;margin:2em;max-width:1320px} table{border-collapse:collapse;"
    "margin:0 2em 1em 0;font-size:13px} caption{font-weight:bold;text-align:left}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right} th,td.t{text-align:left}"
    "tr.zero td{color:#b00} td.flag{color:#b00;font-weight:bold} .row{display:flex;flex-wrap:wrap;"
    "align-items:flex-start} img{max-width:100%} .note{color:#555}</style>"
)
COMPARISON = ("<!--comparison-->", "<!--/comparison-->")
MAIN_JOB = ("<!--main-job-->", "<!--/main-job-->")


def write_report_html(
    path: str | Path,
    title: str,
    comparison: pd.DataFrame,
    per_class: dict[str, pd.DataFrame],
    timelines: list[tuple[str, dict[str, list[tuple[int, float, float]]]]],
    confusion: np.ndarray | None,
    notes: list[str],
) -> Path:
    """Write the self-contained HTML report (`add_main_job` later adds the main job's sections)."""
    path = Path(path)
    flagged = {name: zero_classes(frame) for name, frame in per_class.items()}
    notes = [*notes] + [
        f"{name}: class(es) scoring 0: {', '.join(names)}" for name, names in flagged.items() if names
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        STYLE + "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
        "<h2>Single sources, heads, ensemble and baseline (mOS)</h2>",
        "<p class='note'>Grouped, best first by A1 out-of-fold mOS; ★ best of its group, ★★ best overall.</p>",
        COMPARISON[0] + comparison_html(comparison_frame(comparison)) + COMPARISON[1],
        "<h2>Tuned fusion weights and post-processing priors</h2>",
        tuned_html(path.parent / "tuned.yaml"),
    ]
    for name, frame in per_class.items():
        parts += [f"<h2>Per-class mOS: {html.escape(name)}</h2>", per_class_html(frame)]
    if confusion is not None:
        parts += [
            "<h2>Confusion between classes (A1 OOF, per second)</h2>",
            _img(confusion_png(confusion)),
        ]
    if timelines:
        parts.append("<h2>Timelines</h2>")
        parts.append("<p class='note'>Class 0 (normal driving) is the background and is not drawn.</p>")
        for caption, rows in timelines:
            parts.append(f"<div>{_img(timeline_png(caption, rows))}</div>")
    parts += [*MAIN_JOB, "</body></html>"]
    return atomic_write_text(path, "\n".join(parts))


def add_main_job(
    report: str | Path,
    baseline: dict | None,
    timings: dict[str, float],
    heads: dict[str, Path],
) -> Path:
    """Add what only the main job knows to the ensemble's report: the baseline row of the comparison
    table, the stage timings and the heads' training curves (from their fold logs)."""
    from ndar.utils.plots import read_fold_logs, training_curves_figure

    report = Path(report)
    text = report.read_text()
    if not all(m in text for m in (*COMPARISON, *MAIN_JOB)):
        raise ValueError(f"{report}: not a report written by write_report_html (markers missing)")
    table = report.parent / "report.csv"
    if baseline is not None and table.is_file():
        text = _between(text, COMPARISON, comparison_html(comparison_frame(table, baseline)))
    parts = []
    if timings:
        total = sum(timings.values())
        rows = {name: f"{seconds:.1f} s" for name, seconds in timings.items()}
        rows["all stages"] = f"{total:.1f} s"
        parts += ["<h2>Stage timings of the main job</h2>", _kv_table("seconds per stage", rows)]
    curves = [
        _img(_png(training_curves_figure(logs, name)))
        for name, folder in heads.items()
        if (logs := read_fold_logs(folder))
    ]
    if curves:
        parts += ["<h2>Training curves of the heads</h2>", "<div class='row'>" + "".join(curves) + "</div>"]
    return atomic_write_text(report, _between(text, MAIN_JOB, "\n".join(parts)))


def _between(text: str, markers: tuple[str, str], body: str) -> str:
    """Replace what stands between the two marker comments (so adding twice does not repeat)."""
    before, rest = text.split(markers[0], 1)
    _, after = rest.split(markers[1], 1)
    return before + markers[0] + body + markers[1] + after
