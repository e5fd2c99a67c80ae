"""Registered backbones: build, run, exact parameterisation, spec, optimizer hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.optim import create_optimizer_v2

from ndar.backbones import (
    BACKBONES,
    IMAGENET_MEAN,
    create_backbone,
    get_spec,
    list_backbones,
    sinusoid_table,
)

EXPECTED = {"tiny", "small", "base", "large", "huge", "giant"}


REAL_BUILD_BUDGET = 10_000_000
"""Backbones at most this size (ViT-T ~5.7M) are also built with real weights at their registered
size; larger ones (ViT-H, ViT-g) would take seconds and gigabytes, so they are counted on the meta
device and built for real only shrunk."""


def tiny_overrides(name: str) -> dict:
    """Shrink any registered backbone to a few thousand parameters, keeping its patch and (for
    attention models) its head count, whatever its argument class."""
    args = BACKBONES.get(name).args
    return {"depth": 2, "embed_dim": 8 * getattr(args, "num_heads", 4)}


def tiny_input(name: str, frames: int = 4) -> torch.Tensor:
    """(B, C, T, H, W) clip of 2x2 patches: the smallest input every backbone accepts."""
    side = 2 * BACKBONES.get(name).args.patch_size
    return torch.randn(2, 3, frames, side, side)


def registered_param_count(name: str) -> int:
    """Parameters of `name` at its registered size, counted without allocating them."""
    with torch.device("meta"):
        model = create_backbone(name, num_classes=5)
    return sum(p.numel() for p in model.parameters())


def test_registry_names_are_prefixed_and_complete():
    names = list_backbones()
    assert {n.removeprefix("videomae_vit_") for n in names} >= EXPECTED
    assert all(n.startswith(("videomae_", "videomamba_")) for n in names)  # never shadow timm's names


def assert_builds_and_runs(name: str, **overrides) -> None:
    """Logits (B, 5) and pooled features (B, D) of the size `get_spec` promises, all finite."""
    torch.manual_seed(0)
    x = tiny_input(name)
    model = create_backbone(name, num_classes=5, num_frames=x.shape[2], img_size=x.shape[-1], **overrides)
    with torch.no_grad():
        logits = model.eval()(x)
        feats = model.forward_features(x)
    dim = get_spec(name, **overrides).embed_dim
    assert logits.shape == (2, 5) and feats.shape == (2, dim)
    assert torch.isfinite(logits).all() and torch.isfinite(feats).all()


@pytest.mark.parametrize("name", list_backbones())
def test_every_registered_backbone_builds_and_runs_shrunk(name):
    assert_builds_and_runs(name, **tiny_overrides(name))


@pytest.mark.parametrize("name", list_backbones())
def test_small_registered_backbones_build_and_run_at_full_size(name):
    count = registered_param_count(name)
    assert count > 0
    if count > REAL_BUILD_BUDGET:
        pytest.skip(
            f"{name}: {count / 1e6:.0f}M parameters > {REAL_BUILD_BUDGET / 1e6:.0f}M; counted on meta only"
        )
    assert_builds_and_runs(name)


def test_vit_tokens_pool_to_features_and_head():
    """The ViT's pooled features are fc_norm(mean of tokens) and its logits are head(features)."""
    name = "videomae_vit_small"
    overrides = tiny_overrides(name)
    torch.manual_seed(0)
    x = tiny_input(name)
    model = create_backbone(name, num_classes=5, num_frames=4, img_size=x.shape[-1], **overrides).eval()
    with torch.no_grad():
        logits, feats, tokens = model(x), model.forward_features(x), model.forward_tokens(x)
    assert tokens.shape == (2, 2 * 2 * 2, overrides["embed_dim"])  # (B, T/2 * 2 * 2, D)
    torch.testing.assert_close(feats, model.fc_norm(tokens.mean(1)))
    torch.testing.assert_close(logits, model.head(feats))


def analytic_param_count(
    dim: int, depth: int, hidden: int, patch: int, classes: int, tubelet: int = 2
) -> int:
    embed = dim * 3 * tubelet * patch * patch + dim
    block = 4 * dim + 3 * dim * dim + 2 * dim + dim * dim + dim + dim * hidden + hidden + hidden * dim + dim
    return embed + depth * block + 2 * dim + dim * classes + classes


@pytest.mark.parametrize(
    "name,dim,depth,hidden,patch,approx_m",
    [
        ("videomae_vit_small", 384, 12, 1536, 16, 22),
        ("videomae_vit_base", 768, 12, 3072, 16, 86),
        ("videomae_vit_large", 1024, 24, 4096, 16, 304),
        ("videomae_vit_huge", 1280, 32, 5120, 16, 632),
        ("videomae_vit_giant", 1408, 40, 6144, 14, 1011),
    ],
)
def test_full_size_parameter_count_on_meta(name, dim, depth, hidden, patch, approx_m):
    with torch.device("meta"):
        model = create_backbone(name, num_classes=400)
    got = sum(p.numel() for p in model.parameters())
    assert got == analytic_param_count(dim, depth, hidden, patch, 400)
    assert abs(got / 1e6 - approx_m) < 2  # the published sizes (ViT-L ~304M, ViT-H ~632M, ViT-g ~1011M)
    assert model.blocks[0].mlp.fc1.out_features == hidden


def test_exact_state_dict_keys_and_shapes():
    model = create_backbone("videomae_vit_tiny", num_classes=16, depth=1)
    sd = model.state_dict()
    assert "pos_table" not in sd and "pos_embed" not in sd
    expected = {
        "patch_embed.proj.weight": (192, 3, 2, 16, 16),
        "patch_embed.proj.bias": (192,),
        "blocks.0.norm1.weight": (192,),
        "blocks.0.norm1.bias": (192,),
        "blocks.0.attn.qkv.weight": (576, 192),
        "blocks.0.attn.q_bias": (192,),
        "blocks.0.attn.v_bias": (192,),
        "blocks.0.attn.proj.weight": (192, 192),
        "blocks.0.attn.proj.bias": (192,),
        "blocks.0.norm2.weight": (192,),
        "blocks.0.norm2.bias": (192,),
        "blocks.0.mlp.fc1.weight": (768, 192),
        "blocks.0.mlp.fc1.bias": (768,),
        "blocks.0.mlp.fc2.weight": (192, 768),
        "blocks.0.mlp.fc2.bias": (192,),
        "fc_norm.weight": (192,),
        "fc_norm.bias": (192,),
        "head.weight": (16, 192),
        "head.bias": (16,),
    }
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert model.blocks[0].norm1.eps == 1e-6 and model.fc_norm.eps == 1e-6

    scaled = create_backbone("videomae_vit_tiny", depth=1, init_values=0.1, use_learnable_pos_emb=True)
    sd = scaled.state_dict()
    assert sd["pos_embed"].shape == (1, 8 * 14 * 14, 192)
    assert torch.equal(sd["blocks.0.gamma_1"], torch.full((192,), 0.1))
    assert "blocks.0.gamma_2" in sd
    no_bias = create_backbone("videomae_vit_tiny", depth=1, qkv_bias=False).state_dict()
    assert "blocks.0.attn.q_bias" not in no_bias


def test_sinusoid_table_matches_formula(reference):
    ours = sinusoid_table(12, 10)[0].double().numpy()
    np.testing.assert_allclose(ours, reference["sinusoid"](12, 10), atol=1e-6)


@pytest.mark.parametrize("init_values,learnable", [(0.0, False), (0.5, True)])
def test_forward_matches_independent_reference(reference, random_state, init_values, learnable):
    model = create_backbone(
        "videomae_vit_tiny",
        num_classes=7,
        num_frames=4,
        img_size=32,
        depth=2,
        embed_dim=24,
        init_values=init_values,
        use_learnable_pos_emb=learnable,
    ).eval()
    sd = random_state(model, seed=1)
    model.load_state_dict(sd)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        got = model(x).double()
    want = reference["logits"](sd, x, num_heads=3)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_shape_error_states_actual_and_expected():
    model = create_backbone("videomae_vit_tiny", num_frames=4, img_size=32, depth=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 32, 32\).*got \(1, 3, 8, 32, 32\)"):
        model(torch.randn(1, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        create_backbone("videomae_vit_tiny", img_size=30)
    with pytest.raises(TypeError, match="unknown override.*embed_dimm"):
        create_backbone("videomae_vit_tiny", embed_dimm=3)
    with pytest.raises(KeyError, match="videomae_vit_base"):
        create_backbone("vit_base_patch16_224")


def test_grad_checkpointing_gives_same_values_and_grads():
    kw = dict(num_frames=4, img_size=32, depth=2, embed_dim=24)
    torch.manual_seed(0)
    plain = create_backbone("videomae_vit_tiny", **kw)
    ckpt = create_backbone("videomae_vit_tiny", grad_checkpointing=True, **kw)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    out_a, out_b = plain(x), ckpt(x)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    for (name, pa), pb in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_drop_path_and_head_dropout_only_in_training():
    model = create_backbone(
        "videomae_vit_tiny", num_frames=4, img_size=32, depth=2, drop_path_rate=0.5, head_drop_rate=0.5
    )
    assert (
        model.blocks[1].drop_path.drop_prob == 0.5
        and model.blocks[0].drop_path.__class__.__name__ == "Identity"
    )
    x = torch.randn(4, 3, 4, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_timm_layer_decay_groups_follow_reference_rule():
    depth, decay = 3, 0.5
    model = create_backbone("videomae_vit_tiny", depth=depth, embed_dim=24, use_learnable_pos_emb=True)
    opt = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=decay)
    names = {id(p): n for n, p in model.named_parameters()}

    def expected_layer(name: str) -> int:
        if name.startswith(("patch_embed", "pos_embed")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return depth + 1

    seen = set()
    for group in opt.param_groups:
        for p in group["params"]:
            name = names[id(p)]
            seen.add(name)
            assert group["lr_scale"] == pytest.approx(decay ** (depth + 1 - expected_layer(name))), name
            no_decay = p.ndim <= 1 or name == "pos_embed"
            assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
    assert seen == set(names.values())
    assert "pos_embed" in model.no_weight_decay()


def test_spec_defaults_and_overrides():
    spec = get_spec("videomae_vit_huge")
    assert spec.mean == IMAGENET_MEAN and spec.std == (0.229, 0.224, 0.225) and spec.normalize
    assert (spec.num_frames, spec.img_size, spec.embed_dim) == (16, 224, 1280)
    spec = get_spec("videomae_vit_tiny", embed_dim=64, normalize=False, sampling_rate=4, num_frames=8)
    assert (spec.embed_dim, spec.normalize, spec.sampling_rate, spec.num_frames) == (64, False, 4, 8)
    with pytest.raises(TypeError, match="unknown override"):
        get_spec("videomae_vit_tiny", meann=(0, 0, 0))
    with pytest.raises(ValueError, match="3 values"):
        get_spec("videomae_vit_tiny", mean=(0.5, 0.5))


def test_bf16_autocast_and_bf16_weights_run():
    torch.manual_seed(0)
    model = create_backbone("videomae_vit_tiny", num_frames=4, img_size=32, depth=2, embed_dim=24).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model.forward_features(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = model.forward_features(x)
        half = model.to(torch.bfloat16).forward_features(x.bfloat16())
    assert auto.dtype == torch.bfloat16 and half.dtype == torch.bfloat16
    torch.testing.assert_close(auto.float(), ref, atol=0.1, rtol=0.05)
    torch.testing.assert_close(half.float(), ref, atol=0.1, rtol=0.05)
