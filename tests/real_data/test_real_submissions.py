"""The 14 real submissions of 2022-2024, judged as the official evaluation judged them.

Class-0 lines were accepted by the evaluation server (CarrotPeeler's file named for its leaderboard
score 0.5178 holds 75) and dropped by the evaluation: `validate-submission` warns, `score` drops
them. 5-column files (with a confidence) and end-before-start rows are not submissions. Scores of
the valid 2024 files against the one real ground truth are checked against an independent mOS
written here from the published definition (docs/metrics.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from real_files import REAL, needs_real, real_files

from ndar.cli import main as cli_main
from ndar.submission import check_submission

VIDEO_IDS = {
    "2022": "2022_A2_video_ids.csv",
    "2023": "2023_A2_video_ids.csv",
    "2024": "2024_A2_video_ids_skku.csv",
}
# file -> (valid under its edition's rules, number of class-0 lines, a phrase of the first error)
JUDGEMENT = {
    "pand_results_submission_TEST18.txt": (True, 0, None),
    "shahad24_temporal_locations.txt": (True, 0, None),  # 2022 class ids 16, 17 are 2022 classes
    "carrotpeeler_bad_rows.txt": (False, 0, "is before start"),
    "carrotpeeler_mqp_sub_file_0.5178_score.txt": (True, 75, None),
    "carrotpeeler_mqp_sub_file_merged.txt": (False, 0, "expected 4 fields"),
    "carrotpeeler_sub_file_final_2dxa2.txt": (True, 8, None),
    "carrotpeeler_submission_file.txt": (True, 0, None),
    "meituan_final_submission.txt": (True, 0, None),
    "rongchangli_final_submission.txt": (True, 0, None),
    "skku_final_submission.txt": (True, 0, None),
    "wolfworld6_AMA_mergev1_v2.txt": (True, 0, None),
    "wolfworld6_act_pre_ego_crop_AMA_mae2_f16_f16_8h_9k_score0.2.txt": (True, 0, None),
    "wolfworld6_maev1_AMA_f32_f16_score0.2add_score.txt": (False, 0, "expected 4 fields"),
    "wolfworld6_maev2_AMA_f16_f16_score0.2add_score.txt": (False, 0, "expected 4 fields"),
}


@pytest.mark.parametrize("path", real_files("submissions/*/*.txt"))
def test_real_submission_is_judged_like_the_official_evaluation(path: Path):
    edition = path.parent.name
    valid, class0, error = JUDGEMENT[path.name]
    check = check_submission(path, video_ids=REAL / "video_ids" / VIDEO_IDS[edition], edition=edition)
    assert (check.errors == []) is valid, check.errors[:3]
    if error:
        assert error in check.errors[0]
    if class0:
        [warning] = check.warnings
        assert f"{class0} class-0 line(s)" in warning
        assert check_submission(path, strict=True, edition=edition).errors  # --strict refuses them
    else:
        assert check.warnings == []


@needs_real
def test_all_14_real_submissions_are_judged():
    assert sorted(p.name for p in REAL.glob("submissions/*/*.txt")) == sorted(JUDGEMENT)


def _rows(path: Path) -> list[tuple[int, int, float, float]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            video, label, start, end = line.split()[:4]
            if int(label) != 0:
                rows.append((int(video), int(label), float(start), float(end)))
    return rows


def independent_mos(gt: list, pred: list, tolerance: float = 10.0) -> float:
    """The published mOS: each ground truth in start order takes the unused prediction of its video
    and class with both ends within 10 s and the highest overlap score."""
    used: set[int] = set()
    total, unmatched = 0.0, 0
    for video, label, gs, ge in sorted(gt, key=lambda g: g[2]):
        best, best_os = None, -1.0
        for i, (pv, pl, ps, pe) in enumerate(pred):
            if i in used or (pv, pl) != (video, label):
                continue
            if abs(ps - gs) > tolerance or abs(pe - ge) > tolerance:
                continue
            union = max(ge, pe) - min(gs, ps)
            score = max(min(ge, pe) - max(gs, ps), 0) / union if union > 0 else 1.0
            if score > best_os:
                best, best_os = i, score
        if best is None:
            unmatched += 1
        else:
            used.add(best)
            total += best_os
    return total / (len(pred) + unmatched)


@pytest.mark.parametrize("path", real_files("submissions/2024/*.txt"))
def test_score_of_real_2024_submissions_equals_the_independent_mos(path: Path, capsys):
    gt = REAL / "gt" / "2024" / "skku_eval_GT.txt"
    code = cli_main(["score", "--gt", str(gt), "--pred", str(path), "--json"])
    if not JUDGEMENT[path.name][0]:
        assert code == 1 and str(path) in capsys.readouterr().err
        return
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mOS"] == pytest.approx(independent_mos(_rows(gt), _rows(path)), abs=1e-9)
    assert 0.7 < result["mOS"] < 0.8  # SKKU's leaderboard score was 0.7798 on the organisers' truth


@needs_real
def test_score_drops_class0_lines_as_the_evaluation_does(tmp_path, capsys):
    with_class0 = REAL / "submissions" / "2023" / "carrotpeeler_mqp_sub_file_0.5178_score.txt"
    reference = REAL / "submissions" / "2023" / "meituan_final_submission.txt"
    without = tmp_path / "without_class0.txt"
    without.write_text("".join(f"{v} {c} {s:g} {e:g}\n" for v, c, s, e in _rows(with_class0)))
    scores = []
    for pred in (with_class0, without):
        assert cli_main(["score", "--gt", str(reference), "--pred", str(pred), "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0] == scores[1]
    lines = [line for line in with_class0.read_text().splitlines() if line.strip()]
    assert scores[0]["n_pred"] == len(lines) - 75
