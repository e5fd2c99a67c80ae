"""Label assignment (centre sampling + regression ranges) and the losses of ActionFormer.

Everything here is in feature-step units: a point of level l at position i sits at step i * 2**l;
a ground-truth action is (start_step, end_step, class 0..14). Regression targets are the distances
from the point to the action's start and end, divided by the level's stride.
"""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss

from ndar.heads.actionformer.config import ActionFormerConfig


def pyramid_points(
    length: int, levels: int, ranges: list[list[float]], device: torch.device | None = None
) -> dict:
    """Points of every level for a padded sequence of `length` steps, concatenated over levels.

    Returns {"pos": (P,) step of each point, "stride": (P,), "lo": (P,), "hi": (P,)}.
    """
    pos, stride, lo, hi = [], [], [], []
    for level in range(levels):
        s = 2**level
        n = length // s
        pos.append(torch.arange(n, device=device, dtype=torch.float32) * s)
        stride.append(torch.full((n,), float(s), device=device))
        lo.append(torch.full((n,), float(ranges[level][0]), device=device))
        hi.append(torch.full((n,), float(ranges[level][1]), device=device))
    return {"pos": torch.cat(pos), "stride": torch.cat(stride), "lo": torch.cat(lo), "hi": torch.cat(hi)}


def assign_targets(
    points: dict, gt: torch.Tensor, labels: torch.Tensor, num_classes: int, radius: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One video: gt (M, 2) steps, labels (M,) 0..C-1 -> cls (P, C), reg (P, 2) in strides, positive (P,).

    A point is positive for an action if it lies strictly inside the action's centre region (radius x stride
    around the centre, clipped to the action) and the larger of its two distances falls in the
    level's regression range; among several such actions the shortest wins.
    """
    p = points["pos"]
    n_points = p.shape[0]
    if gt.shape[0] == 0:
        return (
            torch.zeros(n_points, num_classes),
            torch.zeros(n_points, 2),
            torch.zeros(n_points, dtype=torch.bool),
        )
    start, end = gt[:, 0][None], gt[:, 1][None]  # (1, M)
    left, right = p[:, None] - start, end - p[:, None]  # (P, M)
    centre = (start + end) / 2
    reach = radius * points["stride"][:, None]
    inside_centre = (
        torch.minimum(
            p[:, None] - torch.maximum(centre - reach, start), torch.minimum(centre + reach, end) - p[:, None]
        )
        > 0
    )
    largest = torch.maximum(left, right)
    in_range = (largest >= points["lo"][:, None]) & (largest <= points["hi"][:, None])
    lengths = (end - start).expand(n_points, -1).clone()
    lengths[~(inside_centre & in_range)] = float("inf")
    best_len, best = lengths.min(dim=1)  # (P,)
    positive = torch.isfinite(best_len)
    cls = torch.zeros(n_points, num_classes)
    cls[positive, labels[best[positive]]] = 1.0
    reg = torch.stack([left.gather(1, best[:, None])[:, 0], right.gather(1, best[:, None])[:, 0]], dim=1)
    reg = reg / points["stride"][:, None]
    reg[~positive] = 0.0
    return cls, reg, positive


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Distance-IoU loss of 1-D segments given as (left, right) distances from the same point: (K,)."""
    lp, rp = pred[:, 0], pred[:, 1]
    lg, rg = target[:, 0], target[:, 1]
    inter = (torch.minimum(lp, lg) + torch.minimum(rp, rg)).clamp(min=0)
    union = lp + rp + lg + rg - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    centre_gap = (rp - lp) / 2 - (rg - lg) / 2
    return 1 - iou + centre_gap**2 / enclosing.clamp(min=eps) ** 2


def detection_losses(
    logits: torch.Tensor,
    offsets: torch.Tensor,
    valid: torch.Tensor,
    cls_target: torch.Tensor,
    reg_target: torch.Tensor,
    positive: torch.Tensor,
    cfg: ActionFormerConfig,
) -> dict[str, torch.Tensor]:
    """Summed (not yet normalised) focal and DIoU losses over a batch of concatenated points.

    logits (B, P, C), offsets (B, P, 2), valid (B, P) bool; targets as from `assign_targets` stacked.
    """
    cls_loss = sigmoid_focal_loss(
        logits[valid], cls_target[valid], alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, reduction="sum"
    )
    pos = positive & valid
    if pos.any():
        reg_loss = diou_loss_1d(offsets[pos], reg_target[pos]).sum()
    else:
        reg_loss = offsets.sum() * 0.0
    return {"cls": cls_loss, "reg": reg_loss, "num_pos": pos.sum()}
