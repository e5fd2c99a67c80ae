"""Window timing and the rolling cutter, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from ndar.video import WindowCutter, WindowSpec, window_starts


def test_window_starts_by_hand() -> None:
    # 100 frames, windows of 32 every 16: starts 0, 16, 32, 48, 64 (64 + 32 = 96 <= 100; 80 + 32 > 100)
    assert window_starts(100, 32, 16) == [0, 16, 32, 48, 64]
    assert window_starts(32, 32, 16) == [0]
    assert window_starts(31, 32, 16) == []
    assert window_starts(10, 4, 4) == [0, 4]
    assert window_starts(0, 4, 1) == []
    with pytest.raises(ValueError, match="stride"):
        window_starts(10, 4, 0)


def test_seed_default_spec_takes_last_32_frames_at_rate_2() -> None:
    spec = WindowSpec(num_frames=16, sampling_rate=2, stride=16)
    assert spec.window_len == 32
    assert spec.offsets == list(range(0, 32, 2))
    # a longer window keeps the LAST 32 frames of it
    long = WindowSpec(num_frames=16, sampling_rate=2, stride=16, window=48)
    assert long.offsets == list(range(16, 48, 2))
    assert long.frame_indices(100)[0] == 116 and long.frame_indices(100)[-1] == 146
    with pytest.raises(ValueError, match="shorter"):
        WindowSpec(num_frames=16, sampling_rate=2, window=20)


@pytest.mark.parametrize(
    ("total", "spec"),
    [
        (40, WindowSpec(num_frames=4, sampling_rate=2, stride=4)),
        (41, WindowSpec(num_frames=4, sampling_rate=1, stride=3, window=6)),
        (50, WindowSpec(num_frames=2, sampling_rate=3, stride=11)),  # stride longer than the window
        (7, WindowSpec(num_frames=4, sampling_rate=2, stride=1)),  # shorter than one window
    ],
)
def test_cutter_matches_random_access(total: int, spec: WindowSpec) -> None:
    fps = 30.0
    frames = np.arange(total, dtype=np.uint8).reshape(total, 1, 1, 1).repeat(3, axis=3)  # frame i has value i
    cutter = WindowCutter(spec)
    windows = [w for i in range(total) if (w := cutter.push(i, i / fps, frames[i])) is not None]
    starts = window_starts(total, spec.window_len, spec.stride)
    assert [w.start for w in windows] == starts
    for k, (w, start) in enumerate(zip(windows, starts)):
        used = [start + spec.window_len - spec.span + j * spec.sampling_rate for j in range(spec.num_frames)]
        assert w.index == k
        assert w.frame_indices == used
        assert w.clip.shape == (spec.num_frames, 1, 1, 3)
        np.testing.assert_array_equal(w.clip, frames[used])
        assert w.t_start == pytest.approx(used[0] / fps) and w.t_end == pytest.approx(used[-1] / fps)


def test_cutter_memory_is_one_window_and_order_is_checked() -> None:
    spec = WindowSpec(num_frames=4, sampling_rate=2, stride=1)
    cutter = WindowCutter(spec)
    for i in range(100):
        cutter.push(i, i / 30, np.zeros((2, 2, 3), np.uint8))
    assert len(cutter._buffer) == spec.window_len
    with pytest.raises(ValueError, match="expected frame 100"):
        cutter.push(101, 0.0, np.zeros((2, 2, 3), np.uint8))
