"""Turn per-second class curves into segments (the simple rule here; the task's priors in `priors`)."""

from ndar.postprocess.simple import one_segment_per_class, runs_above, smooth_curve

__all__ = ["one_segment_per_class", "runs_above", "smooth_curve"]
