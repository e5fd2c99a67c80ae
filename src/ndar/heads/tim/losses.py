"""TIM losses: recognition cross-entropy, detection focal + L1, DRLoc, and mixup of a batch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is True (0 when nothing is selected, keeping the graph)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def recognition_loss(
    logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Cross-entropy with label smoothing over the valid queries. logits (B, Q, C), labels/valid (B, Q)."""
    ce = F.cross_entropy(
        logits.flatten(0, 1).float(),
        labels.flatten().clamp_min(0),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return masked_mean(ce, valid.flatten())


def detection_loss(
    logits: torch.Tensor,
    offsets: torch.Tensor,
    cls_target: torch.Tensor,
    offset_target: torch.Tensor,
    positive: torch.Tensor,
    valid: torch.Tensor,
    alpha: float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(focal, L1). Focal summed over valid queries and divided by the activity positives (as in
    ActionFormer: class-0 rows are the many easy ones and must not dilute the normaliser); L1 of
    (start, end) offsets averaged over positives. Shapes: (B, Q, C), (B, Q, 2), (B, Q)."""
    focal = sigmoid_focal_loss(logits.float(), cls_target, alpha=alpha, gamma=gamma, reduction="none").sum(-1)
    focal = (focal * valid).sum() / (cls_target[..., 1:].sum(-1) * valid).sum().clamp_min(1.0)
    l1 = F.l1_loss(offsets.float(), offset_target, reduction="none").sum(-1)
    return focal, masked_mean(l1, positive & valid)


def drloc_pairs(
    valid: torch.Tensor, num_pairs: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `num_pairs` (i, j) token pairs per row among the valid tokens. valid (B, N) -> 2 x (B, M).

    Sampled on the CPU with the (CPU) training generator, then moved to `valid`'s device: the same
    pairs on CPU and GPU for a seed, and one generator state to checkpoint.
    """
    valid_cpu = valid.detach().cpu()
    weights = valid_cpu.float() + 1e-12 * (~valid_cpu).float()  # rows always have a valid token
    first = torch.multinomial(weights, num_pairs, replacement=True, generator=generator)
    second = torch.multinomial(weights, num_pairs, replacement=True, generator=generator)
    return first.to(valid.device), second.to(valid.device)


def drloc_loss(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    centres: torch.Tensor,
    valid: torch.Tensor,
    num_pairs: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Dense relative localisation: from two output feature tokens predict the distance of their
    time centres (normalised by the window), L1. tokens (B, N, W), centres/valid (B, N)."""
    first, second = drloc_pairs(valid, num_pairs, generator)
    pick = lambda idx: torch.gather(tokens, 1, idx[..., None].expand(-1, -1, tokens.shape[-1]))  # noqa: E731
    target = (torch.gather(centres, 1, first) - torch.gather(centres, 1, second)).abs()  # (B, M)
    pred = model.drloc(pick(first), pick(second))  # (B, M)
    return F.l1_loss(pred.float(), target.float())


def mixup_pairing(batch: int, alpha: float, rng: np.random.Generator) -> tuple[float, torch.Tensor]:
    """Mixing weight lam ~ Beta(alpha, alpha) and a permutation of the batch (lam = 1: no mixing)."""
    if alpha <= 0 or batch < 2:
        return 1.0, torch.arange(batch)
    lam = float(rng.beta(alpha, alpha))
    return lam, torch.from_numpy(rng.permutation(batch))


def mix(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """lam * x + (1 - lam) * x[perm] along the batch dimension."""
    if lam >= 1.0:
        return x
    return lam * x + (1.0 - lam) * x[perm.to(x.device)]
