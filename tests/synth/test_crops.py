"""The crop presets are the renderer's measured driver boxes (ndar.synth.crops), not guesses."""

from __future__ import annotations

import pytest

from ndar.synth.crops import driver_box
from ndar.video.geometry import CROP_PRESETS


@pytest.mark.parametrize("view", ["dashboard", "rear", "right"])
@pytest.mark.parametrize(("preset", "width", "height"), [("synthetic", 160, 120), ("aicity", 1920, 1080)])
def test_presets_are_the_measured_driver_boxes(view: str, preset: str, width: int, height: int) -> None:
    measured = driver_box(view, width, height)
    assert list(CROP_PRESETS[preset][view]) == pytest.approx(measured, abs=0.011)
