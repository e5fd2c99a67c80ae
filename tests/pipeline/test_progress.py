"""Progress in log files: plain periodic lines with rate and ETA, never bar redraws."""

from __future__ import annotations

import logging

from ndar.utils.progress import LineProgress, format_seconds, progress


def test_files_get_periodic_lines_with_rate_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="ndar.progress")
    items = list(LineProgress(range(5), desc="videos", unit="video", every=0.0))
    assert items == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("videos: 1/5 video, ") and "video/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].endswith("(done)") and "5/5" in lines[-1]
    assert not any("\r" in line for line in lines)


def test_not_a_terminal_gives_line_progress_with_the_tqdm_interface(caplog):
    caplog.set_level(logging.INFO, logger="ndar.progress")
    with progress(total=10, desc="frames", unit="frame", leave=False) as bar:  # pytest's stderr is no TTY
        assert isinstance(bar, LineProgress)
        bar.update(4)
        bar.set_postfix(loss="0.5")
        assert bar.n == 4
    assert "frames: 4/10 frame" in caplog.text and "loss=0.5" in caplog.text


def test_format_seconds():
    assert [format_seconds(s) for s in (8, 75, 3700)] == ["8s", "1m15s", "1h01m"]
