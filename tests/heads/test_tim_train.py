"""A tiny TIM really trains on synthetic features (class-dependent means inside the segments)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from heads_fixtures import make_videos

from ndar.heads.base import build_head, check_output, get_head
from ndar.heads.tim import TimConfig, TimHead
from ndar.metrics.tmap import temporal_map

DIMS = {"rear": 8, "dashboard": 8}
CLASSES = (1, 2, 4, 7, 9)


def tiny(mode: str, **over) -> TimConfig:
    base = dict(
        mode=mode,
        num_feats=16,
        feat_stride=2,
        window_stride=4.0,
        train_window_stride=2.0,
        d_model=32,
        num_heads=2,
        num_layers=1,
        feedforward_scale=2,
        dropout=0.0,
        feat_dropout=0.1,
        seq_dropout=0.1,
        pyramid_base=0.0625,
        pyramid_levels=5,
        mixup_alpha=0.2 if mode == "recognition" else 0.0,
        label_smoothing=0.1,
        lr=3e-3,
        epochs=8,
        warmup_epochs=1,
        batch_size=16,
        pre_nms_topk=300,
        max_segments=50,
        device="cpu",
        cpu_threads=1,
        eval_every=0,
    )
    base.update(over)
    return TimConfig(**base)


@pytest.fixture(scope="module")
def data():
    train = make_videos(n_drivers=3, sessions=2, duration=90.0, classes=CLASSES, seed=0)
    val = make_videos(n_drivers=1, sessions=2, duration=90.0, classes=CLASSES, seed=5, first_driver=900)
    return train, val


def gt_frame(videos) -> pd.DataFrame:
    rows = [(v.key, s.label, s.start, s.end) for v in videos for s in v.segments]
    return pd.DataFrame(rows, columns=["video", "label", "start", "end"])


def test_registered_and_built_by_the_runner_factory():
    entry = get_head("tim")
    assert entry.head_cls is TimHead and entry.config_cls is TimConfig
    assert isinstance(build_head("tim", tiny("detection"), DIMS, 0), TimHead)


@pytest.mark.slow
def test_recognition_beats_chance(data, tmp_path: Path):
    train, val = data
    head = TimHead(tiny("recognition"), DIMS, seed=0)
    result = head.fit(train, val, tmp_path)
    assert len(result["epochs"]) == 8
    assert (tmp_path / "metrics.csv").is_file() and (tmp_path / "checkpoint.pt").is_file()
    losses = [h["train_cls"] for h in result["epochs"]]
    assert losses[-1] < losses[0]
    intervals = {v.key: np.array([(s.start, s.end) for s in v.segments]) for v in val}
    probs = head.classify_intervals(val, intervals)
    truth = np.concatenate([[s.label for s in v.segments] for v in val])
    pred = np.concatenate([probs[v.key].argmax(1) for v in val])
    assert probs[val[0].key].shape == (len(val[0].segments), 16)
    assert (pred == truth).mean() >= 0.7  # chance: 1/5
    assert result["epochs"][-1]["val_acc"] >= 0.7
    out = head.predict(val)
    for v in val:
        check_output(v.key, out[v.key], v.duration)
    # segments: runs of the curve as proposals, classified by TIM on their exact interval
    pred = pd.DataFrame(
        [(k, *seg) for k, o in out.items() for seg in o.segments],
        columns=["video", "label", "start", "end", "score"],
    )
    assert temporal_map(gt_frame(val), pred, tious=(0.3, 0.5))["mAP"] >= 0.3
    check_proposal_scores(head, val, out)


def check_proposal_scores(head: TimHead, val, out) -> None:
    """The best segment of each class scores TIM's probability of its class on that exact interval
    ("prob"), or that times the run's mean curve value ("prob_x_curve"); Soft-NMS never lowers
    the top segment of a class."""
    for score_rule in ("prob", "prob_x_curve"):
        head.cfg.proposal_score = score_rule
        predicted = head.predict(val)
        checked = 0
        for v in val:
            best: dict[int, tuple] = {}
            for label, start, end, score in predicted[v.key].segments:
                if label not in best or score > best[label][3]:
                    best[label] = (label, start, end, score)
            segs = list(best.values())
            probs = head.classify_intervals([v], {v.key: np.array([(s[1], s[2]) for s in segs])})[v.key]
            for (label, start, end, score), row in zip(segs, probs):
                expected = row[label]
                if score_rule == "prob_x_curve":
                    expected *= out[v.key].curve[int(start) : int(end), label].mean()
                assert score == pytest.approx(expected, rel=1e-4, abs=1e-6), (score_rule, v.key, label)
                checked += 1
        assert checked >= 5
    head.cfg.proposal_score = "prob"


@pytest.mark.slow
def test_detection_beats_chance(data, tmp_path: Path):
    train, val = data
    head = TimHead(tiny("detection", epochs=16), DIMS, seed=0)
    head.fit(train, [], tmp_path)
    out = head.predict(val)
    for v in val:
        check_output(v.key, out[v.key], v.duration)
    pred = pd.DataFrame(
        [(k, *seg) for k, o in out.items() for seg in o.segments],
        columns=["video", "label", "start", "end", "score"],
    )
    tmap = temporal_map(gt_frame(val), pred, tious=(0.3, 0.5))
    assert tmap["mAP"] >= 0.3, tmap  # random segments score ~0
    # the per-second curve finds the activities too
    hits = total = 0
    for v in val:
        for s in v.segments:
            rows = out[v.key].curve[int(s.start) : int(s.end)]
            hits += int((rows.argmax(1) == s.label).sum())
            total += len(rows)
    assert hits / total >= 0.5


def test_predictions_are_deterministic_for_a_seed_and_survive_save_load(data, tmp_path: Path):
    train, val = data
    cfg = tiny("detection", epochs=1)  # cpu_threads=1: fit and predict must give torch's count back
    outer = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first = TimHead(cfg, DIMS, seed=3)
        first.fit(train[:2], [], tmp_path / "a")
        second = TimHead(cfg, DIMS, seed=3)
        second.fit(train[:2], [], tmp_path / "b")
        a, b = first.predict(val[:1]), second.predict(val[:1])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(outer)
    key = val[0].key
    np.testing.assert_array_equal(a[key].curve, b[key].curve)
    assert a[key].segments == b[key].segments
    first.save(tmp_path / "model.pt")
    loaded = TimHead(cfg, DIMS, seed=99)
    loaded.load(tmp_path / "model.pt")
    np.testing.assert_allclose(loaded.predict(val[:1])[key].curve, a[key].curve, atol=1e-6)
    other = TimHead(cfg, DIMS, seed=4)
    other.fit(train[:2], [], tmp_path / "c")
    assert not np.array_equal(other.predict(val[:1])[key].curve, a[key].curve)
    with pytest.raises(ValueError, match="streams"):
        TimHead(cfg, {"rear": 8}, seed=0).load(tmp_path / "model.pt")


def test_fit_resumes_from_its_checkpoint(data, tmp_path: Path):
    train, _ = data
    first = TimHead(tiny("recognition", epochs=1), DIMS, seed=0)
    done = first.fit(train[:1], [], tmp_path)
    assert len(done["epochs"]) == 1
    resumed = TimHead(tiny("recognition", epochs=2), DIMS, seed=0)
    result = resumed.fit(train[:1], [], tmp_path)
    assert [h["epoch"] for h in result["epochs"]] == [1, 2]
    assert result["epochs"][0] == done["epochs"][0]  # epoch 1 was not trained again
    assert len((tmp_path / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_weight_average_predicts_resumes_exactly_and_is_saved(data, tmp_path: Path, monkeypatch):
    """With `ema_decay` the average predicts (not the last weights), a run killed after its first
    epoch resumes to the uninterrupted run's average, and save/load keeps the average."""
    train, val = data
    key = val[0].key
    cfg = tiny("recognition", epochs=2, ema_decay=0.99)
    whole = TimHead(cfg, DIMS, seed=1)
    whole.fit(train[:2], [], tmp_path / "whole")
    averaged = whole.predict(val[:1])[key].curve
    plain = TimHead(tiny("recognition", epochs=2), DIMS, seed=1)
    plain.fit(train[:2], [], tmp_path / "plain")
    assert not np.allclose(plain.predict(val[:1])[key].curve, averaged)
    for name, p in whole.model.state_dict().items():  # the average is not the last weights
        if p.is_floating_point() and not torch.equal(p, whole.ema.module.state_dict()[name]):
            break
    else:
        raise AssertionError("the EMA weights equal the trained weights")

    killed = TimHead(cfg, DIMS, seed=1)
    real_epoch = TimHead._train_epoch

    def die_in_second_epoch(self, epoch, *args, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, epoch, *args, **kw)

    monkeypatch.setattr(TimHead, "_train_epoch", die_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(train[:2], [], tmp_path / "killed")
    monkeypatch.setattr(TimHead, "_train_epoch", real_epoch)
    resumed = TimHead(cfg, DIMS, seed=1)
    resumed.fit(train[:2], [], tmp_path / "killed")
    np.testing.assert_array_equal(resumed.predict(val[:1])[key].curve, averaged)

    whole.save(tmp_path / "model.pt")
    loaded = TimHead(tiny("recognition", epochs=2), DIMS, seed=7)
    loaded.load(tmp_path / "model.pt")
    np.testing.assert_allclose(loaded.predict(val[:1])[key].curve, averaged, atol=1e-6)
    with pytest.raises(ValueError, match="without ema_decay"):
        TimHead(cfg, DIMS, seed=1).fit(train[:2], [], tmp_path / "plain")
