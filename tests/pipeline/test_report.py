"""report.html: grouped comparison with the baseline and the best marked, flagged classes, the main
job's additions (idempotent), and timelines that start at 0 without class 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from ndar.ensemble.report import add_main_job, comparison_frame, write_report_html
from ndar.taxonomy import CLASSES
from ndar.utils.plots import timeline_figure
from ndar.utils.runlog import TrainLog

TABLE = pd.DataFrame(
    [
        {"name": "a_rear", "kind": "feature_set", "method": "own segments", "oof_mOS": 0.2, "test_mOS": 0.1},
        {"name": "tim_a", "kind": "head", "method": "own segments", "oof_mOS": 0.3, "test_mOS": 0.2},
        {"name": "ensemble", "kind": "ensemble", "method": "tuned", "oof_mOS": 0.5, "test_mOS": 0.4},
        {"name": "af_a", "kind": "head", "method": "own segments", "oof_mOS": 0.4, "test_mOS": None},
    ]
)


def test_comparison_is_grouped_best_first_with_the_baseline_and_the_best_marked():
    frame = comparison_frame(TABLE, {"mOS": 0.3, "oof": {"mOS": 0.25}})
    assert frame["name"].tolist() == ["ensemble", "af_a", "tim_a", "a_rear", "baseline"]
    assert frame["best"].tolist() == ["★★", "★", "", "★", "★"]
    assert frame.iloc[-1]["test_mOS"] == 0.3


def write_report(tmp_path):
    per_class = pd.DataFrame({"label": [1, 2], "name": [CLASSES[1], CLASSES[2]], "mos": [0.0, 0.5]})
    (tmp_path / "tuned.yaml").write_text(
        yaml.safe_dump({"curve_weights": {"tim_a": 2.0}, "segment_weight": 0.5, "priors": {"threshold": 0.3}})
    )
    TABLE.to_csv(tmp_path / "report.csv", index=False)
    confusion = np.eye(len(CLASSES), dtype=np.int64)
    timelines = [
        ("A2 session x", {"ground truth": [(0, 0.0, 5.0), (3, 5.0, 9.0)], "prediction": [(3, 6.0, 9.0)]})
    ]
    return write_report_html(
        tmp_path / "report.html", "t", TABLE, {"A1 OOF": per_class}, timelines, confusion, []
    )


def test_report_shows_tuned_settings_and_flags_zero_classes(tmp_path):
    text = write_report(tmp_path).read_text()
    assert "curve: tim_a" in text and "segment fusion" in text and "threshold" in text
    assert f"class(es) scoring 0: 1 {CLASSES[1]}" in text and "scores 0" in text
    assert "★★" in text


def test_main_job_sections_are_added_once(tmp_path):
    report = write_report(tmp_path)
    head = tmp_path / "heads" / "tim_a"
    with TrainLog(head / "folds" / "fold_0", tensorboard=False) as log:
        log.log(1, loss=1.0)
        log.log(2, loss=0.8, val_loss=0.9)
    for _ in range(2):  # a resumed main job adds them again: replaced, not repeated
        add_main_job(
            report, {"mOS": 0.3, "oof": {"mOS": 0.25}}, {"synth": 3.0, "ensemble": 2.0}, {"tim a": head}
        )
    text = report.read_text()
    assert (
        text.count("Stage timings of the main job") == 1 and text.count("Training curves of the heads") == 1
    )
    assert text.count("per-window classifier (reference)") == 1 and "5.0 s" in text


def test_timeline_starts_at_zero_with_a_legend_and_no_class_zero():
    fig = timeline_figure(
        "x", {"truth": [(0, 0.0, 30.0), (4, 30.0, 40.0)], "pred": [(4, 31.0, 39.0)]}, duration=60
    )
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 60.0)
    assert len(ax.patches) == 2  # class 0 is the background: only the two class-4 bars are drawn
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"4 {CLASSES[4]}"]
