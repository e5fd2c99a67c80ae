"""The Time Interval Machine network.

Every token is [content (d_model) | time-interval encoding (d_model)]: a feature token's content is
its projected feature and its interval is the feature's own (start, end) inside the window; a
query token's content is a learned class-type token and its interval is the interval to classify.
One learned modality embedding per stream is added to that stream's feature tokens, and the first
stream's to the query tokens (the official model tags its visual queries with the visual
encoding: queries belong to the first stream). The encoder
sees all tokens at once, but a query may attend only to the feature tokens and to itself, so the
answer for one interval never depends on which other intervals are asked in the same pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class IntervalEncoder(nn.Module):
    """(start, end) normalised to the window -> d: MLP 2 -> d -> d -> d with ReLUs, then LayerNorm."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2, d_model),
            nn.ReLU(),
            nn.Linear(d_model, d_model),
            nn.ReLU(),
            nn.Linear(d_model, d_model),
            nn.ReLU(),
            nn.LayerNorm(d_model),
        )

    def forward(self, intervals: torch.Tensor) -> torch.Tensor:  # (..., 2) -> (..., d)
        return self.mlp(intervals)


def feature_projection(in_dim: int, d_model: int, dropout: float) -> nn.Module:
    """Dropout, linear, GELU, LayerNorm: one feature vector -> d_model."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, d_model), nn.GELU(), nn.LayerNorm(d_model))


def query_attention_mask(num_feature_tokens: int, num_queries: int, device=None) -> torch.Tensor:
    """(S, S) bool, True = may NOT attend. Features attend to features; a query to features and itself."""
    size = num_feature_tokens + num_queries
    mask = torch.ones(size, size, dtype=torch.bool, device=device)
    mask[:, :num_feature_tokens] = False
    mask.diagonal().fill_(False)
    return mask


class TimModel(nn.Module):
    """Feature streams + interval queries -> per-query class logits (and boundary offsets)."""

    def __init__(
        self,
        stream_dims: dict[str, int],
        num_classes: int,
        d_model: int = 512,
        num_heads: int = 8,
        num_layers: int = 4,
        feedforward_scale: int = 4,
        dropout: float = 0.1,
        feat_dropout: float = 0.5,
        seq_dropout: float = 0.5,
        regression: bool = False,
    ) -> None:
        super().__init__()
        if not stream_dims:
            raise ValueError("TimModel needs at least one feature stream, got stream_dims={}")
        self.stream_names = list(stream_dims)
        self.d_model = d_model
        width = 2 * d_model
        self.projections = nn.ModuleDict(
            {name: feature_projection(dim, d_model, feat_dropout) for name, dim in stream_dims.items()}
        )
        self.modality = nn.Parameter(torch.empty(len(stream_dims), width))
        nn.init.normal_(self.modality, std=0.01)
        self.query_token = nn.Parameter(torch.empty(d_model))
        nn.init.normal_(self.query_token, std=0.01)
        self.interval_encoder = IntervalEncoder(d_model)
        self.seq_dropout = nn.Dropout(seq_dropout)
        layer = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=num_heads,
            dim_feedforward=feedforward_scale * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.cls_head = nn.Linear(width, num_classes)
        self.reg_head = nn.Linear(width, 2) if regression else None
        if regression:  # sigmoid detection: start every class at a 1% prior (focal-loss convention)
            nn.init.constant_(self.cls_head.bias, -math.log(99.0))
        self.drloc_mlp = nn.Sequential(
            nn.Linear(2 * width, d_model),
            nn.ReLU(),
            nn.Linear(d_model, d_model),
            nn.ReLU(),
            nn.Linear(d_model, 1),
        )

    def encode_intervals(self, intervals: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) normalised intervals -> (B, N, d_model) time encodings."""
        return self.interval_encoder(intervals)

    def forward(
        self,
        feats: dict[str, torch.Tensor],
        feat_time: torch.Tensor | dict[str, torch.Tensor],
        query_time: torch.Tensor,
        feat_pad: torch.Tensor | None = None,
        query_pad: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the encoder.

        feats: stream -> (B, T, D_stream); feat_time (B, T, d) and query_time (B, Q, d) are the
        time encodings (`encode_intervals`, possibly mixed up); feat_time may also be a dict
        stream -> (B, T, d) when the streams' windows differ; feat_pad (B, T) / query_pad (B, Q)
        are True where a slot is padding. Returns `logits` (B, Q, C), `offsets` (B, Q, 2) when the
        model regresses boundaries, and `feature_tokens` (B, S*T, 2d) for DRLoc.
        """
        missing = [name for name in self.stream_names if name not in feats]
        if missing:
            raise ValueError(f"TimModel: missing feature stream(s) {missing}; expected {self.stream_names}")
        times = feat_time if isinstance(feat_time, dict) else dict.fromkeys(self.stream_names, feat_time)
        batch, num_feats, _ = times[self.stream_names[0]].shape
        num_queries = query_time.shape[1]
        tokens = []
        for index, name in enumerate(self.stream_names):
            x = feats[name]
            if x.shape[:2] != (batch, num_feats) or times[name].shape[:2] != (batch, num_feats):
                raise ValueError(
                    f"TimModel: stream {name!r} has shape {tuple(x.shape)} (times {tuple(times[name].shape)}), "
                    f"expected ({batch}, {num_feats}, D)"
                )
            content = self.projections[name](x)  # (B, T, d)
            tokens.append(torch.cat([content, times[name]], dim=-1) + self.modality[index])  # (B, T, 2d)
        query = torch.cat([self.query_token.expand(batch, num_queries, -1), query_time], dim=-1)
        query = query + self.modality[0]  # (B, Q, 2d)
        seq = self.seq_dropout(torch.cat(tokens + [query], dim=1))  # (B, S*T + Q, 2d)

        num_feature_tokens = len(self.stream_names) * num_feats
        mask = query_attention_mask(num_feature_tokens, num_queries, device=seq.device)
        if feat_pad is None:
            feat_pad = torch.zeros(batch, num_feats, dtype=torch.bool, device=seq.device)
        if query_pad is None:
            query_pad = torch.zeros(batch, num_queries, dtype=torch.bool, device=seq.device)
        key_pad = torch.cat([feat_pad] * len(self.stream_names) + [query_pad], dim=1)  # (B, S)
        out = self.encoder(seq, mask=mask, src_key_padding_mask=key_pad)  # (B, S, 2d)

        query_out = out[:, num_feature_tokens:]  # (B, Q, 2d)
        result = {"logits": self.cls_head(query_out), "feature_tokens": out[:, :num_feature_tokens]}
        if self.reg_head is not None:
            result["offsets"] = self.reg_head(query_out)  # (B, Q, 2)
        return result

    def drloc(self, tokens_a: torch.Tensor, tokens_b: torch.Tensor) -> torch.Tensor:
        """Predicted normalised distance of token pairs: (B, M, 2d) x2 -> (B, M)."""
        return self.drloc_mlp(torch.cat([tokens_a, tokens_b], dim=-1)).squeeze(-1)
