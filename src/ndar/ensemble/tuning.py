"""Fused prediction with tunable parameters, and coordinate-ascent tuning on the OOF mOS.

`EnsembleParams` holds everything the tuner chooses: a curve weight per source (optionally per
class), the weight of the segment-fusion candidates, and the post-processing priors. `predict`
turns sources into final segments with them; `tune` maximises the real mOS (ndar.metrics.mos) over
the A1 out-of-fold sessions by coordinate ascent: each parameter in turn is set to the best value
of its grid, the others held fixed; a change is kept only if it improves the score by more than
`min_gain`. Later rounds visit the parameters in an order shuffled with the seed, so the search is
deterministic. How much freedom the tuner gets is chosen out of sample by ndar.ensemble.nested.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ndar.config import ConfigError
from ndar.ensemble.fusion import fuse_curves
from ndar.metrics.mos import mos_value
from ndar.postprocess.priors import PriorParams, candidates_from_curve, finish_segments, segments_priors
from ndar.taxonomy import NUM_CLASSES, SCORED_CLASSES

log = logging.getLogger(__name__)

SEGMENT_COLUMNS = ["video", "label", "start", "end", "score"]
LEVELS = ("none", "priors", "weights", "class_thresholds")  # levels of freedom (ndar.ensemble.nested)


@dataclass
class TuningConfig:
    """What the tuner searches and how long."""

    rounds: int = 2
    """coordinate-ascent rounds over all parameters"""
    weight_grid: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0])
    """curve-fusion weights tried per source"""
    segment_weight_grid: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])
    """weights tried for the segment-fusion candidates (0 = off)"""
    threshold_grid: list[float] = field(default_factory=lambda: [0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    """probability thresholds tried (global, then per class)"""
    smooth_grid: list[int] = field(default_factory=lambda: [1, 3, 5, 9])
    """moving-average windows tried (seconds)"""
    merge_gap_grid: list[float] = field(default_factory=lambda: [0.0, 2.0, 5.0, 8.0, 10.0])
    """merge gaps tried (seconds)"""
    min_dur_grid: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0])
    """minimum durations tried (seconds)"""
    max_dur_grid: list[float] = field(default_factory=lambda: [15.0, 20.0, 30.0, 45.0])
    """maximum durations tried (seconds)"""
    per_class_thresholds: bool = True
    """also tune one threshold per class"""
    per_class_weights: bool = False
    """also tune source weights per class (many more evaluations)"""
    tune_reassign: bool = True
    """also try reassigning leftover pieces to missing classes"""
    tune_fill: bool = True
    """also try filling classes that are still missing (fill_missing, fill_min, fill_len)"""
    fill_min_grid: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2])
    """minimum mean probabilities tried for filled-in segments"""
    fill_len_grid: list[float] = field(default_factory=lambda: [4.0, 8.0, 12.0])
    """lengths tried for filled-in segments (seconds)"""
    tune_single_sources: bool = True
    """tune the priors of every single source too, for a fair side-by-side report"""
    single_source_rounds: int = 1
    """rounds for the single-source tuning"""
    single_source_per_class: bool = False
    """per-class thresholds in the single-source tuning too (fairer, 15 x grid more evaluations each)"""
    tune_weights: bool = True
    """tune the source weights and the segment weight (off: equal weights, segment fusion as started)"""
    min_gain: float = 0.0
    """a parameter change is kept only if it raises the OOF mOS by more than this (0 = any gain):
    on 16 sessions a gain of a few thousandths is mostly noise, and every kept change is freedom"""
    nested_folds: int = 3
    """k of the nested cross-validation by driver that estimates what tuning gains out of sample
    and chooses the level of freedom (0 = no nested estimate; the last of `levels` is tuned)"""
    levels: list[str] = field(default_factory=lambda: ["none", "priors", "weights", "class_thresholds"])
    """levels of freedom tried, simplest first (ndar.ensemble.nested.LEVELS); the stage keeps the
    one with the best nested estimate, a freer one only if it wins by more than `level_margin`"""
    level_margin: float = 0.0
    """how much (nested mOS) a freer level must beat a simpler one by to be kept"""

    def __post_init__(self) -> None:
        """Refused when loaded: the stage would otherwise fail only after the sources and the stacker."""
        unknown = [level for level in self.levels if level not in LEVELS]
        if unknown or not self.levels:
            raise ConfigError(f"levels {self.levels}: expected one or more of {list(LEVELS)}")
        if self.nested_folds == 1 or self.nested_folds < 0:
            raise ConfigError(f"nested_folds={self.nested_folds}: use 0 (off) or k >= 2")


@dataclass
class EnsembleParams:
    """The tuned values: frozen into tuned.yaml."""

    curve_weights: dict[str, float] = field(default_factory=dict)
    """curve-fusion weight per source name ("stacker" included when on)"""
    class_weights: dict[str, dict[int, float]] = field(default_factory=dict)
    """per-class weight overrides: source -> class -> weight"""
    segment_weight: float = 0.0
    """multiplier of segment-fusion candidate scores (0 = segment fusion off)"""
    priors: PriorParams = field(default_factory=PriorParams)
    """post-processing"""
    curve_rule: str = "mean"
    """how the curves are pooled (ndar.ensemble.fusion.CURVE_RULES); not tuned, set from
    `fusion.curve_rule` (a tuned.yaml without it was written with the mean)"""

    def weight_vector(self, source: str) -> np.ndarray:
        vector = np.full(NUM_CLASSES, float(self.curve_weights.get(source, 0.0)))
        for label, weight in self.class_weights.get(source, {}).items():
            vector[int(label)] = float(weight)
        return vector  # (16,)


def ground_truth_frame(ground_truth: dict[str, list[tuple[int, float, float]]]) -> pd.DataFrame:
    rows = [(key, int(lab), float(s), float(e)) for key, segs in ground_truth.items() for lab, s, e in segs]
    return pd.DataFrame(rows, columns=["video", "label", "start", "end"])


def fused_curves(curves: dict[str, dict[str, np.ndarray]], params: EnsembleParams) -> dict[str, np.ndarray]:
    """Curve fusion with the params' weights (sources with all-zero weights left out)."""
    weights = {name: params.weight_vector(name) for name in curves}
    active = {name: c for name, c in curves.items() if weights[name].sum() > 0}
    return fuse_curves(active, {n: weights[n] for n in active}, params.curve_rule) if active else {}


Candidates = list[tuple[int, float, float, float]]


def segments_by_video(fused_segments: pd.DataFrame | None) -> dict[str, Candidates]:
    """{video: [(label, start, end, score), ...]} in the frame's row order, as plain tuples.

    Why: the tuner scores every session at every step; walking a DataFrame there took a third of the
    tuning's time, so the fused segments are grouped and converted once."""
    if fused_segments is None:
        return {}
    by_video: dict[str, Candidates] = {}
    columns = (fused_segments[c].tolist() for c in ("video", "label", "start", "end", "score"))
    for video, label, start, end, score in zip(*columns, strict=True):
        by_video.setdefault(str(video), []).append((int(label), float(start), float(end), float(score)))
    return by_video


def segments_for_session(
    curve: np.ndarray | None, fused_segments: Candidates | None, params: EnsembleParams
) -> Candidates:
    """Candidates from the fused curve and (weighted) from segment fusion, then the priors."""
    priors = params.priors
    candidates: Candidates = []
    if curve is not None:
        smoothed, chosen = candidates_from_curve(curve, priors)
        for label, a, b in chosen:
            lo, hi = int(a), max(int(np.ceil(b)), int(a) + 1)
            candidates.append((label, a, b, float(smoothed[lo:hi, label].mean())))
    if fused_segments and params.segment_weight > 0:
        weight = params.segment_weight
        scaled = [(label, a, b, score * weight) for label, a, b, score in fused_segments]
        no_rounding = copy.copy(priors)
        no_rounding.integer_seconds = False
        no_rounding.resolve_overlaps = False
        candidates.extend(segments_priors(scaled, no_rounding))
    if priors.one_per_class:
        best: dict[int, tuple] = {}
        for seg in sorted(candidates, key=lambda s: (-s[3], s[1])):
            best.setdefault(seg[0], seg)
        candidates = list(best.values())
    return finish_segments(candidates, priors)


def predict(
    curves: dict[str, dict[str, np.ndarray]],
    fused_segments: pd.DataFrame | dict[str, Candidates] | None,
    params: EnsembleParams,
    keys: list[str] | None = None,
    fused: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Final segments of every session: DataFrame[video,label,start,end,score] (video = session key).

    `fused_segments`: the segment-fusion frame, or it already grouped by `segments_by_video`."""
    return pd.DataFrame(predict_rows(curves, fused_segments, params, keys, fused), columns=SEGMENT_COLUMNS)


def predict_rows(
    curves: dict[str, dict[str, np.ndarray]],
    fused_segments: pd.DataFrame | dict[str, Candidates] | None,
    params: EnsembleParams,
    keys: list[str] | None = None,
    fused: dict[str, np.ndarray] | None = None,
) -> list[tuple]:
    """`predict` as a list of (video, label, start, end, score) tuples: what the tuner scores at every
    step, without building a DataFrame."""
    fused = fused_curves(curves, params) if fused is None else fused
    by_video = fused_segments if isinstance(fused_segments, dict) else segments_by_video(fused_segments)
    keys = sorted(set(fused) | set(by_video)) if keys is None else keys
    rows = []
    for key in keys:
        segs = segments_for_session(fused.get(key), by_video.get(key), params)
        rows.extend((key, *seg) for seg in segs)
    return rows


@dataclass
class _Coordinate:
    name: str
    grid: list
    get: Callable[[EnsembleParams], object]
    set: Callable[[EnsembleParams, object], None]


def _prior_coordinate(attr: str, grid) -> _Coordinate:
    """A coordinate over one field of the post-processing priors."""
    return _Coordinate(attr, grid, lambda p: getattr(p.priors, attr), lambda p, v: setattr(p.priors, attr, v))


def _coordinates(sources: list[str], has_segments: bool, cfg: TuningConfig) -> list[_Coordinate]:
    coords = []

    def weight(name: str) -> _Coordinate:
        def setter(p: EnsembleParams, v: object) -> None:
            p.curve_weights[name] = float(v)

        return _Coordinate(
            f"weight[{name}]", cfg.weight_grid, lambda p: p.curve_weights.get(name, 0.0), setter
        )

    if len(sources) > 1 and cfg.tune_weights:
        coords += [weight(name) for name in sources]
    if has_segments and cfg.tune_weights:
        coords.append(
            _Coordinate(
                "segment_weight",
                cfg.segment_weight_grid,
                lambda p: p.segment_weight,
                lambda p, v: setattr(p, "segment_weight", float(v)),
            )
        )
    prior_grids = [
        ("smooth", cfg.smooth_grid),
        ("threshold", cfg.threshold_grid),
        ("merge_gap", cfg.merge_gap_grid),
        ("min_dur", cfg.min_dur_grid),
        ("max_dur", cfg.max_dur_grid),
    ]
    if cfg.tune_reassign:
        prior_grids.append(("reassign", [False, True]))
    if cfg.tune_fill:
        prior_grids += [
            ("fill_missing", [False, True]),
            ("fill_min", cfg.fill_min_grid),
            ("fill_len", cfg.fill_len_grid),
        ]
    coords += [_prior_coordinate(attr, grid) for attr, grid in prior_grids]
    if cfg.per_class_thresholds:
        for label in SCORED_CLASSES:
            coords.append(
                _Coordinate(
                    f"threshold[{label}]",
                    cfg.threshold_grid,
                    lambda p, c=label: p.priors.class_threshold(c),
                    lambda p, v, c=label: p.priors.class_thresholds.__setitem__(c, float(v)),
                )
            )
    if cfg.per_class_weights and cfg.tune_weights and len(sources) > 1:
        for name in sources:
            for label in SCORED_CLASSES:
                coords.append(
                    _Coordinate(
                        f"weight[{name}][{label}]",
                        cfg.weight_grid,
                        lambda p, n=name, c=label: float(p.weight_vector(n)[c]),
                        lambda p, v, n=name, c=label: p.class_weights.setdefault(n, {}).__setitem__(
                            c, float(v)
                        ),
                    )
                )
    return coords


class OofScorer:
    """mOS of a parameter set on the OOF sessions, caching the fused curves per weight setting."""

    def __init__(self, curves, fused_segments, ground_truth, keys):
        self.curves = curves
        self.fused_segments = segments_by_video(fused_segments)
        self.gt = [(k, int(lab), float(a), float(b)) for k in keys for lab, a, b in ground_truth[k]]
        self.keys = keys
        self._cache: dict[tuple, dict[str, np.ndarray]] = {}
        self.evaluations = 0

    def _fused(self, params: EnsembleParams) -> dict[str, np.ndarray]:
        key = (params.curve_rule, *(tuple(params.weight_vector(n).round(6)) for n in sorted(self.curves)))
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = fused_curves(self.curves, params)
        return self._cache[key]

    def __call__(self, params: EnsembleParams) -> float:
        self.evaluations += 1
        rows = predict_rows(self.curves, self.fused_segments, params, self.keys, fused=self._fused(params))
        return mos_value(self.gt, [row[:4] for row in rows])


def scored_keys(
    curves: dict[str, dict[str, np.ndarray]], truth: dict, segments: pd.DataFrame | None = None
) -> list[str]:
    """A1 sessions the tuner scores: with ground truth and a curve of some source or a fused segment.

    Why the segments: with curve fusion and the stacker off they are the only predictions, and a
    rule on curves alone left no session to tune on."""
    predicted = set(segments["video"].astype(str)) if segments is not None else set()
    return sorted(k for k in truth if k in predicted or any(k in c for c in curves.values()))


def _usable(params: EnsembleParams, sources: list[str]) -> bool:
    return params.segment_weight > 0 or any(params.weight_vector(n).sum() > 0 for n in sources)


def tune(
    curves: dict[str, dict[str, np.ndarray]],
    fused_segments: pd.DataFrame | None,
    ground_truth: dict[str, list[tuple[int, float, float]]],
    start: EnsembleParams,
    cfg: TuningConfig,
    seed: int = 0,
    rounds: int | None = None,
) -> tuple[EnsembleParams, list[dict]]:
    """(best params, history rows {round, parameter, value, mOS}) by coordinate ascent on OOF mOS."""
    keys = scored_keys(curves, ground_truth, fused_segments)
    if not keys:
        raise ValueError("tuning: no OOF session has both predictions and ground truth")
    scorer = OofScorer(curves, fused_segments, ground_truth, keys)
    sources = sorted(curves)
    best = copy.deepcopy(start)
    for name in sources:
        best.curve_weights.setdefault(name, 1.0)
    best_score = scorer(best)
    history = [{"round": 0, "parameter": "start", "value": None, "mOS": best_score}]
    coords = _coordinates(sources, fused_segments is not None and len(fused_segments) > 0, cfg)
    rng = np.random.default_rng(seed)
    for round_index in range(1, (cfg.rounds if rounds is None else rounds) + 1):
        order = list(range(len(coords))) if round_index == 1 else list(rng.permutation(len(coords)))
        improved = False
        for i in order:
            coord = coords[i]
            current = coord.get(best)
            for value in coord.grid:
                if value == current:
                    continue
                trial = copy.deepcopy(best)
                coord.set(trial, value)
                if not _usable(trial, sources):
                    continue
                score = scorer(trial)
                if score > best_score + max(cfg.min_gain, 1e-12):
                    best, best_score, current, improved = trial, score, value, True
            history.append(
                {"round": round_index, "parameter": coord.name, "value": current, "mOS": best_score}
            )
        what = sources[0] if len(sources) == 1 else f"the ensemble of {len(sources)} curves"
        log.info(  # named: the single-source rows tune one source each, and their lines looked alike
            "tuning %s, round %d: OOF mOS %.4f (%d evaluations)",
            what,
            round_index,
            best_score,
            scorer.evaluations,
        )
        if not improved:
            break
    return best, history
