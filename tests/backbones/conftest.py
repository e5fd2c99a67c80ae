"""An independent functional VideoMAE forward, written from the published formulation.

It uses only plain tensor ops (einsum, erf, its own numpy sinusoid table) on a raw state dict with
the official key names, so a test comparing it with `VideoMAEViT` checks both the architecture and
that checkpoint loading put every tensor in the right place.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


def numpy_sinusoid(n: int, d: int) -> np.ndarray:
    table = np.zeros((n, d), dtype=np.float64)
    for pos in range(n):
        for j in range(d):
            angle = pos / (10000 ** (2 * (j // 2) / d))
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


def _layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference_features(sd: dict, x: torch.Tensor, num_heads: int, tubelet: int = 2, patch: int = 16):
    """Pooled fc_norm features (B, D) from raw official-key tensors, in float64."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    B, C, T, H, W = x.shape
    w = sd["patch_embed.proj.weight"]  # (D, C, t, p, p)
    D = w.shape[0]
    xp = x.reshape(B, C, T // tubelet, tubelet, H // patch, patch, W // patch, patch)
    tok = torch.einsum("bcTtHhWw,dcthw->bTHWd", xp, w) + sd["patch_embed.proj.bias"]
    tok = tok.reshape(B, -1, D)  # (B, N, D), order t, h, w
    n = tok.shape[1]
    if "pos_embed" in sd:
        tok = tok + sd["pos_embed"].reshape(1, n, D)
    else:
        tok = tok + torch.from_numpy(numpy_sinusoid(n, D))[None]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    hd = D // num_heads
    for i in range(depth):
        p = f"blocks.{i}."
        h = _layer_norm(tok, sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        qkv = h @ sd[p + "attn.qkv.weight"].T  # (B, N, 3D)
        q, k, v = qkv.split(D, dim=-1)
        if p + "attn.q_bias" in sd:
            q = q + sd[p + "attn.q_bias"]
            v = v + sd[p + "attn.v_bias"]
        q, k, v = (t.reshape(B, n, num_heads, hd) for t in (q, k, v))
        att = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(hd)
        att = torch.softmax(att, dim=-1)
        o = torch.einsum("bhij,bjhd->bihd", att, v).reshape(B, n, D)
        o = o @ sd[p + "attn.proj.weight"].T + sd[p + "attn.proj.bias"]
        if p + "gamma_1" in sd:
            o = o * sd[p + "gamma_1"]
        tok = tok + o
        h = _layer_norm(tok, sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        h = _gelu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        h = h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
        if p + "gamma_2" in sd:
            h = h * sd[p + "gamma_2"]
        tok = tok + h
    pooled = tok.mean(1)
    return _layer_norm(pooled, sd["fc_norm.weight"], sd["fc_norm.bias"])


def reference_logits(sd: dict, x: torch.Tensor, num_heads: int, **kw):
    feats = reference_features(sd, x, num_heads, **kw)
    return feats @ sd["head.weight"].double().T + sd["head.bias"].double()


def random_official_state(model, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the model's keys and shapes, filled with non-trivial random values."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in model.state_dict().items():
        scale = 0.2 if t.ndim > 1 else 0.5
        val = torch.randn(t.shape, generator=gen) * scale
        if key.endswith(("norm1.weight", "norm2.weight", "fc_norm.weight")):
            val = 1.0 + 0.1 * val
        out[key] = val
    return out


@pytest.fixture
def reference():
    """The independent forward functions, for tests."""
    return {"features": reference_features, "logits": reference_logits, "sinusoid": numpy_sinusoid}


@pytest.fixture
def random_state():
    return random_official_state


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: one intra-op thread avoids spin-waiting on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
