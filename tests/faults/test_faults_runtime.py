"""Fault injection, settings: values of the wrong type or out of range are refused by the config
loader, naming the field, before any stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ndar.config import ConfigError, load_config
from ndar.extract.config import ExtractConfig
from ndar.finetune.config import FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]
FINETUNE = ROOT / "configs" / "finetune" / "tiny" / "k400_vith.yaml"
EXTRACT = ROOT / "configs" / "extract" / "synthetic.yaml"


@pytest.mark.parametrize(
    "override, named",
    [
        ("model.overrides.depth=abc", r"model\.overrides\.depth: expected an integer, got 'abc'"),
        ("model.overrides={embed_dim: 1.5}", r"model\.overrides\.embed_dim: expected an integer, got 1\.5"),
        ("train.batch_size=-4", r"train\.batch_size: expected >= 1, got -4"),
        ("optim.lr=-1", r"optim\.lr: expected > 0, got -1\.0"),
        ("optim.layer_decay=1.5", r"optim\.layer_decay: expected > 0, <= 1, got 1\.5"),
        ("train.precision=fp8", r"train\.precision: expected one of \('bf16', 'fp16', 'fp32'\), got 'fp8'"),
        ("eval.num_crops=0", r"eval\.num_crops: expected >= 1, got 0"),
    ],
)
def test_finetune_config_refuses_bad_values_naming_the_field(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(FinetuneConfig, FINETUNE, [override])


@pytest.mark.parametrize(
    "override, named",
    [
        ("batch_size=-4", r"batch_size: expected >= 1, got -4"),
        ("device=tpu", r"device: expected auto\|cpu\|cuda.*, got 'tpu'"),
        ("stride=0", r"stride: expected >= 1, got 0"),
        ("dtype=int8", r"dtype: expected one of"),
    ],
)
def test_extract_config_refuses_bad_values_naming_the_field(override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(ExtractConfig, EXTRACT, [override])


def test_good_values_still_load():
    cfg = load_config(
        FinetuneConfig, FINETUNE, ["model.overrides.depth=2", "optim.lr=0.01", "train.batch_size=2"]
    )
    assert cfg.model.overrides["depth"] == 2 and cfg.optim.lr == 0.01
    assert load_config(ExtractConfig, EXTRACT, ["device=cuda:1"]).device == "cuda:1"


@pytest.mark.parametrize(
    "head, values, named",
    [
        ("actionformer", {"batch_size": -4}, r"^actionformer\.batch_size: expected >= 1, got -4$"),
        ("actionformer", {"lr": -1}, r"^actionformer\.lr: expected > 0, got -1\.0$"),
        ("tim", {"device": "tpu"}, r"^tim\.device: expected auto\|cpu\|cuda.*, got 'tpu'$"),
        ("tim", {"epochs": 0}, r"^tim\.epochs: expected >= 1, got 0$"),
    ],
)
def test_heads_config_refuses_bad_values_naming_the_field(head, values, named):
    """The heads build their section with `from_dict(..., where=<head>)` (ndar.heads.runner)."""
    from ndar.config import from_dict
    from ndar.heads.actionformer import ActionFormerConfig
    from ndar.heads.tim.config import TimConfig

    cls = {"actionformer": ActionFormerConfig, "tim": TimConfig}[head]
    with pytest.raises(ConfigError, match=named):
        from_dict(cls, values, where=head)
