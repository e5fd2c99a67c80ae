"""One spatial geometry from the decoded frame to the backbone's input, shared by every stage.

A backbone sees the *crop box* of its view (the driver region, as fractions of the frame), resized to
`size` x `size` without keeping the aspect ratio ("squash"). Fine-tuning (training and validation),
the clip cache and feature extraction all go through `plan_geometry`, so the pixels a model is
validated on are the pixels the heads later get from it.

Two resize rules: "squash" (this module's default, what model folders without a rule used) and "pad" (the box keeps its aspect ratio: its longer side
becomes `size`, the rest of the square is zeros, like a letterbox). Pad needs the frame's size in
pixels (the box's aspect depends on it), so its plan is made per video. The shipped fine-tuning
configs use pad, chosen on the synthetic benchmark's A1 out-of-fold mOS over three generator seeds
(docs/finetune.md).

Why squash, and why the crop is done this way:
- extraction must see the whole crop box of every window (a window is not a clip centred on an
  action: a side crop could cut the hands off), and whatever extraction does, training has to do too;
  squashing the box to a square is the only rule that keeps the whole box at a fixed input size
  without padding. With a driver box close to square in pixels the squash is small (the whole
  16:9 frame was squeezed 1.78x horizontally before crop boxes existed).
- the frame is scaled on decode so that the box becomes exactly `size` x `size` pixels, and the box
  is then sliced out: the scaler (swscale or decord's ffmpeg) works straight from YUV at the small
  size, never on a full-size RGB frame, and both decoders produce the same geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FULL_FRAME = (0.0, 0.0, 1.0, 1.0)
RESIZE_RULES = ("squash", "pad")

# Driver boxes per view, (left, top, right, bottom) fractions, measured with `ndar.synth.crops`:
# every activity class animated for six drivers, the head, arms, hands and shown props projected
# through each view's camera pose, 0.5-99.5% range plus a 5% margin. "synthetic" is measured at the
# embedded data's 160x120, "aicity" at the real 1920x1080: the renderer's poses model the real
# cameras (driver centred, mirror / dashboard / passenger-window positions), not measured on real
# frames, which this project does not hold. Both are nearly whole frames: drinking, reaching behind
# and talking to the passenger move the hands and head close to the frame's edges. The dashboard
# box keeps the bottom rows because the hands drop to the lap (phone, eating).
CROP_PRESETS: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "full": {view: FULL_FRAME for view in ("dashboard", "rear", "right")},
    "synthetic": {
        "dashboard": (0.0, 0.0, 0.97, 1.0),
        "rear": (0.12, 0.0, 0.98, 0.96),
        "right": (0.0, 0.0, 0.89, 0.93),
    },
    "aicity": {
        "dashboard": (0.0, 0.0, 0.97, 1.0),
        "rear": (0.12, 0.0, 0.98, 1.0),
        "right": (0.0, 0.0, 0.89, 1.0),
    },
}


def resolve_crop_box(crop: str | Sequence[float], view: str) -> tuple[float, float, float, float]:
    """A preset name ("full", "synthetic", "aicity") looked up for `view`, or an explicit box."""
    if isinstance(crop, str):
        from ndar.taxonomy import canonical_view

        if crop not in CROP_PRESETS:
            raise ValueError(
                f"crop: expected one of {sorted(CROP_PRESETS)} or [left, top, right, bottom], got {crop!r}"
            )
        return CROP_PRESETS[crop][canonical_view(view)]
    return check_box(crop)


def check_box(box: Sequence[float], where: str = "crop_box") -> tuple[float, float, float, float]:
    """A crop box (left, top, right, bottom) in fractions of the frame, validated."""
    values = tuple(float(v) for v in box)
    if len(values) != 4:
        raise ValueError(f"{where}: expected 4 fractions (left, top, right, bottom), got {list(box)}")
    left, top, right, bottom = values
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ValueError(
            f"{where}: expected 0 <= left < right <= 1 and 0 <= top < bottom <= 1, got {list(values)}"
        )
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class GeometryPlan:
    """How to turn a (height, width) source frame into the (size, size) input of one backbone."""

    scaled: tuple[int, int]  # (height, width) to decode the whole frame at
    top: int
    left: int
    size: int
    box_hw: tuple[int, int] | None = None  # "pad": the box's (height, width), centred on zeros

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W, 3) frames decoded at `scaled` -> (..., size, size, 3) (a view, no copy, unless
        padded)."""
        if tuple(frames.shape[-3:-1]) != self.scaled:
            raise ValueError(f"frames of {frames.shape[-3:-1]} px, expected the planned {self.scaled}")
        if self.box_hw is None:
            return frames[..., self.top : self.top + self.size, self.left : self.left + self.size, :]
        h, w = self.box_hw
        out = np.zeros((*frames.shape[:-3], self.size, self.size, frames.shape[-1]), dtype=frames.dtype)
        y, x = (self.size - h) // 2, (self.size - w) // 2
        out[..., y : y + h, x : x + w, :] = frames[..., self.top : self.top + h, self.left : self.left + w, :]
        return out

    @property
    def is_whole_frame(self) -> bool:
        return self.scaled == (self.size, self.size) and self.box_hw is None


@dataclass(frozen=True)
class Geometry:
    """A backbone's geometry before a video is seen: `plan(frame_hw)` is its plan for one video."""

    size: int
    box: tuple[float, float, float, float] = FULL_FRAME
    resize: str = "squash"

    @property
    def needs_frame_size(self) -> bool:
        return self.resize == "pad"

    def plan(self, frame_hw: tuple[int, int] | None = None) -> GeometryPlan:
        return plan_geometry(self.size, self.box, self.resize, frame_hw)


def plan_geometry(
    size: int,
    box: Sequence[float] = FULL_FRAME,
    resize: str = "squash",
    frame_hw: tuple[int, int] | None = None,
) -> GeometryPlan:
    """The decode size and pixel crop that map `box` of a frame onto size x size.

    "squash" does not depend on the frame's size; "pad" needs `frame_hw` (height, width) of the video.
    The scaled frame is rounded to even sizes (decoders scale YUV 4:2:0 by whole chroma pixels).
    """
    if resize not in RESIZE_RULES:
        raise ValueError(f"resize: expected one of {list(RESIZE_RULES)}, got {resize!r}")
    if resize == "pad":
        if frame_hw is None:
            raise ValueError("resize 'pad' keeps the box's aspect ratio: it needs the frame's size")
        return _plan_pad(size, check_box(box), frame_hw)
    left, top, right, bottom = check_box(box)
    scaled_w = _even_at_least(size / (right - left), size)
    scaled_h = _even_at_least(size / (bottom - top), size)
    x0 = min(int(round(left * scaled_w)), scaled_w - size)
    y0 = min(int(round(top * scaled_h)), scaled_h - size)
    return GeometryPlan(scaled=(scaled_h, scaled_w), top=y0, left=x0, size=size)


def _plan_pad(size: int, box: tuple[float, float, float, float], frame_hw: tuple[int, int]) -> GeometryPlan:
    """The box scaled so that its longer side is `size`, aspect kept (the rest of the square padded)."""
    left, top, right, bottom = box
    height, width = frame_hw
    scale = size / max((right - left) * width, (bottom - top) * height)
    scaled_w = max(2, 2 * int(round(width * scale / 2)))
    scaled_h = max(2, 2 * int(round(height * scale / 2)))
    box_w = min(size, scaled_w, max(1, int(round((right - left) * width * scale))))
    box_h = min(size, scaled_h, max(1, int(round((bottom - top) * height * scale))))
    x0 = min(int(round(left * scaled_w)), scaled_w - box_w)
    y0 = min(int(round(top * scaled_h)), scaled_h - box_h)
    return GeometryPlan(scaled=(scaled_h, scaled_w), top=y0, left=x0, size=size, box_hw=(box_h, box_w))


def _even_at_least(value: float, size: int) -> int:
    """`value` rounded to an even integer, or `size` when the box is the whole frame side."""
    if value <= size + 1e-6:
        return size
    return max(size, 2 * int(round(value / 2)))
