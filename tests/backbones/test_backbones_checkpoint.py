"""Checkpoint loading in every official layout, checked against the independent functional forward."""

from __future__ import annotations

import argparse
import collections
import logging

import pytest
import torch
from safetensors.torch import save_file

from ndar.backbones import CheckpointError, create_backbone, load_checkpoint
from ndar.backbones.checkpoint import infer_pos_grid, interpolate_pos_embed

HEADS = 3
KW = dict(num_classes=16, num_frames=4, img_size=32, depth=2, embed_dim=24)


def make_model(**over):
    return create_backbone("videomae_vit_tiny", **{**KW, **over}).eval()


@pytest.fixture
def official(random_state):
    """Random official-layout weights (with layer scale) for the tiny test architecture."""
    return random_state(make_model(init_values=0.1), seed=7)


@pytest.fixture
def clip():
    return torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))


def assert_matches_reference(model, raw, report, reference, clip):
    """Loaded keys must compute exactly what the raw tensors compute; fresh keys come from the model."""
    current = model.state_dict()
    effective = {k: (raw[k] if k in report.loaded else current[k]) for k in current}
    with torch.no_grad():
        got = model(clip).double()
    want = reference["logits"](effective, clip, num_heads=HEADS)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def deepspeed_states(sd):
    """What DeepSpeed's engine writes to mp_rank_00_model_states.pt (fp16 weights plus bookkeeping)."""
    return {
        "module": {k: v.half() for k, v in sd.items()},
        "buffer_names": [],
        "optimizer": None,
        "param_shapes": [collections.OrderedDict((k, v.shape) for k, v in sd.items())],
        "frozen_param_shapes": None,
        "shared_params": {},
        "lr_scheduler": None,
        "sparse_tensor_module_names": [],
        "skipped_steps": 0,
        "global_steps": 12,
        "global_samples": 96,
        "dp_world_size": 1,
        "mp_world_size": 1,
        "ds_config": {"train_batch_size": 8, "fp16": {"enabled": True}},
        "ds_version": "0.19.8",
    }


def prefixed(sd, prefix):
    return {prefix + k: v for k, v in sd.items()}


LAYOUTS = {
    "bare.pth": lambda sd: sd,
    "model.pt": lambda sd: {"model": sd, "epoch": 3, "args": {"lr": 1e-3}},
    "module.bin": lambda sd: {"module": sd},
    "module_prefix.pth": lambda sd: prefixed(sd, "module."),
    "backbone_prefix.pth": lambda sd: {"state_dict": prefixed(sd, "backbone.")},
    "encoder_prefix.pth": lambda sd: prefixed(sd, "encoder."),
    "compiled.pth": lambda sd: {"model": prefixed(sd, "_orig_mod.")},
    "nested.pth": lambda sd: {"model": {"module": prefixed(sd, "module._orig_mod.backbone.")}},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_load_exactly(tmp_path, official, clip, reference, layout):
    path = tmp_path / layout
    torch.save(LAYOUTS[layout](official), path)
    model = make_model(init_values=0.1)
    report = load_checkpoint(model, path)
    assert sorted(report.loaded) == sorted(official) and not report.missing and not report.unexpected
    assert_matches_reference(model, official, report, reference, clip)


def test_deepspeed_model_states_fp16(tmp_path, official, clip, reference):
    path = tmp_path / "global_step12" / "mp_rank_00_model_states.pt"
    path.parent.mkdir()
    torch.save(deepspeed_states(official), path)
    model = make_model(init_values=0.1)
    report = load_checkpoint(model, path)
    assert not report.missing and model.head.weight.dtype == torch.float32
    half = {k: v.half().float() for k, v in official.items()}  # what fp16 storage keeps
    assert_matches_reference(model, half, report, reference, clip)
    # the checkpoint folder itself: DeepSpeed's `latest` names the tag folder
    (tmp_path / "latest").write_text("global_step12")
    again = make_model(init_values=0.1)
    report = load_checkpoint(again, tmp_path)
    assert report.path.endswith("global_step12/mp_rank_00_model_states.pt") and not report.missing
    (tmp_path / "latest").write_text("global_step99")
    with pytest.raises(CheckpointError, match="global_step99"):
        load_checkpoint(again, tmp_path)


def test_safetensors_with_prefix(tmp_path, official, clip, reference):
    path = tmp_path / "w.safetensors"
    save_file(prefixed(official, "_orig_mod."), str(path))
    model = make_model(init_values=0.1)
    report = load_checkpoint(model, path)
    assert len(report.loaded) == len(official)
    assert_matches_reference(model, official, report, reference, clip)


def test_pretraining_checkpoint_drops_decoder_and_reports_fresh_parts(
    tmp_path, official, clip, reference, caplog
):
    body = {k: v for k, v in official.items() if not k.startswith(("fc_norm", "head"))}
    ckpt = prefixed(body, "encoder.")
    ckpt["encoder.norm.weight"] = torch.ones(24)
    ckpt["encoder.norm.bias"] = torch.zeros(24)
    ckpt["decoder.blocks.0.attn.qkv.weight"] = torch.randn(48, 16)
    ckpt["decoder.norm.weight"] = torch.ones(16)
    ckpt["decoder.head.weight"] = torch.randn(1536, 16)
    ckpt["encoder_to_decoder.weight"] = torch.randn(16, 24)
    ckpt["mask_token"] = torch.zeros(1, 1, 16)
    path = tmp_path / "pretrain.pth"
    torch.save({"model": ckpt}, path)
    model = make_model(init_values=0.1)
    fresh_fc_norm = model.fc_norm.weight.clone()
    with caplog.at_level(logging.INFO, logger="ndar.backbones.checkpoint"):
        report = load_checkpoint(model, path)
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert {"decoder.norm.weight", "encoder_to_decoder.weight", "mask_token"} <= set(report.dropped)
    assert "norm.weight" in report.dropped and "fc_norm" in report.dropped["norm.weight"]
    assert not report.unexpected
    assert any("freshly initialised: fc_norm, head" in n for n in report.notes)
    assert "missing 4" in caplog.text and "pretrain.pth" in caplog.text
    assert torch.equal(model.fc_norm.weight, fresh_fc_norm)
    assert_matches_reference(model, official, report, reference, clip)

    mapped = make_model(init_values=0.1)
    ckpt["encoder.norm.weight"] = torch.full((24,), 2.0)
    torch.save({"model": ckpt}, path)
    report = load_checkpoint(mapped, path, norm_to_fc_norm=True)
    assert torch.equal(mapped.fc_norm.weight, torch.full((24,), 2.0))
    assert report.missing == ["head.weight", "head.bias"]


def test_kinetics_head_is_dropped_and_reported(tmp_path, official, clip, reference):
    ckpt = dict(official)
    ckpt["head.weight"] = torch.randn(400, 24)
    ckpt["head.bias"] = torch.randn(400)
    torch.save({"module": ckpt}, tmp_path / "k400.pth")
    model = make_model(init_values=0.1)
    report = load_checkpoint(model, tmp_path / "k400.pth")
    assert set(report.dropped) == {"head.weight", "head.bias"}
    assert "(400, 24)" in report.dropped["head.weight"]
    assert sorted(report.missing) == ["head.bias", "head.weight"]
    assert_matches_reference(model, official, report, reference, clip)


def test_learnable_pos_embed_is_interpolated_in_space_and_time(tmp_path, random_state, clip, reference):
    small = make_model(num_frames=2, img_size=16, use_learnable_pos_emb=True)  # grid (1, 1, 1)
    big = make_model(num_frames=8, img_size=64, use_learnable_pos_emb=True)  # grid (4, 4, 4)
    source = random_state(make_model(num_frames=4, img_size=32, use_learnable_pos_emb=True), seed=2)
    assert source["pos_embed"].shape == (1, 8, 24)  # grid (2, 2, 2)
    torch.save(source, tmp_path / "pe.pth")
    model = make_model(use_learnable_pos_emb=True)
    report = load_checkpoint(model, tmp_path / "pe.pth")
    assert not report.interpolated  # same grid: loaded as is
    assert_matches_reference(model, source, report, reference, clip)

    report = load_checkpoint(big, tmp_path / "pe.pth", pos_grid=(2, 2, 2))  # 8 tokens: ambiguous grid
    assert "pos_embed" in report.interpolated and "(2, 2, 2)" in report.interpolated["pos_embed"]
    new = big.pos_embed.detach().reshape(4, 4, 4, 24)
    old = source["pos_embed"].reshape(2, 2, 2, 24)
    # independent check of the time axis (linear, half-pixel centres): positions -0.25, .25, .75, 1.25
    spatial = torch.nn.functional.interpolate(old.permute(0, 3, 1, 2), size=(4, 4), mode="bicubic")
    spatial = spatial.permute(0, 2, 3, 1)  # (2, 4, 4, D)
    a, b = spatial[0], spatial[1]
    want = torch.stack([a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b])
    torch.testing.assert_close(new, want, atol=1e-5, rtol=1e-5)

    report = load_checkpoint(small, tmp_path / "pe.pth", pos_grid=(2, 2, 2))
    assert small.pos_embed.shape == (1, 1, 24)
    # 2 -> 1 with half-pixel centres samples the midpoint: bicubic and linear both give the mean
    torch.testing.assert_close(small.pos_embed[0, 0], source["pos_embed"][0].mean(0), atol=1e-5, rtol=0)


def test_pos_grid_inference_on_real_sizes():
    assert infer_pos_grid(1568, (4, 14, 14)) == (8, 14, 14)  # 16-frame checkpoint into an 8-frame model
    assert infer_pos_grid(1568, (8, 10, 10)) == (8, 14, 14)  # 224 checkpoint into a 160 model
    assert infer_pos_grid(8 * 16 * 16, (8, 14, 14)) == (8, 16, 16)
    assert infer_pos_grid(4 * 196, (8, 16, 16)) == (4, 14, 14)
    with pytest.raises(CheckpointError, match="token grid"):
        infer_pos_grid(7 * 3, (8, 14, 14))


def test_interpolation_keeps_constant_fields_and_identity():
    pos = torch.randn(1, 1, 1, 1, 6).expand(1, 3, 5, 5, 6).reshape(1, 75, 6)
    out = interpolate_pos_embed(pos, (3, 5, 5), (8, 7, 7))
    torch.testing.assert_close(out, pos[:, :1].expand(1, 8 * 49, 6), atol=1e-5, rtol=0)
    same = torch.randn(1, 2 * 3 * 3, 6)
    torch.testing.assert_close(interpolate_pos_embed(same, (2, 3, 3), (2, 3, 3)), same)


def test_learnable_pos_embed_into_sinusoid_model_is_dropped(tmp_path, random_state, clip, reference):
    source = random_state(make_model(use_learnable_pos_emb=True), seed=4)
    torch.save(source, tmp_path / "pe.pth")
    model = make_model()
    report = load_checkpoint(model, tmp_path / "pe.pth")
    assert "pos_embed" in report.dropped and "sinusoid" in report.dropped["pos_embed"]
    without = {k: v for k, v in source.items() if k != "pos_embed"}
    assert_matches_reference(model, without, report, reference, clip)


def test_wrong_architecture_is_an_error_naming_file_and_keys(tmp_path, random_state, official):
    wide = random_state(make_model(embed_dim=48), seed=0)
    torch.save(wide, tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match=r"wide\.pth.*shape mismatches.*patch_embed\.proj\.weight"):
        load_checkpoint(make_model(), tmp_path / "wide.pth")

    deep = random_state(make_model(depth=6), seed=0)
    torch.save(deep, tmp_path / "deep.pth")
    with pytest.raises(CheckpointError, match=r"deep\.pth.*matches too little.*unexpected: blocks\.2\."):
        load_checkpoint(make_model(), tmp_path / "deep.pth")
    report = load_checkpoint(make_model(), tmp_path / "deep.pth", strict_min_fraction=0.3)  # asked for
    assert not report.missing and "blocks.5.mlp.fc2.bias" in report.unexpected

    torch.save(
        {"model": {"conv1.weight": torch.zeros(3), "fc.weight": torch.zeros(2)}}, tmp_path / "resnet.pth"
    )
    with pytest.raises(CheckpointError, match=r"resnet\.pth.*0/\d+ model body tensors"):
        load_checkpoint(make_model(), tmp_path / "resnet.pth")

    zero3 = {k: torch.empty(0) for k in make_model().state_dict()}
    torch.save({"module": zero3}, tmp_path / "mp_rank_00_model_states.pt")
    with pytest.raises(CheckpointError, match="ZeRO-3.*zero_to_fp32"):
        load_checkpoint(make_model(), tmp_path / "mp_rank_00_model_states.pt")

    both = {**official, **prefixed(official, "module.")}
    torch.save(both, tmp_path / "twice.pth")
    with pytest.raises(CheckpointError, match=r"twice\.pth: two tensors map to"):
        load_checkpoint(make_model(init_values=0.1), tmp_path / "twice.pth")

    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "noweights.pth")
    with pytest.raises(CheckpointError, match=r"noweights\.pth: no state dict found"):
        load_checkpoint(make_model(), tmp_path / "noweights.pth")


def test_truncated_or_missing_files_are_clear_errors(tmp_path, official):
    torch.save(official, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth.*truncated or corrupt"):
        load_checkpoint(make_model(init_values=0.1), tmp_path / "cut.pth")
    save_file(official, str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors.*truncated or corrupt"):
        load_checkpoint(make_model(init_values=0.1), tmp_path / "cut.safetensors")
    with pytest.raises(CheckpointError, match=r"absent\.pth does not exist"):
        load_checkpoint(make_model(), tmp_path / "absent.pth")


class Evil:
    """Stands for any pickled object a weights_only load must refuse."""


def test_official_args_namespace_loads_but_arbitrary_objects_are_refused(tmp_path, official):
    torch.save(
        {"model": official, "args": argparse.Namespace(lr=1e-3, model="vit_base")}, tmp_path / "ok.pth"
    )
    assert len(load_checkpoint(make_model(init_values=0.1), tmp_path / "ok.pth").loaded) == len(official)
    torch.save({"model": official, "obj": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"(?s)evil\.pth.*weights_only"):
        load_checkpoint(make_model(), tmp_path / "evil.pth")
