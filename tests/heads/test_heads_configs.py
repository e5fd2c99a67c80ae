from pathlib import Path

import pandas as pd
import pytest

from ndar.config import ConfigError, load_config
from ndar.heads.actionformer import ActionFormerConfig, ActionFormerHead
from ndar.heads.config import HeadsConfig, head_config
from ndar.heads.logs import TrainLog
from ndar.heads.runner import resolved

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "heads").glob("actionformer*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_actionformer_configs_load_and_build(path):
    cfg = load_config(HeadsConfig, path)
    assert cfg.head == "actionformer"
    af = head_config(cfg)
    assert isinstance(af, ActionFormerConfig) and len(af.regression_ranges) == af.levels
    assert resolved(cfg)["actionformer"]["embed_dim"] == af.embed_dim
    if "tiny" in path.name:  # building the real-scale model is left to the GPU
        head = ActionFormerHead(af, {"rear": 16, "dashboard": 16}, seed=0)
        assert sum(p.numel() for p in head.model.parameters()) < 500_000  # 64 wide: about 0.4 M


def test_real_config_carries_the_official_epic_settings():
    """AI City's windows have EPIC's feature spacing (16 frames at 30 fps): its official settings apply."""
    af = head_config(load_config(HeadsConfig, REPO / "configs" / "heads" / "actionformer.yaml"))
    assert (af.window, af.loss_norm_init, af.crop_ratio, af.crop_keep) == (9, 250, [0.9, 1.0], 0.3)
    assert af.regression_ranges == [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 10000]]
    assert (af.dropout, af.drop_path, af.epochs - af.warmup_epochs, af.nms_sigma) == (0.1, 0.1, 25, 0.4)


def test_train_log_keeps_columns_first_seen_later(tmp_path):
    with TrainLog(tmp_path, tensorboard=True) as log:
        log.log(1, loss=1.0)
        log.log(2, loss=0.5, val_loss=0.7)
    with TrainLog(tmp_path, tensorboard=False) as log:  # a resumed run appends
        log.log(3, loss=0.4)
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["epoch"].tolist() == [1, 2, 3] and table["val/loss"].isna().tolist() == [True, False, True]
    assert table["train/loss"].tolist() == [1.0, 0.5, 0.4]
    assert list((tmp_path / "tb").iterdir())


def test_every_trainer_logs_one_vocabulary(tmp_path):
    """TIM's `train_loss`, ActionFormer's `loss` and the fine-tuning's `lr` land on the same tags."""
    from ndar.utils.runlog import tag

    assert tag("loss") == tag("train_loss") == "train/loss"
    assert tag("val_loss") == "val/loss" and tag("lr") == "train/lr" and tag("val/mAP") == "val/mAP"
    assert tag("epoch_seconds") == "time/epoch_seconds"
    with TrainLog(tmp_path, tensorboard=False) as log, pytest.raises(ValueError, match="from 1"):
        log.log(0, loss=1.0)


def test_tim_defaults_to_recognition_and_the_real_config_is_official():
    from ndar.heads.tim import TimConfig

    assert TimConfig().mode == "recognition"  # the official model; detection is ndar's own (docs/tim.md)
    tim = head_config(load_config(HeadsConfig, REPO / "configs" / "heads" / "tim.yaml"))
    assert (tim.mode, tim.train_window_stride, tim.epochs) == ("recognition", 1.0, 100)


SHARED_NAMES = ("warmup_epochs", "eval_every", "nms_min_score", "nms_sigma", "epochs", "batch_size", "lr")


@pytest.mark.parametrize("head", ["tim", "actionformer"])
def test_both_heads_use_the_same_names_for_the_same_settings(head):
    import dataclasses

    cls = head_config(HeadsConfig(head=head)).__class__
    assert set(SHARED_NAMES) <= {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    "head, old, new",
    [
        ("tim", "warmup", "warmup_epochs"),
        ("actionformer", "val_every", "eval_every"),
        ("actionformer", "min_score", "nms_min_score"),
    ],
)
def test_an_old_head_setting_name_is_refused_naming_the_new_one(head, old, new):
    cfg = load_config(HeadsConfig, None, [f"head={head}", f"{head}.{old}=3"])
    with pytest.raises(ConfigError, match=rf"^{head}\.{old}: renamed to '{new}'; write {new}: 3$"):
        head_config(cfg)
