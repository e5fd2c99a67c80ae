"""`from_official` builds ActionFormer from the official config and weights, and its outputs equal an
independent functional forward written here from the raw tensors of the official state_dict
(following actionformer_release: LocalMaskedMHCA, TransformerBlock, ConvTransformerBackbone,
FPNIdentity, PtTransformerCls/RegHead)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ndar.heads.actionformer import from_official

C_IN, NUM_CLASSES = 12, 7


def official_cfg(window=5, droppath=0.1, arch=(2, 2, 3), **model) -> dict:
    levels = arch[2] + 1
    cfg = {
        "backbone_type": "convTransformer",
        "fpn_type": "identity",
        "backbone_arch": arch,
        "scale_factor": 2,
        "input_dim": C_IN,
        "max_seq_len": 64,
        "max_buffer_len_factor": 4.0,
        "n_head": 2,
        "n_mha_win_size": window,
        "embd_kernel_size": 3,
        "embd_dim": 16,
        "embd_with_ln": True,
        "fpn_dim": 16,
        "fpn_with_ln": True,
        "head_dim": 16,
        "regression_range": [[0, 4], [2, 8], [4, 16], [8, 32], [16, 64], [32, 10000]][:levels],
        "head_num_layers": 3,
        "head_kernel_size": 3,
        "head_with_ln": True,
        "use_abs_pe": False,
        "use_rel_pe": False,
        "num_classes": NUM_CLASSES,
        "train_cfg": {"droppath": droppath, "dropout": 0.1, "init_loss_norm": 250, "clip_grad_l2norm": 1.0},
        "test_cfg": {"pre_nms_topk": 5000, "max_seg_num": 2000, "min_score": 0.001, "nms_sigma": 0.4},
    }
    cfg.update(model)
    return cfg


def random_weights(cfg: dict, seed: int) -> dict[str, torch.Tensor]:
    """Every tensor of the official layout drawn at random (LayerScale included, so that no branch is
    near-silent as at its 1e-4 init)."""
    g = torch.Generator().manual_seed(seed)
    layout = from_official(cfg).state_dict()
    return {k: torch.randn(v.shape, generator=g) * (0.5 if v.ndim > 1 else 0.3) for k, v in layout.items()}


# ------------------------------------------------------------------- functional reference forward


def ln(w, p, x):  # (B, C, T), LayerNorm over channels
    mu = x.mean(1, keepdim=True)
    var = ((x - mu) ** 2).mean(1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w[p + ".weight"] + w[p + ".bias"]


def masked_conv(w, p, x, mask, stride=1, groups=1):  # mask (B, 1, T) float
    weight = w[p + ".conv.weight"]
    out = F.conv1d(x, weight, w.get(p + ".conv.bias"), stride, weight.shape[-1] // 2, groups=groups)
    out_mask = mask[:, :, ::stride]
    return out * out_mask, out_mask


def attention(w, p, x, mask, n_head, window, stride):
    c = x.shape[1]
    q, qmask = masked_conv(w, p + ".query_conv", x, mask, stride, groups=c)
    k, kmask = masked_conv(w, p + ".key_conv", x, mask, stride, groups=c)
    v, _ = masked_conv(w, p + ".value_conv", x, mask, stride, groups=c)
    q = F.conv1d(ln(w, p + ".query_norm", q), w[p + ".query.weight"], w[p + ".query.bias"])
    k = F.conv1d(ln(w, p + ".key_norm", k), w[p + ".key.weight"], w[p + ".key.bias"])
    v = F.conv1d(ln(w, p + ".value_norm", v), w[p + ".value.weight"], w[p + ".value.bias"])
    b, _, t = q.shape
    hd = c // n_head
    out = torch.zeros(b, c, t)
    half = window // 2 if window > 1 else t
    for bi in range(b):
        for i in range(t):
            if not qmask[bi, 0, i]:
                continue  # the official code zeroes a padded query's attention
            keys = [j for j in range(max(0, i - half), min(t, i + half + 1)) if kmask[bi, 0, j]]
            for h in range(n_head):
                sl = slice(h * hd, (h + 1) * hd)
                scores = torch.stack([(q[bi, sl, i] / math.sqrt(hd)) @ k[bi, sl, j] for j in keys])
                probs = torch.softmax(scores, 0)
                out[bi, sl, i] = sum(pr * v[bi, sl, j] for pr, j in zip(probs, keys))
    out = F.conv1d(out, w[p + ".proj.weight"], w[p + ".proj.bias"]) * qmask
    return out, qmask


def block(w, p, x, mask, n_head, window, stride, layer_scale):
    out, omask = attention(w, p + ".attn", ln(w, p + ".ln1", x), mask, n_head, window, stride)
    skip = F.max_pool1d(x, stride + 1, stride, (stride + 1) // 2) if stride > 1 else x
    ls_attn = w[p + ".drop_path_attn.scale"] if layer_scale else 1.0
    ls_mlp = w[p + ".drop_path_mlp.scale"] if layer_scale else 1.0
    out = skip * omask + ls_attn * out
    hidden = F.gelu(F.conv1d(ln(w, p + ".ln2", out), w[p + ".mlp.0.weight"], w[p + ".mlp.0.bias"]))
    mlp = F.conv1d(hidden, w[p + ".mlp.3.weight"], w[p + ".mlp.3.bias"])
    return out + ls_mlp * (mlp * omask), omask


def head(w, p, x, mask, layers, out_name):
    for i in range(layers - 1):
        x, _ = masked_conv(w, f"{p}.head.{i}", x, mask)
        x = F.relu(ln(w, f"{p}.norm.{i}", x))
    out, _ = masked_conv(w, f"{p}.{out_name}", x, mask)
    return out


def reference_forward(w, cfg, x, mask):
    """x (B, T, C_in) zero on padding, mask (B, T) -> per level (logits, offsets, mask)."""
    arch, n_head, window = cfg["backbone_arch"], cfg["n_head"], cfg["n_mha_win_size"]
    layer_scale = cfg["train_cfg"]["droppath"] > 0
    feat, m = x.transpose(1, 2), mask[:, None, :].float()
    for i in range(arch[0]):
        feat, m = masked_conv(w, f"backbone.embd.{i}", feat, m)
        feat = F.relu(ln(w, f"backbone.embd_norm.{i}", feat))
    for i in range(arch[1]):
        feat, m = block(w, f"backbone.stem.{i}", feat, m, n_head, window, 1, layer_scale)
    feats, masks = [feat], [m]
    for i in range(arch[2]):
        feat, m = block(w, f"backbone.branch.{i}", feat, m, n_head, window, 2, layer_scale)
        feats.append(feat)
        masks.append(m)
    outs = []
    for level, (f, m) in enumerate(zip(feats, masks)):
        f = ln(w, f"neck.fpn_norms.{level}", f)
        logits = head(w, "cls_head", f, m, cfg["head_num_layers"], "cls_head")
        offsets = head(w, "reg_head", f, m, cfg["head_num_layers"], "offset_head")
        offsets = F.relu(offsets * w[f"reg_head.scale.{level}.scale"])
        outs.append((logits.transpose(1, 2), offsets.transpose(1, 2), m[:, 0].bool()))
    return outs


def inputs(lengths: list[int], t: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]  # (B, T)
    x = torch.randn(len(lengths), t, C_IN, generator=g) * mask[..., None]
    return x, mask


# -------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    ("window", "droppath", "lengths", "t"),
    [
        (5, 0.1, [32, 20], 32),
        (5, 0.1, [64, 45, 7], 64),
        (9, 0.0, [40, 64], 64),
        (-1, 0.1, [16, 11], 16),  # global attention (n_mha_win_size <= 1)
    ],
)
def test_outputs_equal_the_official_forward(window, droppath, lengths, t):
    cfg = official_cfg(window=window, droppath=droppath)
    weights = random_weights(cfg, seed=len(lengths) + t)
    net = from_official(cfg, weights)
    x, mask = inputs(lengths, t, seed=t)
    with torch.no_grad():
        got = net({"feats": x}, mask)
        want = reference_forward(weights, cfg, x, mask)
    assert len(got) == 4
    for level, ((lg, off, m), (lg_r, off_r, m_r)) in enumerate(zip(got, want)):
        assert lg.shape == (len(lengths), t // 2**level, NUM_CLASSES) and off.shape[-1] == 2
        assert torch.equal(m, m_r)
        torch.testing.assert_close(lg, lg_r, atol=2e-4, rtol=2e-4)
        torch.testing.assert_close(off, off_r, atol=2e-4, rtol=2e-4)


def test_padding_moves_the_last_steps_as_in_the_official_model():
    """The official masking lets LayerNorm biases of padded steps reach the last real steps."""
    cfg = official_cfg()
    weights = random_weights(cfg, seed=3)
    net = from_official(cfg, weights)
    x, mask = inputs([24], 24, seed=1)  # no padding ...
    x32 = torch.cat([x, torch.zeros(1, 8, C_IN)], dim=1)  # ... and the same video padded by 8 steps
    mask32 = torch.cat([mask, torch.zeros(1, 8, dtype=torch.bool)], dim=1)
    with torch.no_grad():
        bare, padded = net({"feats": x}, mask)[0][0][0], net({"feats": x32}, mask32)[0][0][0, :24]
        ref = reference_forward(weights, cfg, x32, mask32)[0][0][0, :24]
    torch.testing.assert_close(padded, ref, atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(padded[:8], bare[:8], atol=1e-4, rtol=1e-4)  # far from the end: equal
    assert not torch.allclose(padded[-1], bare[-1], atol=1e-3)  # the last real step moves


def test_released_checkpoint_layout_loads():
    cfg = official_cfg()
    weights = random_weights(cfg, seed=5)
    ckpt = {"epoch": 30, "state_dict": {}, "state_dict_ema": {"module." + k: v for k, v in weights.items()}}
    net = from_official(cfg, ckpt)
    torch.testing.assert_close(
        net.state_dict()["backbone.embd.0.conv.weight"], weights["backbone.embd.0.conv.weight"]
    )
    assert not net.training


def test_loading_is_strict():
    cfg = official_cfg()
    weights = random_weights(cfg, seed=0)
    missing = {k: v for k, v in weights.items() if k != "neck.fpn_norms.1.bias"}
    with pytest.raises(ValueError, match=r"missing \['neck.fpn_norms.1.bias'\]"):
        from_official(cfg, missing)
    with pytest.raises(ValueError, match=r"unexpected \['backbone.pos_embd'\]"):
        from_official(cfg, dict(weights, **{"backbone.pos_embd": torch.zeros(1)}))
    bad = dict(weights, **{"cls_head.cls_head.conv.weight": torch.zeros(3, 16, 3)})
    with pytest.raises(ValueError, match="mis-shaped.*cls_head.cls_head.conv.weight"):
        from_official(cfg, bad)
    # LayerScale exists only with drop-path: official weights trained with droppath 0 have none
    with pytest.raises(ValueError, match="unexpected.*drop_path_attn.scale"):
        from_official(official_cfg(droppath=0.0), weights)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fpn_type": "fpn"}, "fpn_type='fpn' is not implemented"),
        ({"use_rel_pe": True}, "use_rel_pe=True"),
        ({"scale_factor": 4}, "scale_factor=4"),
        ({"n_mha_win_size": [9, 9, 9, 5]}, "differs between levels"),
        ({"input_dim": [6, 6]}, "input_dim"),
        ({"train_cfg": {"label_smoothing": 0.1}}, "label_smoothing"),
        ({"test_cfg": {"nms_method": "hard"}}, "nms_method"),
        ({"some_new_key": 1}, "unknown model key"),
    ],
)
def test_unimplemented_settings_are_value_errors(change, message):
    with pytest.raises(ValueError, match=message):
        from_official(official_cfg(**change))


def test_config_is_translated():
    net = from_official(official_cfg(window=9, droppath=0.1))
    cfg = net.cfg
    assert (cfg.window, cfg.levels, cfg.stem_blocks, cfg.embed_layers) == (9, 4, 2, 2)
    assert (cfg.drop_path, cfg.dropout, cfg.loss_norm_init, cfg.grad_clip) == (0.1, 0.1, 250.0, 1.0)
    assert cfg.regression_ranges[1] == [2.0, 8.0] and cfg.nms_sigma == 0.4
