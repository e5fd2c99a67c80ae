"""report.html: the comparison table, per-class mOS, one timeline per video, class confusion.

Plots are matplotlib PNGs embedded as base64 so the report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd

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


def timeline_png(title: str, rows: dict[str, list[tuple[int, float, float]]]) -> str:
    """One horizontal lane per row name (e.g. "ground truth", "prediction"), a coloured bar per segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.6 * len(rows)))
    for lane, segments in enumerate(rows.values()):
        for label, start, end in segments:
            ax.barh(
                lane, max(end - start, 0.3), left=start, color=colours(label % 20), edgecolor="black", lw=0.3
            )
            ax.text((start + end) / 2, lane, str(label), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_xlabel("seconds")
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    return _png(fig)


def confusion_png(matrix: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted class (0 = none)")
    ax.set_ylabel("true class (0 = none)")
    ax.set_xticks(range(NUM_CLASSES))
    ax.set_yticks(range(NUM_CLASSES))
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title("seconds, row-normalised", fontsize=9)
    return _png(fig)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-", border=0)


def write_report_html(
    path: str | Path,
    title: str,
    comparison: pd.DataFrame,
    per_class: dict[str, pd.DataFrame],
    timelines: list[tuple[str, dict[str, list[tuple[int, float, float]]]]],
    confusion: np.ndarray | None,
    notes: list[str],
) -> Path:
    """Write the self-contained HTML report."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse}"
        "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
        "<h2>Single sources, heads and ensemble side by side (mOS)</h2>",
        _table(comparison),
    ]
    for name, frame in per_class.items():
        parts += [f"<h2>Per-class mOS: {html.escape(name)}</h2>", _table(frame)]
    if confusion is not None:
        names = "".join(f"<li>{i}: {html.escape(c)}</li>" for i, c in enumerate(CLASSES))
        parts += [
            "<h2>Confusion between classes (A1 OOF, per second)</h2>",
            f"<img src='data:image/png;base64,{confusion_png(confusion)}'>",
            f"<details><summary>class ids</summary><ul>{names}</ul></details>",
        ]
    if timelines:
        parts.append("<h2>Timelines</h2>")
        for caption, rows in timelines:
            parts.append(f"<div><img src='data:image/png;base64,{timeline_png(caption, rows)}'></div>")
    parts.append("</body></html>")
    return atomic_write_text(path, "\n".join(parts))
