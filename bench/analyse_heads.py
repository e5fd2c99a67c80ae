"""Why the heads sit near the baseline on some seeds: their inputs, their gain over those inputs, per seed.

python -m bench.analyse_heads [--seeds 0 1 2] [--prefix acc_s]

Reads the finished multi-seed runs of bench/bench_accuracy.py (nothing is trained):
- the window classifiers' held-out accuracy (each fold model's `val.mean_class_acc`, its held-out
  drivers), per track: what the heads get as input;
- per-second accuracy of the A1 out-of-fold curves (argmax of the curve vs the ground-truth class of
  each second, background included) and its mean over the 15 action classes, for every feature set
  and head: does a head sharpen its input curves or only copy them;
- mOS (A1 OOF / A2) of each head's own segments beside the best of its input feature sets' curves
  (priors tuned for it) and the baseline, from the ensemble's report.json.
Prints markdown tables; bench/results/accuracy.md quotes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.common import analyse_seeds

REPO = Path(__file__).resolve().parents[1]


def window_accuracy(run: Path) -> dict[str, float]:
    """track -> mean held-out mean-class accuracy of its fold models (views and folds averaged)."""
    out: dict[str, list[float]] = {}
    for metrics in sorted((run / "finetune").glob("*/metrics.json")):
        track = metrics.parent.name.split("_")[0] + "_" + metrics.parent.name.split("_")[1]
        out.setdefault(track, []).append(json.loads(metrics.read_text())["val"]["mean_class_acc"])
    return {t: float(np.mean(v)) for t, v in out.items()}


def second_accuracy(curves: dict[str, np.ndarray], truth: dict) -> tuple[float, float]:
    """(accuracy over all seconds, mean accuracy over the action classes) of the curves' argmax."""
    from ndar.ensemble.stacker import per_second_labels

    hits, per_class = [], {}
    for key, curve in curves.items():
        if key not in truth:
            continue
        labels = per_second_labels(truth[key], len(curve))
        pred = np.asarray(curve).argmax(axis=1)
        hits.append(pred == labels)
        for c in np.unique(labels[labels > 0]):
            per_class.setdefault(int(c), []).append(pred[labels == c] == c)
    overall = float(np.concatenate(hits).mean())
    classes = float(np.mean([np.concatenate(v).mean() for v in per_class.values()]))
    return overall, classes


def analyse_seed(prefix: str, seed: int) -> dict:
    from ndar.config import load_config
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.sources import load_source
    from ndar.ensemble.stage import a1_ground_truth

    run = REPO / "runs" / f"{prefix}{seed}"
    subs = REPO / "submissions" / f"{prefix}{seed}"
    cfg = load_config(EnsembleConfig, run / "configs" / "ensemble.yaml")
    truth = a1_ground_truth(cfg)
    report = json.loads((subs / "report.json").read_text())
    scores = {(r["name"], r["method"]): (r["oof_mOS"], r["test_mOS"]) for r in report}
    folders = {s.name: (s.path, s.kind) for s in cfg.sources}
    folders.update(
        {
            fs.replace("/", "_"): (subs / "sources" / fs.replace("/", "_"), "feature_set")
            for fs in cfg.feature_sets
        }
    )
    seconds = {
        name: second_accuracy(load_source(name, path, kind).oof_curves, truth)
        for name, (path, kind) in folders.items()
    }
    baseline = json.loads((run / "baseline" / "metrics.json").read_text())
    return {
        "seed": seed,
        "window_acc": window_accuracy(run),
        "second_acc": seconds,
        "scores": {f"{n} | {m}": v for (n, m), v in scores.items()},
        "baseline": ((baseline.get("oof") or {}).get("mOS"), baseline.get("mOS")),
    }


def render(results: list[dict]) -> str:
    lines = ["Window classifiers, held-out mean-class accuracy (mean of the fold models and views):", ""]
    tracks = sorted({t for r in results for t in r["window_acc"]})
    lines += ["| seed | " + " | ".join(tracks) + " |", "|---" * (len(tracks) + 1) + "|"]
    for r in results:
        lines.append(
            f"| {r['seed']} | "
            + " | ".join(f"{r['window_acc'].get(t, float('nan')):.3f}" for t in tracks)
            + " |"
        )
    lines += [
        "",
        "A1 OOF curves: per-second accuracy / mean over action classes (argmax vs ground truth):",
        "",
    ]
    names = list(results[0]["second_acc"])
    lines += [
        "| source | " + " | ".join(f"seed {r['seed']}" for r in results) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    for name in names:
        cells = [f"{r['second_acc'][name][0]:.3f} / {r['second_acc'][name][1]:.3f}" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Heads against their own inputs (mOS A1 OOF / A2):", ""]
    lines += [
        "| seed | head | head own segments | best input set, curve + tuned priors | baseline |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for key, (a1, a2) in r["scores"].items():
            name, method = key.split(" | ")
            if method != "own segments" or not any(name.startswith(h) for h in ("tim_", "actionformer_")):
                continue
            track = name.split("_", 1)[1]
            inputs = [v for k, v in r["scores"].items() if k.startswith(track + "_") and "tuned for it" in k]
            best = max(inputs, key=lambda v: v[0]) if inputs else (None, None)
            lines.append(
                f"| {r['seed']} | {name} | {a1:.3f} / {a2:.3f} | {best[0]:.3f} / {best[1]:.3f} | "
                f"{r['baseline'][0]:.3f} / {r['baseline'][1]:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    analyse_seeds(__doc__, "analyse_heads", analyse_seed, render)


if __name__ == "__main__":
    main()
