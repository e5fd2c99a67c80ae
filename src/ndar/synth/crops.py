"""Driver crop boxes of the renderer's camera poses, measured by projecting the animated body.

Why: the backbones see only the driver region of each view (`ndar.video.geometry`). The box is
measured, not guessed: every activity class is animated for several drivers, every body point of
every frame is projected through the view's nominal camera at the requested frame size, and the box
is the range of those pixels plus a margin for the per-session camera jitter and shake. The frame
size matters: the cameras have a fixed horizontal field of view, so the vertical fractions change
with the aspect ratio (4:3 synthetic frames vs the real 16:9 1080p ones).

This module only reads the renderer's geometry; it never changes the generated data.
"""

from __future__ import annotations

import numpy as np

from ndar import taxonomy
from ndar.synth.body import animate, make_driver
from ndar.synth.render import CAMERAS, MARGIN, Projector

# The points the classes differ by: head, face, arms, hands (props count while they are shown). Legs,
# hips and the steering wheel are left out: they move little and lie at the frame's edges.
UPPER_BODY = {"neck", "head", "eye", "mouth", "hair", "hat", "brim", "glasses", "shoulder", "elbow", "hand"}
ACTIVITY_S = 4  # seconds each class is animated for
GAP_S = 2


def driver_points_px(view: str, width: int, height: int, drivers: int = 6, fps: float = 5.0, seed: int = 0):
    """(N, 2) pixel positions of the upper-body points of every frame, all classes, several drivers."""
    rng = np.random.default_rng(seed)
    proj = Projector(CAMERAS[view], width, height, np.zeros(6))
    labels = range(1, taxonomy.NUM_CLASSES)
    activities = [(c, GAP_S + i * (ACTIVITY_S + GAP_S), GAP_S + i * (ACTIVITY_S + GAP_S) + ACTIVITY_S)
                  for i, c in enumerate(labels)]  # fmt: skip
    duration = activities[-1][2] + GAP_S
    points = []
    for _ in range(drivers):
        driver = make_driver(rng)
        pose = animate(rng, driver, activities, duration, fps)
        for name, pts in pose.points.items():  # (T, 3)
            if name.split("_")[0] not in UPPER_BODY and name not in pose.props:
                continue
            uv, _ = proj.project(pts)  # (T, 2), canvas pixels
            shown = pose.props.get(name)
            points.append((uv if shown is None else uv[shown]) - MARGIN)
    return np.concatenate(points)


def driver_box(
    view: str, width: int, height: int, margin: float = 0.05, quantile: float = 0.005
) -> list[float]:
    """(left, top, right, bottom) fractions covering the driver's projected body in `view`.

    `quantile` drops the rare extreme points (a hand flung for one frame), `margin` (a fraction of
    the frame) adds room for the body's thickness, camera jitter and shake.
    """
    uv = driver_points_px(view, width, height)
    lo = np.quantile(uv, quantile, axis=0) / (width, height) - margin
    hi = np.quantile(uv, 1 - quantile, axis=0) / (width, height) + margin
    box = [max(0.0, lo[0]), max(0.0, lo[1]), min(1.0, hi[0]), min(1.0, hi[1])]
    return [round(float(v), 2) for v in box]
