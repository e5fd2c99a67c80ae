"""The VideoMAE fine-tuning ViT in the official parameterisation (VideoMAE v1/v2, InternVideo).

Parameter names and shapes follow the official checkpoints exactly (see
`shared/docs/reference-models.md`), so their state dicts load without renaming:
`patch_embed.proj`, `blocks.{i}.{norm1,attn.qkv,attn.q_bias,attn.v_bias,attn.proj,norm2,mlp.fc1,mlp.fc2}`,
optional `blocks.{i}.gamma_1/gamma_2` and `pos_embed`, then `fc_norm` and `head`.
The fixed sinusoid position table is a non-persistent buffer: it never appears in a state dict,
exactly like the official models, and is rebuilt for whatever token grid the model is built for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class ViTArgs:
    """Architecture of one VideoMAE ViT (what `create_backbone` overrides may change)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    qkv_bias: bool = True
    """Official models use q_bias/v_bias (and no k bias); False drops both parameters."""
    init_values: float = 0.0
    """Layer scale gamma_1/gamma_2 initial value; 0 means no layer scale (no gamma keys)."""
    use_learnable_pos_emb: bool = False
    """A learnable `pos_embed` parameter instead of the fixed sinusoid table."""
    drop_rate: float = 0.0
    """Dropout after the position embedding and after attention/MLP projections."""
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    head_drop_rate: float = 0.0
    """Dropout between fc_norm and head (the official `fc_drop_rate`/`head_drop_rate`)."""
    init_scale: float = 0.001
    """The head's initial weights and bias are multiplied by this (official fine-tuning default)."""
    grad_checkpointing: bool = False


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The official 1-D sinusoid table (1, N, D): sin on even channels, cos on odd channels.

    angle(pos, j) = pos / 10000 ** (2 * (j // 2) / dim); computed in float64 like the reference.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    j = torch.arange(dim, dtype=torch.float64)[None, :]  # (1, D)
    angles = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (N, D)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float().unsqueeze(0)


class PatchEmbed3d(nn.Module):
    """Tubelet embedding: one Conv3d with kernel = stride = (tubelet, patch, patch)."""

    def __init__(self, in_chans: int, embed_dim: int, tubelet_size: int, patch_size: int) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # (B, D, T', H', W')
        return x.flatten(2).transpose(1, 2)  # (B, N, D), token order t, h, w


class Attention(nn.Module):
    """Multi-head self-attention with `qkv` (no bias) plus separate `q_bias` and `v_bias`.

    The bias applied is concat(q_bias, 0, v_bias), as in the official code; the attention itself runs
    through `scaled_dot_product_attention` (flash / memory-efficient kernels on GPU), whose default
    scale head_dim ** -0.5 is the official one.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))  # (3D,)
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3D)
        qkv = qkv.reshape(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        dropout = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, heads, N, head_dim)
        x = x.transpose(1, 2).reshape(B, N, D)
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), optional layer scale."""

    def __init__(self, dim: int, num_heads: int, args: ViTArgs, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, args.qkv_bias, args.attn_drop_rate, args.drop_rate)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * args.mlp_ratio)
        self.mlp = Mlp(in_features=dim, hidden_features=hidden, act_layer=nn.GELU, drop=args.drop_rate)
        if args.init_values > 0:
            self.gamma_1 = nn.Parameter(args.init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(args.init_values * torch.ones(dim))
        else:
            self.gamma_1 = None
            self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class VideoMAEViT(nn.Module):
    """VideoMAE fine-tuning ViT: clips (B, 3, T, H, W) -> logits (B, num_classes).

    `forward_features` gives the pooled, `fc_norm`-ed feature (B, D) that feature extraction saves.
    """

    def __init__(
        self, args: ViTArgs, num_classes: int = 16, num_frames: int = 16, img_size: int = 224
    ) -> None:
        super().__init__()
        self.args = args
        self.num_classes = num_classes
        self.num_frames = num_frames
        self.img_size = img_size
        self.embed_dim = args.embed_dim
        self.grid = token_grid(args.tubelet_size, args.patch_size, num_frames, img_size)  # (T', H', W')
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.grad_checkpointing = args.grad_checkpointing

        self.patch_embed = PatchEmbed3d(args.in_chans, args.embed_dim, args.tubelet_size, args.patch_size)
        if args.use_learnable_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, args.embed_dim))
        else:
            self.pos_embed = None
            self.register_buffer(
                "pos_table", sinusoid_table(self.num_tokens, args.embed_dim), persistent=False
            )
        self.pos_drop = nn.Dropout(args.drop_rate)
        rates = [args.drop_path_rate * i / max(1, args.depth - 1) for i in range(args.depth)]  # linear rule
        self.blocks = nn.ModuleList(Block(args.embed_dim, args.num_heads, args, rate) for rate in rates)
        self.fc_norm = nn.LayerNorm(args.embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(args.head_drop_rate)
        self.head = nn.Linear(args.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """Official init: truncated normal (std .02) for linears and pos_embed, LayerNorm 1/0, small head.

        Skipped on the meta device (nothing to fill; used to count parameters or to materialise later).
        """
        if self.patch_embed.proj.weight.is_meta:
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(self.args.init_scale)
                self.head.bias.mul_(self.args.init_scale)

    # --- hooks used by timm's optimizer factory and by training code ---------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names excluded from weight decay beyond timm's own 1-D/bias rule."""
        return {"pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Layer ids for layer-wise lr decay: embeddings = 0, block i = i + 1, fc_norm/head = last."""
        # Unmatched names (fc_norm, head) get timm's "largest ordinal", i.e. their own last layer;
        # timm's (99999,) suffix would instead merge them into the last block's group.
        return dict(stem=r"^patch_embed|^pos_embed", blocks=r"^blocks\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def get_num_layers(self) -> int:
        return len(self.blocks)

    # --- forward ---------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error when `x` is not (B, in_chans, num_frames, img_size, img_size)."""
        expected = (self.args.in_chans, self.num_frames, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"VideoMAEViT expects clips of shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}); "
                f"got {tuple(x.shape)}"
            )

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, C, T, H, W) -> token features after the last block (B, N, D)."""
        self.check_input(x)
        x = self.patch_embed(x)  # (B, N, D)
        pos = self.pos_embed if self.pos_embed is not None else self.pos_table
        x = self.pos_drop(x + pos.to(dtype=x.dtype))
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, C, T, H, W) -> pooled feature (B, D): mean over tokens, then fc_norm."""
        return self.fc_norm(self.forward_tokens(x).mean(dim=1))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def token_grid(tubelet_size: int, patch_size: int, num_frames: int, img_size: int) -> tuple[int, int, int]:
    """(T', H', W') tokens of a clip cut into tubelets x patches; a clip that does not divide is an error."""
    if num_frames % tubelet_size:
        raise ValueError(f"num_frames {num_frames} is not a multiple of tubelet_size {tubelet_size}")
    if img_size % patch_size:
        raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
    side = img_size // patch_size
    return (num_frames // tubelet_size, side, side)
