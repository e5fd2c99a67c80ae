"""The ActionFormer network: masked conv embedding, local-attention transformer pyramid, shared heads.

Layout conventions: convolutions work on (B, C, T), the transformer on (B, T, C); `mask` is (B, T)
bool, True on real (not padded) time steps. Padded steps are zeroed after every layer so they never
leak into real ones through convolutions, and attention never looks at them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from ndar.heads.actionformer.config import ActionFormerConfig

NUM_ACTION_CLASSES = 15  # classes 1..15; "normal driving" (0) is the background


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) tensor."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class MaskedConv(nn.Module):
    """1-D conv ('same' padding) whose output is zero on padded steps."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"conv kernel must be odd to keep steps aligned, got {kernel}")
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * mask[:, None, :].to(x.dtype)  # (B, C_out, T)


def local_attention_mask(mask: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T) valid steps -> (B, 1, T, T) bool: query i may attend key j iff |i - j| <= window // 2
    and j is valid. Every query keeps itself so that padded rows never see an empty softmax."""
    t = mask.shape[1]
    pos = torch.arange(t, device=mask.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window // 2  # (T, T)
    allowed = band[None] & mask[:, None, :]  # (B, T, T)
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=mask.device)[None]
    return allowed[:, None]


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention restricted to a window of neighbouring steps."""

    def __init__(self, dim: int, num_heads: int, window: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.window, self.dropout = num_heads, window, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, T, d)
        attn_mask = local_attention_mask(mask, self.window)  # (B, 1, T, T)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, d)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)); padded steps zeroed."""

    def __init__(self, cfg: ActionFormerConfig, drop_path: float) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LocalSelfAttention(dim, cfg.num_heads, cfg.window, cfg.dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio), drop=cfg.dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None].to(x.dtype)  # (B, T, 1)
        x = x + self.drop_path(self.attn(self.norm1(x), mask))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x * keep


class ConvHead(nn.Module):
    """(layers - 1) x [masked conv, LayerNorm, ReLU], then a masked conv to `out_dim`."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int, kernel: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1)
        self.convs = nn.ModuleList(MaskedConv(a, b, kernel) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(ChannelNorm(b) for b in dims[1:])
        self.out = MaskedConv(dims[-1], out_dim, kernel)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x, mask)))
        return self.out(x, mask)  # (B, out_dim, T)


class InputFusion(nn.Module):
    """Streams (B, T, D_s) -> (B, T, D): concatenated, or each projected to embed_dim and summed."""

    def __init__(self, stream_dims: dict[str, int], cfg: ActionFormerConfig) -> None:
        super().__init__()
        if cfg.fusion not in ("concat", "sum"):
            raise ValueError(f"actionformer.fusion must be 'concat' or 'sum', got {cfg.fusion!r}")
        self.fusion = cfg.fusion
        self.streams = sorted(stream_dims)
        self.dropout = nn.Dropout(cfg.input_dropout)
        if cfg.fusion == "sum":
            self.proj = nn.ModuleDict({s: nn.Linear(stream_dims[s], cfg.embed_dim) for s in self.streams})
            self.out_dim = cfg.embed_dim
        else:
            self.out_dim = sum(stream_dims.values())

    def forward(self, streams: dict[str, torch.Tensor]) -> torch.Tensor:
        missing = [s for s in self.streams if s not in streams]
        if missing:
            raise ValueError(f"input lacks stream(s) {missing}; the model was built for {self.streams}")
        if self.fusion == "concat":
            x = torch.cat([streams[s] for s in self.streams], dim=-1)
        else:
            x = torch.stack([self.proj[s](streams[s]) for s in self.streams]).sum(0)
        return self.dropout(x)  # (B, T, D)


class ActionFormerNet(nn.Module):
    """Features -> per pyramid level: class logits (B, T_l, 15), offsets (B, T_l, 2) in strides, mask."""

    def __init__(self, cfg: ActionFormerConfig, stream_dims: dict[str, int]) -> None:
        super().__init__()
        if cfg.levels < 1 or len(cfg.regression_ranges) != cfg.levels:
            raise ValueError(
                f"actionformer: {cfg.levels} levels need {cfg.levels} regression ranges, got {len(cfg.regression_ranges)}"
            )
        self.cfg = cfg
        self.fusion = InputFusion(stream_dims, cfg)
        d = cfg.embed_dim
        self.embed = nn.ModuleList(
            [MaskedConv(self.fusion.out_dim, d, cfg.embed_kernel), MaskedConv(d, d, cfg.embed_kernel)]
        )
        self.embed_norms = nn.ModuleList([ChannelNorm(d), ChannelNorm(d)])
        n_blocks = cfg.stem_blocks + cfg.levels - 1
        rates = [cfg.drop_path * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.stem = nn.ModuleList(TransformerBlock(cfg, rates[i]) for i in range(cfg.stem_blocks))
        self.branch = nn.ModuleList(
            TransformerBlock(cfg, rates[cfg.stem_blocks + i]) for i in range(cfg.levels - 1)
        )
        self.neck = nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.levels))
        self.cls_head = ConvHead(d, cfg.head_dim, NUM_ACTION_CLASSES, cfg.head_layers)
        self.reg_head = ConvHead(d, cfg.head_dim, 2, cfg.head_layers)
        self.scales = nn.Parameter(torch.ones(cfg.levels))
        nn.init.constant_(self.cls_head.out.conv.bias, -math.log((1 - cfg.prior_prob) / cfg.prior_prob))

    @property
    def strides(self) -> list[int]:
        return [2**level for level in range(self.cfg.levels)]

    def forward(
        self, streams: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        t = mask.shape[1]
        if t % self.strides[-1]:
            raise ValueError(
                f"sequence length {t} must be a multiple of the largest stride {self.strides[-1]}"
            )
        x = self.fusion(streams).transpose(1, 2) * mask[:, None, :].to(torch.float32)  # (B, D, T)
        for conv, norm in zip(self.embed, self.embed_norms):
            x = F.relu(norm(conv(x, mask)))
        x = x.transpose(1, 2)  # (B, T, C)
        for block in self.stem:
            x = block(x, mask)
        features, masks = [x], [mask]
        for block in self.branch:
            x = F.max_pool1d(x.transpose(1, 2), kernel_size=3, stride=2, padding=1).transpose(
                1, 2
            )  # (B, T/2, C)
            mask = mask[:, ::2]
            x = block(x * mask[..., None].to(x.dtype), mask)
            features.append(x)
            masks.append(mask)
        outputs = []
        for level, (feat, m) in enumerate(zip(features, masks)):
            feat = self.neck[level](feat).transpose(1, 2)  # (B, C, T_l)
            logits = self.cls_head(feat, m).transpose(1, 2)  # (B, T_l, 15)
            offsets = F.relu(self.scales[level] * self.reg_head(feat, m)).transpose(1, 2)  # (B, T_l, 2)
            outputs.append((logits, offsets, m))
        return outputs
