"""Figures shared by the notebooks and the HTML report, so both draw a run the same way.

Timelines: one lane per row (ground truth, prediction, ...), a bar per segment coloured by class with
a legend of the classes drawn, the x axis from 0 to the session's end; class 0 ("normal driving") is
the background, never drawn as an activity. Training curves read the `metrics.csv` of the shared run
logger (`train/loss`, `val/loss`, epochs from 1).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ndar.taxonomy import CLASSES

Segments = list[tuple[int, float, float]]  # (class, start s, end s)


def _pyplot():
    """pyplot on the Agg backend: figures are only ever saved or shown as PNGs (`show`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def class_colour(label: int):
    """A fixed colour per class (tab20), the same in every figure."""
    return _pyplot().get_cmap("tab20")(label % 20)


def timeline_figure(title: str, rows: dict[str, Segments], duration: float | None = None):
    """One lane per row name, a coloured bar per segment of classes 1..15, legend with the class names."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(12, 0.9 + 0.45 * len(rows)))
    shown: set[int] = set()
    end = 0.0
    for lane, segments in enumerate(rows.values()):
        for label, start, stop in segments:
            end = max(end, stop)
            if label == 0:  # normal driving is the background, not an activity
                continue
            ax.barh(lane, max(stop - start, 0.3), left=start, height=0.7, color=class_colour(label), lw=0)
            shown.add(label)
    ax.set_yticks(range(len(rows)), list(rows))
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max(duration or 0.0, end, 1.0))
    ax.set_xlabel("seconds from the start of the session")
    ax.set_title(title, fontsize=9, loc="left")
    handles = [Patch(color=class_colour(c), label=f"{c} {CLASSES[c]}") for c in sorted(shown)]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return fig


def per_class_figure(values: dict[int, float], title: str, xlabel: str = "AP"):
    """Horizontal bars with the full class names; a class at exactly 0 is marked in red."""
    plt = _pyplot()
    labels = sorted(values)
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(labels) + 1))
    scores = [values[c] for c in labels]
    colours = ["tab:red" if v == 0 else "tab:blue" for v in scores]
    ax.barh([f"{c} {CLASSES[c]}" for c in labels], scores, color=colours)
    for y, v in enumerate(scores):
        if v == 0:
            ax.text(0.01, y, "0: never found", va="center", fontsize=7, color="tab:red")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def read_fold_logs(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """fold name -> the fold's training log (`folds/fold_<k>/metrics.csv` of a heads run)."""
    return {
        path.parent.name: pd.read_csv(path) for path in sorted(Path(run_dir).glob("folds/fold_*/metrics.csv"))
    }


def training_curves_figure(logs: dict[str, pd.DataFrame], title: str):
    """Training loss per fold (solid) and validation loss where logged (dashed, dots), per epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3))
    for i, (fold, frame) in enumerate(logs.items()):
        colour = plt.get_cmap("tab10")(i % 10)
        if "train/loss" in frame:
            ax.plot(frame["epoch"], frame["train/loss"], color=colour, label=f"{fold} train")
        if "val/loss" in frame:
            val = frame.dropna(subset=["val/loss"])
            ax.plot(val["epoch"], val["val/loss"], "o--", color=colour, label=f"{fold} val")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.title.set_fontsize(9)
    if logs:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def show(fig) -> None:
    """Display a figure in a notebook as a PNG and free it. Rendered here rather than left to the
    inline backend, which the report's Agg figures switch off in the same kernel."""
    import io

    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    _pyplot().close(fig)
    display(Image(data=buffer.getvalue()))
