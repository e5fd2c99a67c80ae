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
    """Refused when loaded (types, ranges, choices) or by `validate` (rules across fields)."""
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        _cfg(override).validate()


def test_host_side_checks_off_only_where_nothing_needs_them():
    """bf16 skips DeepSpeed's overflow check; ZeRO-1/2 without clipping skips the grad norm; a
    clipping run keeps the norm; `deepspeed.extra` wins."""
    ds = build_deepspeed_config(_cfg("train.precision=bf16", "train.zero_stage=1", "optim.clip_grad=0"), 1)
    assert ds["bf16"] == {"enabled": True, "check_grad_overflow": False}
    assert ds["zero_optimization"]["compute_grad_norm"] is False
    clipped = build_deepspeed_config(_cfg("train.zero_stage=1", "optim.clip_grad=1.0"), 1)
    assert "compute_grad_norm" not in clipped["zero_optimization"]
    no_zero = build_deepspeed_config(_cfg("train.zero_stage=0", "optim.clip_grad=0"), 1)
    assert "compute_grad_norm" not in no_zero["zero_optimization"]  # DeepSpeed refuses it without ZeRO 1/2
    fp16 = build_deepspeed_config(_cfg("train.precision=fp16"), 1)
    assert "check_grad_overflow" not in fp16["fp16"]  # fp16 needs it for its loss scale
    back_on = _cfg(
        "train.precision=bf16", "optim.clip_grad=0",
        "deepspeed.extra={bf16: {check_grad_overflow: true}, zero_optimization: {compute_grad_norm: true}}",
    )  # fmt: skip
    ds = build_deepspeed_config(back_on, 1)
    assert ds["bf16"]["check_grad_overflow"] is True and ds["zero_optimization"]["compute_grad_norm"] is True
