"""VideoMamba (OpenGVLab, `videomamba/video_sm/models/videomamba.py`) in the official parameterisation.

Why a second family: a bidirectional Mamba over the spatio-temporal tokens costs time linear in the
number of frames, so a window can see 32-64 frames where a ViT sees 16, with another inductive bias.

Parameter names and shapes are the official ones, so official checkpoints load without renaming:
`patch_embed.proj` (Conv3d, kernel (tubelet, p, p)), `cls_token` (1, 1, D), `pos_embed` (1, 1 + HW, D)
(its first row is the cls token's), `temporal_pos_embedding` (1, T, D), `layers.{i}.norm.weight`
(RMSNorm, no bias), `layers.{i}.mixer.{in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj}` and
the backward direction's own `conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b` (in_proj and out_proj are
shared), `norm_f.weight`, `head`. Tokens: the cls token first (no temporal embedding), then frame by
frame the spatial patches. Each block adds the residual (kept in float32), normalises, then mixes;
the mixer runs the forward and the flipped sequence through their own conv/SSM and sums them before
`out_proj` (the official bidirectional path, without the division by 2 of Vim's variant). The head
reads the cls token after `norm_f`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint

from ndar.backbones.scan import SCAN_IMPLS, selective_scan
from ndar.backbones.vit import token_grid


@dataclass
class MambaArgs:
    """Architecture of one VideoMamba (what `create_backbone` overrides may change)."""

    embed_dim: int = 192
    depth: int = 24
    patch_size: int = 16
    tubelet_size: int = 1
    """The official `kernel_size`: frames per token (1 in every released model)."""
    in_chans: int = 3
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int = 0
    """0 = ceil(embed_dim / 16), the official 'auto'."""
    norm_eps: float = 1e-5
    drop_rate: float = 0.0
    """Dropout after the position embeddings."""
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0
    """Dropout before the head (the official `fc_drop_rate`)."""
    grad_checkpointing: bool = False
    scan_impl: str = "auto"
    """'auto' (mamba-ssm CUDA kernel on GPU when installed; else 'chunked' when training, 'stepwise'
    for inference), 'chunked', 'stepwise' or 'cuda' (`ndar.backbones.scan`)."""
    scan_chunk: int = 0
    """Tokens per chunk of the PyTorch scans (0 = each path's measured default; same result)."""


class RMSNorm(nn.Module):
    """RMSNorm with a weight and no bias, computed in float32 (mamba-ssm's `rms_norm_fn`)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()


class BiMamba(nn.Module):
    """The official bidirectional Mamba mixer (`bimamba=True`): (B, L, D) -> (B, L, D)."""

    def __init__(self, dim: int, args: MambaArgs) -> None:
        super().__init__()
        self.d_inner = args.expand * dim
        self.d_state = args.d_state
        self.dt_rank = args.dt_rank or math.ceil(dim / 16)
        self.scan_impl = args.scan_impl
        self.scan_chunk = args.scan_chunk
        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=False)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)
        for suffix in ("", "_b"):
            conv = nn.Conv1d(
                self.d_inner, self.d_inner, args.d_conv, groups=self.d_inner, padding=args.d_conv - 1
            )
            setattr(self, f"conv1d{suffix}", conv)
            setattr(
                self, f"x_proj{suffix}", nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False)
            )
            setattr(self, f"dt_proj{suffix}", nn.Linear(self.dt_rank, self.d_inner, bias=True))
            a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # (E, N)
            a_name = "A_log" if not suffix else "A_b_log"
            setattr(self, a_name, nn.Parameter(torch.log(a)))
            setattr(self, f"D{suffix}", nn.Parameter(torch.ones(self.d_inner)))

    def direction(self, xz: torch.Tensor, suffix: str) -> torch.Tensor:
        """One direction's conv + selective scan: xz (B, 2E, L) -> y (B, E, L), gated by silu(z)."""
        conv, x_proj, dt_proj = (getattr(self, f"{n}{suffix}") for n in ("conv1d", "x_proj", "dt_proj"))
        a_log = self.A_log if not suffix else self.A_b_log
        d_skip = getattr(self, f"D{suffix}")
        length = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)  # (B, E, L) each
        x = F.silu(conv(x)[..., :length])  # causal depthwise conv
        x_dbl = x_proj(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, b, c = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, dt_proj.weight).transpose(1, 2)  # (B, E, L), bias added in the scan
        return selective_scan(
            x,
            delta,
            -torch.exp(a_log.float()),
            b.transpose(1, 2),  # (B, N, L)
            c.transpose(1, 2),
            d_skip.float(),
            z=z,
            delta_bias=dt_proj.bias.float(),
            delta_softplus=True,
            impl=self.scan_impl,
            chunk=self.scan_chunk,
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        xz = self.in_proj(hidden).transpose(1, 2)  # (B, 2E, L)
        y = self.direction(xz, "") + self.direction(xz.flip(-1), "_b").flip(-1)  # (B, E, L)
        return self.out_proj(y.transpose(1, 2).to(hidden.dtype))  # (B, L, D)


class MambaBlock(nn.Module):
    """Add -> RMSNorm -> mixer; returns (mixer output, residual), the residual in float32."""

    def __init__(self, dim: int, args: MambaArgs, drop_path: float) -> None:
        super().__init__()
        self.mixer = BiMamba(dim, args)
        self.norm = RMSNorm(dim, args.norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(
        self, hidden: torch.Tensor, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden.float() if residual is None else residual + self.drop_path(hidden).float()
        normed = self.norm(residual).to(hidden.dtype)
        return self.mixer(normed), residual


class VideoMamba(nn.Module):
    """VideoMamba: clips (B, 3, T, H, W) -> logits (B, num_classes); same interface as `VideoMAEViT`.

    `forward_features` gives the cls token after `norm_f` (B, D), what feature extraction saves.
    """

    def __init__(
        self, args: MambaArgs, num_classes: int = 16, num_frames: int = 16, img_size: int = 224
    ) -> None:
        super().__init__()
        if args.scan_impl not in SCAN_IMPLS:
            raise ValueError(f"scan_impl {args.scan_impl!r} is not one of {list(SCAN_IMPLS)}")
        self.args = args
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.img_size = img_size
        self.embed_dim = args.embed_dim
        self.grid = token_grid(args.tubelet_size, args.patch_size, num_frames, img_size)  # (T', H', W')
        self.grad_checkpointing = args.grad_checkpointing
        dim, kernel = args.embed_dim, (args.tubelet_size, args.patch_size, args.patch_size)

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(args.in_chans, dim, kernel_size=kernel, stride=kernel)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[1] * self.grid[2] + 1, dim))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, self.grid[0], dim))
        self.pos_drop = nn.Dropout(args.drop_rate)
        # Official stochastic depth: block 0 none, block i the (i-1)-th of linspace(0, rate, depth),
        # and the full rate on the last block's output before norm_f.
        rates = [0.0] + [args.drop_path_rate * i / max(1, args.depth - 1) for i in range(args.depth)]
        self.layers = nn.ModuleList(MambaBlock(dim, args, rates[i]) for i in range(args.depth))
        self.drop_path = DropPath(args.drop_path_rate) if args.drop_path_rate > 0 else nn.Identity()
        self.norm_f = RMSNorm(dim, args.norm_eps)
        self.head_drop = nn.Dropout(args.head_drop_rate)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """The official init, quirks included: every Linear gets trunc_normal(.02) and a zero bias
        (which also resets the Mamba dt_proj bias the mixer's own init had set), `pos_embed`
        trunc_normal(.02), cls and temporal embeddings zero, `out_proj` kaiming-uniform / sqrt(depth)."""
        if self.cls_token.is_meta:
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        for layer in self.layers:
            nn.init.kaiming_uniform_(layer.mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                layer.mixer.out_proj.weight.div_(math.sqrt(self.args.depth))

    # --- hooks used by timm's optimizer factory, training code and checkpoint loading ----------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "temporal_pos_embedding"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Layer ids for layer-wise lr decay: embeddings 0, block i -> i + 1, norm_f/head last."""
        return dict(
            stem=r"^cls_token|^pos_embed|^temporal_pos_embedding|^patch_embed", blocks=r"^layers\.(\d+)"
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_num_layers(self) -> int:
        return len(self.layers)

    def adapt_state_dict(self, state: dict, report, pos_grid=None, norm_to_fc_norm: bool = False) -> None:
        """Fit an official state dict to this model in place (see `videomamba_checkpoint`)."""
        from ndar.backbones.videomamba_checkpoint import adapt_videomamba_state

        adapt_videomamba_state(self, state, report, norm_to_final=norm_to_fc_norm)

    fresh_ok = ("head.",)
    """Tensors that may stay freshly initialised without counting against a checkpoint's coverage."""

    # --- forward ---------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        expected = (self.args.in_chans, self.num_frames, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"VideoMamba expects clips of shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}); "
                f"got {tuple(x.shape)}"
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, C, T, H, W) -> tokens (B, 1 + T'H'W', D): cls first, then frame by frame."""
        x = self.patch_embed.proj(x)  # (B, D, T', H', W')
        b, d, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, d)  # (B, T', HW, D)
        x = x + self.pos_embed[:, None, 1:].to(x.dtype) + self.temporal_pos_embedding[:, :, None].to(x.dtype)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(x.dtype).expand(b, -1, -1)  # (B, 1, D)
        return self.pos_drop(torch.cat((cls, x.reshape(b, t * h * w, d)), dim=1))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Clips -> every token after `norm_f` (B, 1 + N, D), in float32."""
        self.check_input(x)
        hidden, residual = self.embed(x), None
        for layer in self.layers:
            if self.grad_checkpointing and torch.is_grad_enabled():
                hidden, residual = checkpoint(layer, hidden, residual, use_reentrant=False)
            else:
                hidden, residual = layer(hidden, residual)
        return self.norm_f(residual + self.drop_path(hidden).float())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, C, T, H, W) -> the cls token's feature (B, D)."""
        return self.forward_tokens(x)[:, 0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features.to(self.head.weight.dtype)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
