"""Where the ensemble loses mOS: missed activities, false alarms, or loose boundaries, per seed.

python -m bench.analyse_errors [--seeds 0 1 2] [--prefix acc_s]

Reads the finished multi-seed runs of bench/bench_accuracy.py (nothing is trained) and scores the
untuned ensemble on A1 out of fold and the submission's tuned parameters (tuned.yaml; A1 in sample)
and A2, and splits each score into its parts. The official score is sum(os of matched pairs) /
(predictions + unmatched ground truths), so three things cost: a missed activity (FN: one more in the
denominator), a false alarm (FP: one more) and a loose boundary (a matched pair's overlap below 1).
For each it prints the score with that cost removed: every matched pair at overlap 1, no false
alarms, and the mean overlap of the pairs; plus the per-class mOS (mean over seeds), which names the
activities the ensemble misses, and per source the mean probability it gives the true class over
that class's seconds, which says whether any input still sees them. Why: it says which stage a gain has to come from
(post-processing can trade FN for FP, only better window classifiers find what no curve shows).
Prints markdown; writes bench/out/analyse_errors.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.common import analyse_seeds

REPO = Path(__file__).resolve().parents[1]


def decompose(pred, truth: dict) -> dict:
    """The score of `pred` over the sessions of `truth` and its parts (see the module docstring)."""
    from ndar.ensemble.stage import ground_truth_frame
    from ndar.metrics.mos import mos

    pred = pred[pred["video"].astype(str).isin(set(truth))]
    result = mos(ground_truth_frame(truth), pred)
    n_fp, n_fn = result.n_pred - result.n_matched, result.n_gt - result.n_matched
    denominator = result.n_pred + n_fn
    overlap = result.matches["os"]
    return {
        "mOS": result.mos,
        "n_gt": result.n_gt,
        "n_pred": result.n_pred,
        "n_matched": result.n_matched,
        "fp": n_fp,
        "fn": n_fn,
        "mean_overlap": float(overlap.mean()) if len(overlap) else 0.0,
        "if_overlap_1": result.n_matched / denominator if denominator else 1.0,
        "if_no_fp": float(overlap.sum()) / result.n_gt if result.n_gt else 1.0,
        "per_class": dict(zip(result.per_class["label"].astype(int), result.per_class["mos"].astype(float))),
    }


def true_class_probability(
    curves: dict[str, dict[str, np.ndarray]], truth: dict
) -> dict[str, dict[int, float]]:
    """source -> class -> mean probability the source gives the true class over that class's seconds
    (A1 out of fold): which inputs still see an activity that the ensemble misses."""
    from ndar.ensemble.stacker import per_second_labels

    out: dict[str, dict[int, list[float]]] = {}
    for name, by_key in curves.items():
        for key, curve in by_key.items():
            if key not in truth:
                continue
            labels = per_second_labels(truth[key], len(curve))  # (S,)
            for c in np.unique(labels[labels > 0]):
                out.setdefault(name, {}).setdefault(int(c), []).append(
                    float(np.asarray(curve)[labels == c, c].mean())
                )
    return {name: {c: float(np.mean(v)) for c, v in by_class.items()} for name, by_class in out.items()}


def analyse_seed(prefix: str, seed: int) -> dict:
    """The untuned start on A1 OOF and the tuned submission's parameters on A1 (in sample) and A2."""
    from bench.sweep_tuning import load_inputs, seed_config
    from ndar.config import load_config
    from ndar.ensemble.config import EnsembleConfig
    from ndar.ensemble.stage import start_params
    from ndar.ensemble.tuning import EnsembleParams, predict

    cfg = load_config(EnsembleConfig, seed_config(prefix, seed), [])
    oof, test, truth, test_truth = load_inputs(prefix, seed)
    start = start_params(cfg, oof)
    tuned_path = REPO / "submissions" / f"{prefix}{seed}" / "tuned.yaml"
    tuned = load_config(
        EnsembleParams, tuned_path, []
    )  # FileNotFoundError naming it if the run is unfinished
    return {
        "seed": seed,
        "untuned A1 OOF": decompose(predict(oof.curves, oof.segments, start), truth),
        "tuned A1 (in sample)": decompose(predict(oof.curves, oof.segments, tuned), truth),
        "tuned A2": decompose(predict(test.curves, test.segments, tuned), test_truth),
        "true_class_probability": true_class_probability(oof.curves, truth),
    }


def render(results: list[dict]) -> str:
    """One row per (seed, what), then the per-class mOS averaged over seeds."""
    lines = [
        "| seed | what | mOS | GT | pred | matched | FN | FP | mean overlap | if overlap 1 | if no FP |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for what in ("untuned A1 OOF", "tuned A1 (in sample)", "tuned A2"):
            d = r[what]
            lines.append(
                f"| {r['seed']} | {what} | {d['mOS']:.3f} | {d['n_gt']} | {d['n_pred']} | {d['n_matched']} | "
                f"{d['fn']} | {d['fp']} | {d['mean_overlap']:.3f} | {d['if_overlap_1']:.3f} | {d['if_no_fp']:.3f} |"
            )
    classes = sorted({c for r in results for c in r["untuned A1 OOF"]["per_class"]})
    lines += ["", "| class | " + " | ".join(str(c) for c in classes) + " |"]
    lines.append("|---" * (len(classes) + 1) + "|")
    for what in ("untuned A1 OOF", "tuned A2"):
        means = [np.mean([r[what]["per_class"].get(c, 0.0) for r in results]) for c in classes]
        lines.append(f"| {what} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    lines += ["", "Mean probability of the true class over its seconds, A1 out of fold, mean over seeds:", ""]
    lines += ["| source | " + " | ".join(str(c) for c in classes) + " |", "|---" * (len(classes) + 1) + "|"]
    for name in sorted(results[0]["true_class_probability"]):
        probs = [np.mean([r["true_class_probability"][name].get(c, 0.0) for r in results]) for c in classes]
        lines.append(f"| {name} | " + " | ".join(f"{p:.2f}" for p in probs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    analyse_seeds(__doc__, "analyse_errors", analyse_seed, render)


if __name__ == "__main__":
    main()
