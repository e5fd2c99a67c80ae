"""The ActionFormer network, block for block the official one (actionformer_release, LocPointTransformer
with the convTransformer backbone and the identity neck), under the official parameter names so that
an official state_dict loads as is (`ndar.heads.actionformer.official.from_official`).

Layout: the network works on (B, C, T) like the official code; `mask` is (B, T) bool, True on real
(not padded) steps. Masking follows the official code exactly, and that code does not make outputs
independent of padding: every conv output is zeroed on padded steps, but the LayerNorms that follow
(embedding, q/k/v, neck, heads) turn those zeros into their bias, which the next 3-tap conv reads at
the last real step, and the strided max-pool of the residual compares the last real step with a
padded zero. So the last one or two real steps of each level depend on how much padding follows
(docs/heads.md). Attention never looks at padded keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ndar.heads.actionformer.config import ActionFormerConfig

NUM_ACTION_CLASSES = 15  # classes 1..15; "normal driving" (0) is the background
LAYER_SCALE_INIT = 1e-4  # official AffineDropPath init: residual branches start almost shut


class MaskedConv1D(nn.Module):
    """Conv1d ('same' padding) whose output is zeroed on padded steps; a stride s keeps every s-th
    step of the mask (the official nearest-neighbour downsampling of the mask)."""

    def __init__(
        self, in_dim: int, out_dim: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True
    ) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"conv kernel must be odd to keep steps aligned, got {kernel}")
        self.stride = stride
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride, kernel // 2, groups=groups, bias=bias)
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] % self.stride:
            raise ValueError(f"length {x.shape[-1]} is not divisible by the conv stride {self.stride}")
        out_mask = mask[:, :: self.stride]  # (B, T / s)
        return self.conv(x) * out_mask[:, None, :].to(x.dtype), out_mask  # (B, C_out, T / s)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) tensor; weight and bias are (1, C, 1) (official)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        out = centred / torch.sqrt(centred.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return out * self.weight + self.bias


class Scale(nn.Module):
    """A learnable scalar (per pyramid level, on the regression output)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole branch for a random subset of the batch."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)).floor()
    return x / keep * mask


class LayerScaleDropPath(nn.Module):
    """Per-channel LayerScale (init 1e-4) then drop-path: the official AffineDropPath."""

    def __init__(self, dim: int, rate: float) -> None:
        super().__init__()
        self.rate = rate
        self.scale = nn.Parameter(LAYER_SCALE_INIT * torch.ones(1, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(self.scale * x, self.rate, self.training)


def local_attention_mask(mask: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T) valid keys -> (B, 1, T, T) bool: query i may attend key j iff |i - j| <= window // 2
    (any distance when window <= 1: global attention) and j is valid. Every query also keeps itself
    so that padded rows never see an empty softmax; their outputs are zeroed afterwards."""
    t = mask.shape[1]
    pos = torch.arange(t, device=mask.device)
    allowed = mask[:, None, :].expand(-1, t, -1)  # (B, T, T)
    if window > 1:
        allowed = allowed & ((pos[:, None] - pos[None, :]).abs() <= window // 2)[None]
    allowed = allowed | torch.eye(t, dtype=torch.bool, device=mask.device)[None]
    return allowed[:, None]


class ConvAttention(nn.Module):
    """Multi-head (local) self-attention whose q, k and v first pass a masked depthwise conv and a
    LayerNorm (the official MaskedMHCA / LocalMaskedMHCA). The 3-tap conv is the model's only
    positional signal; with stride 2 it also downsamples to the next pyramid level."""

    def __init__(self, dim: int, num_heads: int, window: int, stride: int, proj_dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        if stride != 1 and stride % 2:
            raise ValueError(f"attention stride must be 1 or even, got {stride}")
        self.num_heads, self.window = num_heads, window
        kernel = stride + 1 if stride > 1 else 3
        for name in ("query", "key", "value"):
            setattr(self, f"{name}_conv", MaskedConv1D(dim, dim, kernel, stride, groups=dim, bias=False))
            setattr(self, f"{name}_norm", ChannelNorm(dim))
            setattr(self, name, nn.Conv1d(dim, dim, 1))
        self.proj = nn.Conv1d(dim, dim, 1)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, out_mask = self.query_conv(x, mask)
        k, _ = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        q = self.query(self.query_norm(q))  # (B, C, T')
        k = self.key(self.key_norm(k))
        v = self.value(self.value_norm(v))
        b, c, t = q.shape
        heads = lambda z: z.reshape(b, self.num_heads, c // self.num_heads, t).transpose(2, 3)  # noqa: E731
        allowed = local_attention_mask(out_mask, self.window)  # (B, 1, T', T')
        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=allowed)  # (B, H, T', d)
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.proj_drop(self.proj(out)) * out_mask[:, None, :].to(x.dtype), out_mask


class TransformerBlock(nn.Module):
    """Pre-LN block on (B, C, T): x' = pool(x) + LS(attn(ln1(x))), out = x' + LS(mlp(ln2(x'))).
    With stride 2 the residual is max-pooled (k=3) and the attention's convs are strided."""

    def __init__(self, cfg: ActionFormerConfig, stride: int) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.ln1 = ChannelNorm(dim)
        self.ln2 = ChannelNorm(dim)
        self.attn = ConvAttention(dim, cfg.num_heads, cfg.window, stride, cfg.dropout)
        self.pool_skip = (
            nn.MaxPool1d(stride + 1, stride=stride, padding=(stride + 1) // 2)
            if stride > 1
            else nn.Identity()
        )
        hidden = int(dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Conv1d(dim, hidden, 1),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Conv1d(hidden, dim, 1),
            nn.Dropout(cfg.dropout),
        )
        # official: LayerScale exists only together with drop-path
        if cfg.drop_path > 0:
            self.drop_path_attn = LayerScaleDropPath(dim, cfg.drop_path)
            self.drop_path_mlp = LayerScaleDropPath(dim, cfg.drop_path)
        else:
            self.drop_path_attn = nn.Identity()
            self.drop_path_mlp = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, out_mask = self.attn(self.ln1(x), mask)
        keep = out_mask[:, None, :].to(x.dtype)  # (B, 1, T')
        out = self.pool_skip(x) * keep + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(self.mlp(self.ln2(out)) * keep)
        return out, out_mask


class Backbone(nn.Module):
    """Masked conv embedding (conv, LayerNorm, ReLU) x embed_layers, stem blocks at stride 1, then
    levels - 1 blocks that each halve the length: one feature map per pyramid level."""

    def __init__(self, in_dim: int, cfg: ActionFormerConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.embd = nn.ModuleList(
            MaskedConv1D(in_dim if i == 0 else d, d, cfg.embed_kernel, bias=False)
            for i in range(cfg.embed_layers)
        )
        self.embd_norm = nn.ModuleList(ChannelNorm(d) for _ in range(cfg.embed_layers))
        self.stem = nn.ModuleList(TransformerBlock(cfg, 1) for _ in range(cfg.stem_blocks))
        self.branch = nn.ModuleList(TransformerBlock(cfg, 2) for _ in range(cfg.levels - 1))
        for module in self.modules():  # official: every conv / linear bias of the backbone starts at 0
            if isinstance(module, (nn.Linear, nn.Conv1d)) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        for conv, norm in zip(self.embd, self.embd_norm):
            x, mask = conv(x, mask)
            x = F.relu(norm(x))
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class IdentityNeck(nn.Module):
    """A LayerNorm per level (the official identity FPN)."""

    def __init__(self, dim: int, levels: int) -> None:
        super().__init__()
        self.fpn_norms = nn.ModuleList(ChannelNorm(dim) for _ in range(levels))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [norm(f) for norm, f in zip(self.fpn_norms, feats)]


class ConvHead(nn.Module):
    """Shared over levels: (layers - 1) x [masked conv (no bias), LayerNorm, ReLU]; the last masked
    conv predicts `out_dim` channels (`cls_head` or `offset_head`, as the official names)."""

    def __init__(self, dim: int, hidden: int, out_dim: int, layers: int, kernel: int, out_name: str) -> None:
        super().__init__()
        dims = [dim] + [hidden] * (layers - 1)
        self.head = nn.ModuleList(MaskedConv1D(a, b, kernel, bias=False) for a, b in zip(dims[:-1], dims[1:]))
        self.norm = nn.ModuleList(ChannelNorm(b) for b in dims[1:])
        self.out_name = out_name
        setattr(self, out_name, MaskedConv1D(dims[-1], out_dim, kernel))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.head, self.norm):
            x, _ = conv(x, mask)
            x = F.relu(norm(x))
        out, _ = getattr(self, self.out_name)(x, mask)
        return out  # (B, out_dim, T)


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
    """Features -> per pyramid level: class logits (B, T_l, C) before the sigmoid, offsets (B, T_l, 2)
    in strides after ReLU(scale * .), and the level's mask (B, T_l)."""

    def __init__(
        self, cfg: ActionFormerConfig, stream_dims: dict[str, int], num_classes: int = NUM_ACTION_CLASSES
    ) -> None:
        super().__init__()
        if cfg.levels < 1 or len(cfg.regression_ranges) != cfg.levels:
            raise ValueError(
                f"actionformer: {cfg.levels} levels need {cfg.levels} regression ranges, got {len(cfg.regression_ranges)}"
            )
        self.cfg, self.num_classes = cfg, num_classes
        self.fusion = InputFusion(stream_dims, cfg)
        self.backbone = Backbone(self.fusion.out_dim, cfg)
        self.neck = IdentityNeck(cfg.embed_dim, cfg.levels)
        self.cls_head = ConvHead(
            cfg.embed_dim, cfg.head_dim, num_classes, cfg.head_layers, cfg.head_kernel, "cls_head"
        )
        self.reg_head = ConvHead(
            cfg.embed_dim, cfg.head_dim, 2, cfg.head_layers, cfg.head_kernel, "offset_head"
        )
        self.reg_head.scale = nn.ModuleList(Scale() for _ in range(cfg.levels))
        nn.init.constant_(self.cls_head.cls_head.conv.bias, -math.log((1 - cfg.prior_prob) / cfg.prior_prob))

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
        x = self.fusion(streams).transpose(1, 2)  # (B, D, T)
        x = x * mask[:, None, :].to(x.dtype)  # the official input is zero on padding
        feats, masks = self.backbone(x, mask)
        feats = self.neck(feats)
        outputs = []
        for level, (feat, m) in enumerate(zip(feats, masks)):
            logits = self.cls_head(feat, m).transpose(1, 2)  # (B, T_l, C)
            offsets = F.relu(self.reg_head.scale[level](self.reg_head(feat, m))).transpose(
                1, 2
            )  # (B, T_l, 2)
            outputs.append((logits, offsets, m))
        return outputs
