"""Strict loading of weights written by other code (the official ActionFormer and TIM releases)."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def strip_prefix(weights: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop a wrapper's prefix (DataParallel / DDP write `module.`) from every key that has it."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in weights.items()}


def load_strict(net: torch.nn.Module, weights: Mapping[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names every missing, unexpected or mis-shaped tensor in one ValueError,
    so that a checkpoint of another architecture never loads half-way."""
    own = net.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = sorted(
        f"{k}: {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(weights)
        if tuple(weights[k].shape) != tuple(own[k].shape)
    )
    problems = [
        f"{label} {items}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes))
        if items
    ]
    if problems:
        raise ValueError(f"{what}: the weights do not fit the model: " + "; ".join(problems))
    net.load_state_dict(dict(weights), strict=True)
