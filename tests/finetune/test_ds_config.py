"""The DeepSpeed JSON is generated from the dataclass config."""

from __future__ import annotations

import pytest

from ndar.config import ConfigError, load_config
from ndar.finetune.config import FinetuneConfig
from ndar.finetune.ds_config import build_deepspeed_config


def _cfg(*overrides: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, list(overrides))


def test_batch_accumulation_and_world_size():
    ds = build_deepspeed_config(_cfg("train.batch_size=4", "train.grad_accum=3"), world_size=8)
    assert ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["gradient_accumulation_steps"] == 3
    assert ds["train_batch_size"] == 4 * 3 * 8


@pytest.mark.parametrize(
    ("precision", "fp16", "bf16"), [("fp16", True, False), ("bf16", False, True), ("fp32", False, False)]
)
def test_precision(precision, fp16, bf16):
    ds = build_deepspeed_config(_cfg(f"train.precision={precision}"), world_size=1)
    assert ds["fp16"]["enabled"] is fp16 and ds["bf16"]["enabled"] is bf16
    if fp16:
        assert ds["fp16"]["loss_scale"] == 0  # dynamic loss scaling


def test_zero_stage_clipping_and_extra_keys():
    cfg = _cfg(
        "train.zero_stage=2",
        "optim.clip_grad=1.5",
        "deepspeed.extra={zero_optimization: {overlap_comm: true}}",
    )
    ds = build_deepspeed_config(cfg, world_size=2)
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["overlap_comm"] is True  # deep-merged, stage kept
    assert ds["gradient_clipping"] == 1.5


@pytest.mark.parametrize(
    "override", ["train.precision=fp8", "train.zero_stage=3", "train.batch_size=3", "deepspeed.backend=tcp"]
)
def test_invalid_settings_are_named(override):
    cfg = _cfg(override)
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        cfg.validate()
