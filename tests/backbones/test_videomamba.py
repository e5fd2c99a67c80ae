"""VideoMamba: official layouts load and compute what an independent functional forward computes; the
scan paths agree with a plain sequential scan; the fourth track fine-tunes and extracts end to end.

The functional forward below is written from the published formulation (VideoMamba / Mamba papers and
the official key names) with plain float64 tensor ops and a token-by-token loop, sharing no code with
`ndar.backbones.videomamba` or `ndar.backbones.scan`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ndar.backbones import (
    CheckpointError,
    create_backbone,
    get_spec,
    load_checkpoint,
    load_model_folder,
    save_model_folder,
)
from ndar.backbones.scan import chunked_selective_scan, cuda_scan_fn, selective_scan, stepwise_selective_scan

SCANS = {"chunked": chunked_selective_scan, "stepwise": stepwise_selective_scan}

ROOT = Path(__file__).resolve().parents[2]
ARCH = {"embed_dim": 32, "depth": 2}  # videomamba_test: 32 wide, 2 blocks, patch 16, tubelet 1


# ------------------------------------------------------------------ independent references
def sequential_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The selective scan one token at a time in float64: h = exp(dA) h + d B u, y = C h + D u."""
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = torch.log1p(torch.exp(delta))
    batch, dim, length = u.shape
    h = torch.zeros(batch, dim, A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]  # (B, D, 1)
        h = torch.exp(dt * A) * h + dt * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D.double()[:, None] * u
    if z is not None:
        z = z.double()
        y = y * z / (1 + torch.exp(-z))
    return y


def _rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _silu(x):
    return x / (1 + torch.exp(-x))


def _direction(sd, p, s, x, z):
    """One direction of the bidirectional mixer: x, z (B, L, E) -> (B, L, E)."""
    w, bias = sd[f"{p}conv1d{s}.weight"][:, 0], sd[f"{p}conv1d{s}.bias"]  # (E, K), (E,)
    k = w.shape[1]
    padded = torch.cat((torch.zeros(x.shape[0], k - 1, x.shape[2], dtype=x.dtype), x), dim=1)
    conv = sum(padded[:, j : j + x.shape[1]] * w[:, j] for j in range(k)) + bias  # causal, (B, L, E)
    xc = _silu(conv)
    a = -torch.exp(sd[f"{p}A_log" if not s else f"{p}A_b_log"])  # (E, N)
    n = a.shape[1]
    dbl = xc @ sd[f"{p}x_proj{s}.weight"].T  # (B, L, R + 2N)
    r = dbl.shape[-1] - 2 * n
    delta = dbl[..., :r] @ sd[f"{p}dt_proj{s}.weight"].T  # (B, L, E), bias in the scan
    y = sequential_scan(
        xc.transpose(1, 2), delta.transpose(1, 2), a, dbl[..., r : r + n].transpose(1, 2),
        dbl[..., r + n :].transpose(1, 2), sd[f"{p}D{s}"], z.transpose(1, 2), sd[f"{p}dt_proj{s}.bias"], True,
    )  # fmt: skip
    return y.transpose(1, 2)


def reference_logits(sd: dict, x: torch.Tensor, patch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(cls feature, logits) of VideoMamba from raw official-key tensors, in float64."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    b, c, t, hh, ww = x.shape
    w = sd["patch_embed.proj.weight"]  # (D, C, 1, p, p)
    dim = w.shape[0]
    xp = x.reshape(b, c, t, hh // patch, patch, ww // patch, patch)
    tok = torch.einsum("bcthpwq,dcpq->bthwd", xp, w[:, :, 0]) + sd["patch_embed.proj.bias"]
    tok = tok.reshape(b, t, -1, dim) + sd["pos_embed"][0, 1:] + sd["temporal_pos_embedding"][0][:, None]
    cls = (sd["cls_token"] + sd["pos_embed"][:, :1]).expand(b, 1, dim)
    hidden = torch.cat((cls, tok.reshape(b, -1, dim)), dim=1)  # cls first, then frame by frame
    residual = None
    depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    for i in range(depth):
        residual = hidden if residual is None else residual + hidden
        h = _rms(residual, sd[f"layers.{i}.norm.weight"])
        p = f"layers.{i}.mixer."
        xz = h @ sd[p + "in_proj.weight"].T
        xi, z = xz.chunk(2, dim=-1)
        fwd = _direction(sd, p, "", xi, z)
        bwd = _direction(sd, p, "_b", xi.flip(1), z.flip(1)).flip(1)
        hidden = (fwd + bwd) @ sd[p + "out_proj.weight"].T
    feats = _rms(residual + hidden, sd["norm_f.weight"])[:, 0]
    return feats, feats @ sd["head.weight"].T + sd["head.bias"]


def linear_resize(table: np.ndarray, size: int) -> np.ndarray:
    """Linear resampling of rows with half-pixel centres (align_corners=False), edges clamped."""
    old = table.shape[0]
    out = np.empty((size, table.shape[1]))
    for i in range(size):
        src = min(max((i + 0.5) * old / size - 0.5, 0.0), old - 1)
        lo = int(math.floor(src))
        hi = min(lo + 1, old - 1)
        out[i] = table[lo] * (1 - (src - lo)) + table[hi] * (src - lo)
    return out


def official_state(num_classes=16, num_frames=4, img_size=32, seed=0) -> dict[str, torch.Tensor]:
    """An official-layout state dict with every tensor random (no tensor left at a trivial init)."""
    model = create_backbone("videomamba_test", num_classes, num_frames, img_size, **ARCH)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, value in model.state_dict().items():
        noise = torch.randn(value.shape, generator=g)
        if key.endswith(("A_log", "A_b_log")):
            sd[key] = value + 0.1 * noise
        elif key.endswith((".norm.weight", "norm_f.weight", ".D", ".D_b")):
            sd[key] = 1 + 0.2 * noise
        else:
            sd[key] = 0.2 * noise
    return sd


def clip(num_frames=4, img_size=32, batch=2, seed=1):
    return torch.randn(
        batch, 3, num_frames, img_size, img_size, generator=torch.Generator().manual_seed(seed)
    )


def assert_matches_reference(model, sd, x, atol=1e-4):
    model.eval()
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
    ref_feats, ref_logits = reference_logits(sd, x)
    torch.testing.assert_close(feats.double(), ref_feats, atol=atol, rtol=1e-4)
    torch.testing.assert_close(logits.double(), ref_logits, atol=atol, rtol=1e-4)


# ------------------------------------------------------------------ the scan
def _scan_inputs(batch=2, dim=6, n=4, length=37, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    t = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) - 1,
        "A": -torch.rand(dim, n, generator=g) * 4,
        "B": torch.randn(batch, n, length, generator=g),
        "C": torch.randn(batch, n, length, generator=g),
        "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": torch.randn(dim, generator=g) * 0.5,
    }
    return {k: v.requires_grad_(grad) for k, v in t.items()}


@pytest.mark.parametrize("chunk", [1, 3, 8, 32, 64])
@pytest.mark.parametrize("path", sorted(SCANS))
def test_pytorch_scans_equal_the_sequential_scan(path, chunk):
    scan = SCANS[path]
    t = _scan_inputs()
    got = scan(**t, delta_softplus=True, chunk=chunk)
    torch.testing.assert_close(got.double(), sequential_scan(**t, delta_softplus=True), atol=1e-5, rtol=1e-5)
    plain = {k: t[k] for k in ("u", "A", "B", "C")} | {"delta": t["delta"].abs()}  # no softplus: delta >= 0
    torch.testing.assert_close(
        scan(**plain, chunk=chunk).double(), sequential_scan(**plain), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("path", sorted(SCANS))
def test_pytorch_scan_gradients_equal_the_sequential_scans(path):
    t = _scan_inputs(length=21, grad=True)
    weights = torch.randn(2, 6, 21, generator=torch.Generator().manual_seed(3))
    (SCANS[path](**t, delta_softplus=True, chunk=8) * weights).sum().backward()
    got = {k: v.grad.clone() for k, v in t.items()}
    ref_inputs = {k: v.detach().double().requires_grad_(True) for k, v in t.items()}
    (sequential_scan(**ref_inputs, delta_softplus=True) * weights.double()).sum().backward()
    for key, value in ref_inputs.items():
        torch.testing.assert_close(got[key].double(), value.grad, atol=1e-4, rtol=1e-4, msg=key)


def test_scan_dispatch_on_cpu_and_a_missing_kernel_refused(monkeypatch):
    import ndar.backbones.scan as scan_module

    used = []
    for name in ("chunked", "stepwise"):
        real = getattr(scan_module, f"{name}_selective_scan")
        monkeypatch.setattr(
            scan_module, f"{name}_selective_scan", lambda *a, n=name, f=real: used.append(n) or f(*a)
        )
    t = _scan_inputs(grad=True)
    with torch.no_grad():
        inference = selective_scan(**t, delta_softplus=True)
    training = selective_scan(**t, delta_softplus=True)
    assert used == ["stepwise", "chunked"]  # the measured choice: stepwise for inference
    torch.testing.assert_close(inference, training.detach(), atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        selective_scan(**t, impl="cuda")
    with pytest.raises(ValueError, match="scan_impl"):
        selective_scan(**t, impl="fast")


@pytest.mark.skipif(
    not torch.cuda.is_available() or cuda_scan_fn() is None, reason="needs a GPU and mamba-ssm installed"
)
def test_cuda_kernel_equals_the_chunked_scan():
    t = {k: v.cuda() for k, v in _scan_inputs(length=300).items()}
    cuda = selective_scan(**t, delta_softplus=True, impl="cuda")
    reference = sequential_scan(**{k: v.cpu() for k, v in t.items()}, delta_softplus=True)
    torch.testing.assert_close(cuda.double().cpu(), reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cuda, chunked_selective_scan(**t, delta_softplus=True), atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ the model
def test_model_equals_the_functional_forward():
    sd = official_state()
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    model.load_state_dict(sd)
    assert_matches_reference(model, sd, clip())


def test_registered_sizes_are_the_official_ones():
    counts = {}
    for name in ("videomamba_tiny", "videomamba_small", "videomamba_middle"):
        with torch.device("meta"):
            model = create_backbone(name, num_classes=400, num_frames=8, img_size=224)
        counts[name] = sum(p.numel() for p in model.parameters()) / 1e6
        mixer = model.layers[0].mixer
        assert mixer.dt_rank == math.ceil(model.embed_dim / 16) and mixer.d_state == 16
        assert mixer.conv1d.weight.shape == (2 * model.embed_dim, 1, 4)
        assert get_spec(name).mean == (0.485, 0.456, 0.406) and get_spec(name).num_frames == 32
    assert counts == pytest.approx(  # the paper's 7M / 26M / 74M
        {"videomamba_tiny": 7.03, "videomamba_small": 25.57, "videomamba_middle": 73.88}, abs=0.01
    )


def test_shapes_and_bad_input():
    model = create_backbone("videomamba_test", num_classes=5, num_frames=4, img_size=32, **ARCH)
    x = clip()
    assert model(x).shape == (2, 5) and model.forward_features(x).shape == (2, 32)
    assert model.grid == (4, 2, 2) and model.pos_embed.shape == (1, 5, 32)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\) = \(B, 3, 4, 32, 32\)"):
        model(torch.zeros(2, 3, 8, 32, 32))
    with pytest.raises(TypeError, match="num_heads"):
        create_backbone("videomamba_test", num_heads=4)


def test_grad_checkpointing_and_layer_decay_groups():
    from timm.optim import create_optimizer_v2

    model = create_backbone("videomamba_test", 16, 4, 32, grad_checkpointing=True, drop_path_rate=0.1, **ARCH)
    model(clip()).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    scales = sorted({round(g["lr_scale"], 6) for g in optimizer.param_groups})
    assert scales == [0.125, 0.25, 0.5, 1.0]  # embeddings, 2 blocks, norm_f + head


# ------------------------------------------------------------------ checkpoint layouts
def _save(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _layouts(sd: dict, tmp: Path) -> dict[str, Path]:
    deepspeed = tmp / "ds"
    (deepspeed).mkdir()
    (deepspeed / "latest").write_text("global_step40")
    _save({"module": sd, "buffer_names": []}, deepspeed / "global_step40" / "mp_rank_00_model_states.pt")
    return {
        "bare": _save(sd, tmp / "bare.pth"),
        "model+args": _save({"model": sd, "args": argparse.Namespace(num_frames=4)}, tmp / "model.pth"),
        "module-prefixed": _save({"module": {f"module.{k}": v for k, v in sd.items()}}, tmp / "prefixed.pt"),
        "deepspeed-folder": deepspeed,
    }


def test_every_official_layout_loads_and_computes_the_reference(tmp_path):
    sd = official_state()
    for name, path in _layouts(sd, tmp_path).items():
        model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
        report = load_checkpoint(model, path)
        assert not report.missing and not report.unexpected and not report.dropped, name
        assert_matches_reference(model, sd, clip())


def test_temporal_embedding_is_resized_to_the_clip_and_a_foreign_head_dropped(tmp_path):
    sd = official_state(num_classes=400, num_frames=8)  # a K400 model trained on 8 frames
    path = _save({"model": sd}, tmp_path / "k400_f8.pth")
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    report = load_checkpoint(model, path)
    assert set(report.dropped) == {"head.weight", "head.bias"} and "400" in report.dropped["head.weight"]
    assert "temporal_pos_embedding" in report.interpolated and report.missing == ["head.weight", "head.bias"]
    expected = dict(sd)
    expected["temporal_pos_embedding"] = torch.from_numpy(
        linear_resize(sd["temporal_pos_embedding"][0].double().numpy(), 4)
    )[None]
    expected["head.weight"], expected["head.bias"] = model.head.weight.detach(), model.head.bias.detach()
    assert_matches_reference(model, expected, clip())


def test_masked_pretraining_checkpoint_drops_its_decoder_and_keeps_norm_f_fresh(tmp_path):
    sd = official_state()
    pretrain = {k: v for k, v in sd.items() if not k.startswith(("head.", "norm_f."))}
    pretrain["norm.weight"] = sd["norm_f.weight"]
    pretrain["clip_decoder.0.head.weight"] = torch.randn(512, 32)
    pretrain["clip_decoder.0.norm.weight"] = torch.ones(512)
    path = _save({"model": pretrain}, tmp_path / "mask_pt.pth")
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    report = load_checkpoint(model, path)
    assert {"norm.weight", "clip_decoder.0.head.weight", "clip_decoder.0.norm.weight"} <= set(report.dropped)
    assert sorted(report.missing) == ["head.bias", "head.weight", "norm_f.weight"]
    assert torch.equal(model.norm_f.weight, torch.ones(32))  # as the official fine-tuning starts
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    load_checkpoint(model, path, norm_to_fc_norm=True)
    assert torch.equal(model.norm_f.weight, sd["norm_f.weight"])


def test_imagenet_checkpoint_is_inflated_and_resized(tmp_path):
    sd = official_state(num_classes=1000, img_size=48)
    image = {k: v for k, v in sd.items() if k != "temporal_pos_embedding"}
    image["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"][:, :, 0]  # Conv2d (D, 3, p, p)
    image["pos_embed"][:, 1:] = 0.7  # constant over space: any interpolation keeps it
    path = _save({"model": image}, tmp_path / "videomamba_t16_in1k_res224.pth")
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    report = load_checkpoint(model, path)
    assert {"patch_embed.proj.weight", "pos_embed"} <= set(report.interpolated)
    assert sorted(report.missing) == ["head.bias", "head.weight", "temporal_pos_embedding"]
    assert torch.equal(model.patch_embed.proj.weight, sd["patch_embed.proj.weight"])
    assert torch.equal(model.pos_embed[:, :1], sd["pos_embed"][:, :1])  # the cls row is kept
    torch.testing.assert_close(model.pos_embed[:, 1:], torch.full((1, 4, 32), 0.7))
    assert torch.equal(model.temporal_pos_embedding, torch.zeros(1, 4, 32))


def test_wrong_architecture_and_unsafe_files_are_refused(tmp_path):
    sd = official_state()
    path = _save(sd, tmp_path / "tiny.pth")
    model = create_backbone("videomamba_test", 16, 4, 32, embed_dim=48, depth=2)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(model, path)
    unsafe = _save({"model": sd, "extra": Path("x")}, tmp_path / "unsafe.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(create_backbone("videomamba_test", 16, 4, 32, **ARCH), unsafe)


def test_model_folder_round_trip(tmp_path):
    model = create_backbone("videomamba_test", 16, 4, 32, **ARCH)
    model.load_state_dict(official_state())
    spec = get_spec("videomamba_test", num_frames=4, img_size=32, **ARCH)
    save_model_folder(model, spec, tmp_path / "m")
    loaded, loaded_spec = load_model_folder(tmp_path / "m")
    x = clip()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    assert loaded_spec.num_frames == 4 and loaded_spec.sampling_rate == 2 and loaded_spec.embed_dim == 32


# ------------------------------------------------------------------ the fourth track end to end
def test_fourth_track_finetunes_and_extracts_beside_a_vit(synth_root, tmp_path):
    from ndar.config import load_config
    from ndar.extract import ExtractConfig, ModelEntry
    from ndar.extract import run as extract
    from ndar.extract.outputs import read_features
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.engine import run as finetune

    tiny = ROOT / "configs" / "finetune" / "tiny" / "videomamba_m.yaml"
    overrides = [
        f"data.root={synth_root}",
        f"output={tmp_path / 'ft' / 'videomamba_m_rear'}",
        "model.overrides={depth: 2, embed_dim: 32, patch_size: 32, subtract_video_mean: true}",
        "model.num_frames=8",
        "data.k=3",
        "data.num_workers=0",
        "data.cache_max_frames=8",
        "train.batch_size=4",
        "train.epochs=1",
        "train.max_steps_per_epoch=3",
        "train.log_every=1",
    ]
    out = finetune(load_config(FinetuneConfig, tiny, overrides))
    model, spec = load_model_folder(out)
    assert type(model).__name__ == "VideoMamba" and spec.num_frames == 8 and spec.subtract_video_mean
    vit = create_backbone("videomae_vit_tiny", 16, 4, 32, depth=1, embed_dim=48, num_heads=2)
    save_model_folder(
        vit, get_spec("videomae_vit_tiny", num_frames=4, img_size=32), tmp_path / "ft" / "vit_rear"
    )
    cfg = ExtractConfig(
        data_root=synth_root, splits=["A2"], views=["rear"], batch_size=4, device="cpu", stride=4,
        models=[ModelEntry("videomamba_m", str(tmp_path / "ft" / "videomamba_m_{view}")),
                ModelEntry("vit", str(tmp_path / "ft" / "vit_{view}"))],
        out=tmp_path / "features",
    )  # fmt: skip
    summary = extract(cfg)
    assert summary["failed"] == 0 and summary["done"] >= 1
    mamba_files = sorted((tmp_path / "features" / "videomamba_m" / "rear").glob("*.npz"))
    vit_files = sorted((tmp_path / "features" / "vit" / "rear").glob("*.npz"))
    assert mamba_files and [p.name for p in mamba_files] == [p.name for p in vit_files]
    feats = read_features(mamba_files[0])
    assert feats["features"].shape[1] == 32 and feats["probs"].shape[1] == 16
    np.testing.assert_allclose(feats["probs"].sum(1), 1.0, atol=1e-4)


def test_main_job_with_the_fourth_track_plans_eight_feature_sets(tmp_path, monkeypatch):
    """`tracks` + videomamba_m: its fine-tunes, one extraction of 4 tracks, 8 sets in the ensemble
    (checked on the stage plan; no stage is run). The shipped synthetic job leaves it off."""
    from ndar.config import load_config
    from ndar.pipeline import MainConfig
    from ndar.plan import build_plan

    main = ROOT / "configs" / "main" / "synthetic.yaml"
    assert "videomamba_m" not in load_config(MainConfig, main).tracks
    monkeypatch.chdir(ROOT)
    overrides = [
        f"runs_dir={tmp_path / 'runs'}",
        f"submissions_dir={tmp_path / 'subs'}",
        "jobs=1",
        "tracks=[k400_vith, hybrid_vitl, ego_vitl, videomamba_m]",
        "views=[rear, dashboard]",
    ]
    plan = build_plan(load_config(MainConfig, main, overrides))
    names = plan.names
    assert "finetune videomamba_m/rear fold1" in names and "heads tim/videomamba_m" in names
    configs = {s.config.path.name: s.config.data for s in plan.stages if s.config is not None}
    ft = configs["finetune_videomamba_m_dashboard_fold0.yaml"]
    assert ft["model"]["backbone"] == "videomamba_test" and ft["data"]["view"] == "dashboard"
    extract = configs["extract_fold0.yaml"]
    assert [m["track"] for m in extract["models"]][-1] == "videomamba_m" and len(extract["models"]) == 4
    ensemble = configs["ensemble.yaml"]
    assert len(ensemble["feature_sets"]) == 8 and "videomamba_m/dashboard" in ensemble["feature_sets"]
    assert {s["name"] for s in ensemble["sources"]} >= {"tim_videomamba_m", "actionformer_videomamba_m"}


def test_real_track_recipe_shrunk_takes_a_step_with_layer_decay():
    """configs/finetune/videomamba_m.yaml's optimizer (layer decay 0.8) on a shrunk VideoMamba."""
    from ndar.config import load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.engine import build_model, build_optimizer

    shrink = [
        "model.backbone=videomamba_test",
        "model.overrides={depth: 2, embed_dim: 32}",
        "model.pretrained=null",
        "model.num_frames=4",
        "model.img_size=32",
    ]
    cfg = load_config(FinetuneConfig, ROOT / "configs" / "finetune" / "videomamba_m.yaml", shrink)
    model, spec = build_model(cfg)
    assert (
        type(model).__name__ == "VideoMamba" and spec.sampling_rate == 2 and model.args.drop_path_rate == 0.4
    )
    optimizer = build_optimizer(model, cfg, 1e-3)
    assert sorted({round(g["lr_scale"], 4) for g in optimizer.param_groups}) == [0.512, 0.64, 0.8, 1.0]
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    torch.nn.functional.cross_entropy(model(clip()), torch.tensor([1, 7])).backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.ndim > 1)
