"""Every shipped fine-tuning config loads; shrunk, it builds and takes a real optimizer step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ndar.config import is_base_file, load_config
from ndar.finetune.config import FinetuneConfig
from ndar.finetune.distributed import DistInfo
from ndar.finetune.engine import (
    build_mixup_and_loss,
    build_model,
    build_optimizer,
    build_scheduler,
    learning_rate,
    mix_clips,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (ROOT / "configs" / "finetune").rglob("*.yaml") if not is_base_file(p))
REAL = {
    "k400_vith": "videomae_vit_huge",
    "hybrid_vitl": "videomae_vit_large",
    "ego_vitl": "videomae_vit_large",
    "videomamba_m": "videomamba_middle",
}
TINY_BACKBONE = {"videomamba_m": "videomamba_test"}  # the others: videomae_vit_tiny
REAL_FRAMES = {"videomamba_m": 32}  # linear in frames: a longer window than the ViTs' 16
CHECKPOINTS = {
    "k400_vith": "vit_h_k400_videomae.pth",
    "hybrid_vitl": "vit_l_hybrid_k700_internvideo.pth",
    "ego_vitl": "vit_l_ego4d_verb.pth",
    "videomamba_m": "videomamba_m16_k400_mask_ft_f32_res224.pth",
}
SHRINK = [
    "model.backbone=videomae_vit_tiny",
    "model.overrides={depth: 2, embed_dim: 32, num_heads: 2}",
    "model.pretrained=null",
    "model.num_frames=4",
    "model.img_size=32",
]


def test_every_track_has_a_real_and_a_tiny_config_and_a_script():
    readme = (ROOT / "weights" / "README.md").read_text()
    for track, checkpoint in CHECKPOINTS.items():
        script = (ROOT / "shell" / f"Track3_finetune_{track}.sh").read_text()
        assert f"configs/finetune/{track}.yaml" in script and checkpoint in script and checkpoint in readme
        assert "set -euo pipefail" in script and "optim." not in script and "train." not in script
    names = {p.relative_to(ROOT / "configs" / "finetune").as_posix() for p in CONFIGS}
    for track in REAL:
        assert f"{track}.yaml" in names and f"tiny/{track}.yaml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_shipped_config_loads_and_validates(path):
    cfg = load_config(FinetuneConfig, path)
    cfg.validate()
    track = path.stem
    if path.parent.name == "tiny":
        assert (
            cfg.model.backbone == TINY_BACKBONE.get(track, "videomae_vit_tiny")
            and cfg.model.pretrained is None
        )
        assert cfg.train.precision == "fp32" and cfg.data.cache
    else:
        assert cfg.model.backbone == REAL[track]
        assert str(cfg.model.pretrained) == f"weights/pretrained/{CHECKPOINTS[track]}"  # weights/README.md
        assert cfg.train.precision in ("bf16", "fp16") and cfg.train.zero_stage >= 1
        assert cfg.optim.warmup_epochs == 5 and 0.7 <= cfg.optim.layer_decay <= 0.85
        assert cfg.model.num_frames == REAL_FRAMES.get(track, 16) and cfg.model.img_size == 224


def test_tiny_configs_differ_from_each_other():
    tiny = [load_config(FinetuneConfig, p) for p in CONFIGS if p.parent.name == "tiny"]
    shapes = {(c.model.num_frames, c.model.sampling_rate, c.model.img_size) for c in tiny}
    assert len(shapes) == len(tiny) == len(REAL)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name != "tiny"], ids=lambda p: p.stem)
def test_real_recipe_shrunk_takes_a_step(path):
    """The real recipe's optimizer (layer decay), schedule, mixup and loss on a shrunk model."""
    cfg = load_config(FinetuneConfig, path, SHRINK + ["train.batch_size=2"])
    model, spec = build_model(cfg)
    dist = DistInfo(rank=0, world_size=4, local_rank=0)
    lr = learning_rate(cfg, dist)
    assert lr == pytest.approx(cfg.optim.base_lr * 2 * cfg.train.grad_accum * 4 / 256)
    optimizer = build_optimizer(model, cfg, lr)
    scales = sorted({round(g.get("lr_scale", 1.0), 6) for g in optimizer.param_groups})
    assert len(scales) == 4 and scales[-1] == 1.0  # embed, 2 blocks, head: decayed per layer
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, cfg.optim.weight_decay}
    scheduler = build_scheduler(optimizer, cfg, updates_per_epoch=10)
    scheduler.step_update(0)
    warm = max(g["lr"] for g in optimizer.param_groups)
    scheduler.step_update(50)  # end of the 5 warm-up epochs
    peak = max(g["lr"] for g in optimizer.param_groups)
    assert warm < 0.1 * lr and 0.9 * lr < peak <= lr
    mixup, criterion = build_mixup_and_loss(cfg)
    x = torch.randn(2, 3, spec.num_frames, spec.img_size, spec.img_size)
    y = torch.tensor([1, 7])
    x, target = mix_clips(mixup, x, y)
    assert target.shape == (2, 16) and torch.allclose(target.sum(1), torch.ones(2))
    before = [p.detach().clone() for p in model.parameters()]
    loss = criterion(model(x), target)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cutmix_box_is_the_same_in_every_frame():
    cfg = load_config(FinetuneConfig, None, ["aug.mixup=0.0", "aug.cutmix=1.0", "aug.label_smoothing=0.0"])
    mixup, _ = build_mixup_and_loss(cfg)
    x = torch.stack([torch.zeros(3, 4, 16, 16), torch.ones(3, 4, 16, 16)])
    mixed, target = mix_clips(mixup, x, torch.tensor([0, 1]))
    pasted = mixed[0] == 1  # (3, T, H, W): where clip 1 was pasted into clip 0
    assert pasted.any() and not pasted.all()
    for t in range(1, 4):
        assert torch.equal(pasted[:, t], pasted[:, 0])
    area = pasted[0, 0].float().mean()
    assert target[0, 1] == pytest.approx(float(area), abs=1e-6)


# The fine-tune YAMLs were rewritten as a few lines over a shared base at this commit's child; the
# configs they resolve to must be exactly those of the flat files before it, apart from the settings
# deliberately changed since (each chosen on the accuracy bench, bench/results/accuracy.md, or for the
# GPU step's speed with the same updates, bench/results/gpu.md, or for the CPU demo's speed with the
# same weights).
FLAT_REVISION = "3550012"
CHANGED_SINCE = {
    "configs/finetune/tiny/_base_.yaml": ["aug.label_smoothing=0.1", "data.resize=pad", "data.num_workers=0"],
    "configs/finetune/_base_vit.yaml": [
        "data.resize=pad",
        "optim.fused=true",
        "train.compile=true",
        "model.grad_checkpointing=false",
    ],
    "configs/finetune/k400_vith.yaml": ["train.batch_size=8", "train.grad_accum=1", "eval.batch_size=8"],
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_config_over_its_base_resolves_to_the_flat_config_before_the_rewrite(path, tmp_path):
    import subprocess

    from ndar.config import to_dict

    rel = path.relative_to(ROOT).as_posix()
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{FLAT_REVISION}:{rel}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        pytest.skip(f"{rel} at {FLAT_REVISION} not available (not a git checkout, or a newer track)")
    flat = tmp_path / "flat.yaml"
    flat.write_text(shown.stdout)
    assert "_base_" not in shown.stdout
    sources = [*uses_base(path), rel]  # the base's changes first, then the file's own
    changed = [o for source in sources for o in CHANGED_SINCE.get(source, [])]
    assert to_dict(load_config(FinetuneConfig, path)) == to_dict(load_config(FinetuneConfig, flat, changed))


def uses_base(path) -> list[str]:
    """The repository paths of the `_base_` files `path` is written over (one level)."""
    import yaml

    base = (yaml.safe_load(path.read_text()) or {}).get("_base_")
    return [(path.parent / base).resolve().relative_to(ROOT).as_posix()] if base else []
