"""`ndar.ensemble.run(cfg)`: sources -> fusion -> tuning on A1 OOF mOS -> submission + report.

Outputs in `<out_dir>/<run_name>/`: `submission.txt` (validated), `tuned.yaml` (the frozen
parameters), `tuning_history.csv`, `report.csv` / `report.json` (every single source, the heads
and the ensemble side by side, OOF and, when the A2 ground truth is known, test mOS),
`report.html`, `metrics.json`, `config.yaml`, and `done.json` (a rerun with the same config skips).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ndar.config import ConfigError, save_config, to_dict
from ndar.ensemble.config import EnsembleConfig
from ndar.ensemble.fusion import fuse_segments
from ndar.ensemble.nested import choose_and_tune
from ndar.ensemble.report import confusion_per_second, write_report_html
from ndar.ensemble.sources import PredictionSource, feature_set_digest, feature_set_source, load_source
from ndar.ensemble.stacker import fit_stacker
from ndar.ensemble.tuning import EnsembleParams, ground_truth_frame, predict, tune
from ndar.formats.features import feature_files_digest
from ndar.metrics.mos import mos
from ndar.resume import saved_settings, should_skip
from ndar.submission import read_submission, validate_submission, write_submission
from ndar.utils.io import atomic_write_text, read_json, tree_digest, write_json

log = logging.getLogger(__name__)

# settings that do not change the results: where the run folder is
RESUME_IGNORED = ("overwrite", "out_dir", "run_name")

Truth = dict[str, list[tuple[int, float, float]]]


@dataclass
class FusionInputs:
    """What `predict` needs for one split: curves per fused source and the fused segments."""

    curves: dict[str, dict[str, np.ndarray]]
    segments: pd.DataFrame | None


def collect_sources(
    cfg: EnsembleConfig, run_dir: Path, loaded: list[PredictionSource] | None = None
) -> list[PredictionSource]:
    """The configured source folders (`loaded`: already read) plus one source per feature set (built
    once, then reused)."""
    check_sources(cfg)
    sources = [load_source(s.name, s.path, s.kind) for s in cfg.sources] if loaded is None else list(loaded)
    for feature_set in cfg.feature_sets:
        name = feature_set.replace("/", "_")
        folder = run_dir / "sources" / name
        if not source_is_current(folder, cfg.features_root, feature_set):
            feature_set_source(cfg.features_root, feature_set, cfg.data_root, folder, cfg.labels_dir)
        sources.append(load_source(name, folder, "feature_set"))
    return sources


def check_sources(cfg: EnsembleConfig) -> None:
    """The config's sources can make an ensemble (reads no file)."""
    if cfg.feature_sets and (cfg.features_root is None or cfg.data_root is None):
        raise ConfigError("feature_sets needs features_root and data_root in the ensemble config")
    names = [s.name for s in cfg.sources] + [f.replace("/", "_") for f in cfg.feature_sets]
    if not names:
        raise ConfigError("the ensemble config lists no sources and no feature_sets")
    if len(set(names)) != len(names):
        raise ConfigError(f"source names repeat: {names}")


def source_is_current(folder: Path, features_root: Path, feature_set: str) -> bool:
    """A feature set's built source is reused only if it was built from the feature files now there."""
    meta = folder / "source.json"
    if not ((folder / "test" / "segments.csv").is_file() and meta.is_file()):
        return False
    if read_json(meta).get("features_sha256") != feature_set_digest(features_root, feature_set):
        log.info("%s: its feature files changed since it was built; rebuilding it", folder)
        return False
    return True


def inputs_digest(cfg: EnsembleConfig) -> str:
    """One hash of what the stage reads: the predictions of every source folder and the feature
    files of every feature set. A finished run is skipped only while it is unchanged."""
    digest = tree_digest([Path(s.path) / split for s in cfg.sources for split in ("oof", "test")])
    if cfg.features_root is not None and cfg.feature_sets:
        folders = [Path(cfg.features_root) / f for f in cfg.feature_sets]
        digest += feature_files_digest(folders)
    return digest


def a1_ground_truth(cfg: EnsembleConfig) -> Truth:
    from ndar.data.discover import load_dataset

    if cfg.data_root is None:
        raise ValueError("data_root is needed: the tuning uses the A1 ground truth")
    index = load_dataset(cfg.data_root, "A1", cfg.labels_dir)
    return {s.key: [(g.label, g.start, g.end) for g in s.segments] for s in index.sessions if s.segments}


def a2_video_ids(cfg: EnsembleConfig) -> dict[str, int]:
    """session key -> integer video id of the A2 sessions (from video_ids.csv via the dataset index)."""
    from ndar.data.discover import load_dataset

    index = load_dataset(cfg.data_root, "A2", cfg.labels_dir)
    missing = [s.key for s in index.sessions if s.video_id is None]
    if missing:
        log.warning("A2 sessions without a video id (left out of the submission): %s", missing)
    return {s.key: int(s.video_id) for s in index.sessions if s.video_id is not None}


def a2_ground_truth(cfg: EnsembleConfig, ids: dict[str, int]) -> Truth | None:
    """A2 ground truth by session key, if the file exists (submission format, video ids)."""
    path = cfg.a2_ground_truth
    if path is None and cfg.data_root is not None:
        default = Path(cfg.data_root) / "A2_ground_truth.txt"
        path = default if default.is_file() else None
    if path is None:
        return None
    key_of = {v: k for k, v in ids.items()}
    truth: Truth = {}
    for row in read_submission(path).itertuples(index=False):
        if row.video in key_of:
            truth.setdefault(key_of[row.video], []).append((int(row.label), float(row.start), float(row.end)))
    return truth


def fusion_inputs(
    cfg: EnsembleConfig, sources: list[PredictionSource], truth: Truth
) -> tuple[FusionInputs, FusionInputs]:
    """(OOF inputs, test inputs): curves of the sources (if curve fusion), the stacker, fused segments."""
    oof_curves = {s.name: s.oof_curves for s in sources} if cfg.fusion.curve else {}
    test_curves = {s.name: s.test_curves for s in sources} if cfg.fusion.curve else {}
    if cfg.fusion.stacker:
        stack_oof, stack_test = fit_stacker(
            {s.name: s.oof_curves for s in sources},
            truth,
            {s.name: s.test_curves for s in sources},
            cfg.stacker,
            cfg.seed,
        )
        oof_curves["stacker"], test_curves["stacker"] = stack_oof, stack_test
    oof_segments = test_segments = None
    if cfg.fusion.segment:
        oof_segments = fuse_segments(
            {s.name: s.oof_segments for s in sources}, min_iou=cfg.fusion.segment_min_iou
        )
        test_segments = fuse_segments(
            {s.name: s.test_segments for s in sources}, min_iou=cfg.fusion.segment_min_iou
        )
    if not oof_curves and oof_segments is None:
        raise ValueError("every fusion is switched off (fusion.curve, fusion.segment, fusion.stacker)")
    return FusionInputs(oof_curves, oof_segments), FusionInputs(test_curves, test_segments)


def start_params(cfg: EnsembleConfig, oof: FusionInputs) -> EnsembleParams:
    """The untuned ensemble: equal curve weights, the configured pooling rule, segment weight and priors."""
    return EnsembleParams(
        curve_weights={name: 1.0 for name in oof.curves},
        segment_weight=cfg.fusion.segment_weight if oof.segments is not None else 0.0,
        priors=copy.deepcopy(cfg.priors),
        curve_rule=cfg.fusion.curve_rule,
    )


def best_per_class(segments: pd.DataFrame) -> pd.DataFrame:
    """The highest-scored segment per (video, class): how a source's own segments are scored."""
    ordered = segments.sort_values(["score", "start"], ascending=[False, True], kind="stable")
    return ordered.drop_duplicates(["video", "label"]).reset_index(drop=True)


def score(pred: pd.DataFrame, truth: Truth | None) -> float | None:
    """mOS of predictions keyed by session over the sessions of `truth` (None when unknown)."""
    if not truth:
        return None
    pred = pred[pred["video"].astype(str).isin(set(truth))]
    return float(mos(ground_truth_frame(truth), pred).mos)


def _row(name, kind, method, oof_pred, test_pred, truth, test_truth) -> dict:
    return {
        "name": name,
        "kind": kind,
        "method": method,
        "oof_mOS": score(oof_pred, truth),
        "test_mOS": score(test_pred, test_truth),
    }


def single_source_rows(cfg, sources, tuned, truth, test_truth) -> list[dict]:
    """Each source alone: its own segments, and its curve through the priors (tuned for it alone)."""
    rows = []
    single_cfg = dataclasses.replace(cfg.tuning, per_class_thresholds=cfg.tuning.single_source_per_class)
    for s in sources:
        rows.append(
            _row(
                s.name,
                s.kind,
                "own segments",
                best_per_class(s.oof_segments),
                best_per_class(s.test_segments),
                truth,
                test_truth,
            )
        )
        params = EnsembleParams(curve_weights={s.name: 1.0}, priors=copy.deepcopy(cfg.priors))
        method = "curve + default priors"
        if cfg.tuning.tune_single_sources:
            params, _ = tune(
                {s.name: s.oof_curves},
                None,
                truth,
                params,
                single_cfg,
                cfg.seed,
                rounds=cfg.tuning.single_source_rounds,
            )
            method = "curve + priors tuned for it"
        rows.append(
            _row(
                s.name,
                s.kind,
                method,
                predict({s.name: s.oof_curves}, None, params),
                predict({s.name: s.test_curves}, None, params),
                truth,
                test_truth,
            )
        )
    return rows


def ensemble_rows(oof: FusionInputs, test: FusionInputs, start, tuned, truth, test_truth) -> list[dict]:
    """Each fusion alone with the tuned priors, the untuned start, and the tuned ensemble."""
    rows = []
    if "stacker" in oof.curves:
        alone = EnsembleParams(curve_weights={"stacker": 1.0}, priors=tuned.priors)
        rows.append(
            _row(
                "stacker",
                "ensemble",
                "stacker alone, tuned priors",
                predict(oof.curves, None, alone),
                predict(test.curves, None, alone),
                truth,
                test_truth,
            )
        )
    if oof.segments is not None:
        alone = EnsembleParams(curve_weights={}, segment_weight=1.0, priors=tuned.priors)
        rows.append(
            _row(
                "segment fusion",
                "ensemble",
                "segment fusion alone, tuned priors",
                predict({}, oof.segments, alone),
                predict({}, test.segments, alone),
                truth,
                test_truth,
            )
        )
    rows.append(
        _row(
            "ensemble (untuned)",
            "ensemble",
            f"equal weights, {start.curve_rule} pooling, segment weight {start.segment_weight:g}, start priors",
            predict(oof.curves, oof.segments, start),
            predict(test.curves, test.segments, start),
            truth,
            test_truth,
        )
    )
    rows.append(
        _row(
            "ensemble",
            "ensemble",
            "tuned on A1 OOF mOS",
            predict(oof.curves, oof.segments, tuned),
            predict(test.curves, test.segments, tuned),
            truth,
            test_truth,
        )
    )
    return rows


def check_not_empty(
    test_pred: pd.DataFrame, tuned: EnsembleParams, history: list[dict], run_dir: Path
) -> None:
    """Refuse to write a submission without a single segment, saying why it came out empty.

    The tuned post-processing keeps only the curve runs above its thresholds; sources that never
    learned (near-uniform probabilities, about 1/16) can stay below them on every A2 session."""
    if len(test_pred):
        return
    best = max((row["mOS"] for row in history), default=float("nan"))
    raise ValueError(
        f"the tuned post-processing gives no segment on any A2 session (threshold "
        f"{tuned.priors.threshold}, A1 OOF mOS {best:.3f}): the sources' A2 probabilities stay below "
        f"it, so the models have probably not learned; see {run_dir / 'tuned.yaml'} and "
        f"{run_dir / 'tuning_history.csv'}, and the fine-tuning and heads logs"
    )


def to_submission(pred: pd.DataFrame, ids: dict[str, int]) -> pd.DataFrame:
    """Session keys -> integer video ids; sessions without an id are left out (warned about earlier)."""
    known = pred[pred["video"].isin(set(ids))]
    return known.assign(video=known["video"].map(ids).astype(int))[["video", "label", "start", "end"]]


def _segments_by_key(pred: pd.DataFrame) -> Truth:
    out: Truth = {}
    for r in pred.itertuples(index=False):
        out.setdefault(str(r.video), []).append((int(r.label), float(r.start), float(r.end)))
    return out


def selection_notes(selection: dict) -> list[str]:
    """What the tuning kept and why, in words for the report."""
    notes = [f"tuning level kept: {selection['level']} ({selection['reason']})"]
    if "tuned_mOS" in selection:
        notes.append(
            f"A1 mOS of the kept tuning: in sample {selection['in_sample_mOS']:.3f}, nested "
            f"{selection['folds']}-fold by driver {selection['tuned_mOS']:.3f} (untuned "
            f"{selection['untuned_mOS']:.3f}); nested by level: "
            + ", ".join(f"{lv} {e['nested_mOS']:.3f}" for lv, e in selection["levels"].items())
        )
    kept = selection.get("kept") or {}
    notes.append(
        "parameters moved from the start: " + (", ".join(f"{k}={v}" for k, v in kept.items()) or "none")
    )
    return notes


def nested_rows(selection: dict) -> list[dict]:
    """The nested estimates as rows of the comparison table (A1 only: they are estimates of A2)."""
    rows = []
    for level, est in (selection.get("levels") or {}).items():
        rows.append(
            {
                "name": f"ensemble, nested CV: {level}",
                "kind": "ensemble",
                "method": "tuned on k-1 driver folds, scored on the held-out fold"
                + (" (kept)" if level == selection["level"] else ""),
                "oof_mOS": est["nested_mOS"],
                "test_mOS": None,
            }
        )
    return rows


def write_report(cfg, run_dir, table, oof_pred, test_pred, truth, test_truth, ids, selection=None) -> Path:
    per_class = {"A1 OOF": mos(ground_truth_frame(truth), oof_pred).per_class}
    if test_truth:
        per_class["A2 test"] = mos(
            ground_truth_frame(test_truth), test_pred[test_pred["video"].isin(set(test_truth))]
        ).per_class
    oof_by_key, test_by_key = _segments_by_key(oof_pred), _segments_by_key(test_pred)
    timelines = []
    for key in sorted(ids)[: cfg.report_timelines]:
        rows = {"prediction": test_by_key.get(key, [])}
        if test_truth and key in test_truth:
            rows = {"ground truth": test_truth[key], **rows}
        timelines.append((f"A2 session {key} (video id {ids[key]})", rows))
    for key in sorted(truth)[: max(0, cfg.report_timelines - len(timelines))]:
        timelines.append(
            (f"A1 session {key} (OOF)", {"ground truth": truth[key], "prediction": oof_by_key.get(key, [])})
        )
    notes = [
        f"run {cfg.run_name}",
        f"submission: {run_dir / 'submission.txt'}",
        "mOS: official overlap score (docs/metrics.md); OOF = A1 out-of-fold; test = A2 when its ground truth is known",
        *selection_notes(selection or {"level": "-", "reason": "-"}),
    ]
    return write_report_html(
        run_dir / "report.html",
        f"ndar ensemble: {cfg.run_name}",
        table,
        per_class,
        timelines,
        confusion_per_second(oof_by_key, truth),
        notes,
    )


def run(cfg: EnsembleConfig) -> dict:
    """Fuse, tune, predict A2, write and validate the submission, write the reports; returns metrics."""
    run_dir = Path(cfg.out_dir) / cfg.run_name
    done_path = run_dir / "done.json"
    saved = saved_settings(run_dir / "config.yaml")
    inputs = inputs_digest(cfg)
    complete = done_path.is_file() and read_json(done_path).get("inputs_sha256") == inputs
    if done_path.is_file() and not complete:
        log.info("ensemble: %s was made from other source or feature files; redoing it", run_dir)
    if should_skip("ensemble", run_dir, cfg, saved, complete, cfg.overwrite, RESUME_IGNORED):
        return read_json(done_path)["result"]
    # read before this run records its settings: a wrong source path fails without leaving a config
    # that would refuse the corrected command as "other settings"
    heads = [load_source(s.name, s.path, s.kind) for s in cfg.sources]
    run_dir.mkdir(parents=True, exist_ok=True)
    # a done.json left by an earlier run must not outlive this one: if this run fails, a resume with
    # its settings would otherwise find that record (same inputs) and skip, returning the old result
    done_path.unlink(missing_ok=True)
    save_config(cfg, run_dir / "config.yaml")

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    sources = collect_sources(cfg, run_dir, heads)
    truth = a1_ground_truth(cfg)
    ids = a2_video_ids(cfg)
    test_truth = a2_ground_truth(cfg, ids)
    lap("load_s")
    oof, test = fusion_inputs(cfg, sources, truth)
    lap("fusion_and_stacker_s")

    start = start_params(cfg, oof)
    tuned, history, selection = choose_and_tune(oof.curves, oof.segments, truth, start, cfg.tuning, cfg.seed)
    write_json(run_dir / "tuning_selection.json", selection)
    atomic_write_text(run_dir / "tuned.yaml", yaml.safe_dump(to_dict(tuned), sort_keys=False))
    atomic_write_text(run_dir / "tuning_history.csv", pd.DataFrame(history).to_csv(index=False))
    lap("tuning_s")

    oof_pred = predict(oof.curves, oof.segments, tuned)
    test_pred = predict(test.curves, test.segments, tuned)
    check_not_empty(test_pred, tuned, history, run_dir)
    submission = write_submission(run_dir / "submission.txt", to_submission(test_pred, ids))
    problems = validate_submission(submission, video_ids=set(ids.values()))
    if problems:
        raise ValueError(f"the written submission {submission} is invalid: " + "; ".join(problems))
    lap("predict_s")

    table = pd.DataFrame(
        single_source_rows(cfg, sources, tuned, truth, test_truth)
        + ensemble_rows(oof, test, start, tuned, truth, test_truth)
        + nested_rows(selection)
    )
    atomic_write_text(run_dir / "report.csv", table.to_csv(index=False, float_format="%.6f"))
    write_json(run_dir / "report.json", table.to_dict(orient="records"))
    lap("comparison_table_s")
    report = write_report(cfg, run_dir, table, oof_pred, test_pred, truth, test_truth, ids, selection)
    lap("report_html_s")

    ensemble_row = table[table["name"] == "ensemble"].iloc[0]
    result = {
        "submission": str(submission),
        "report": str(report),
        "oof_mOS": float(ensemble_row["oof_mOS"]),
        "test_mOS": None
        if ensemble_row["test_mOS"] is None or pd.isna(ensemble_row["test_mOS"])
        else float(ensemble_row["test_mOS"]),
        "n_test_segments": int(len(to_submission(test_pred, ids))),
        "nested": selection,
        "timings": timings,
    }
    write_json(run_dir / "metrics.json", result)
    resolved = json.loads(json.dumps(to_dict(cfg), default=str))
    write_json(done_path, {"config": resolved, "result": result, "inputs_sha256": inputs})
    log.info(
        "ensemble %s: OOF mOS %.4f, test mOS %s -> %s",
        cfg.run_name,
        result["oof_mOS"],
        result["test_mOS"],
        submission,
    )
    return result
