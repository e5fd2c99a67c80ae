"""Per-slot choice among a window's feature copies (official TIM's augmented-feature training).

The official recognition training draws, for every feature slot of every window in every step, one
of the stored copies of that feature uniformly (clean included), independently per stream; the clean
copy is the only one seen at validation and inference. ndar's copies come from
`extract.augment_copies` (`features_aug`, (K, N, D)) and reach TIM as `FeatureVideo.aug_streams`.
"""

from __future__ import annotations

import numpy as np
import torch


def slot_features(
    clean: torch.Tensor, copies: torch.Tensor | None, rows: torch.Tensor, rng: np.random.Generator | None
) -> torch.Tensor:
    """Features of `rows` (M,) from clean (N, D) or, when `rng` is given, a random copy per row.

    Copy 0 is the clean feature and copy k >= 1 is copies[k - 1] (K, N, D); each row draws
    uniformly from the K + 1. Without `rng` or copies this is exactly clean[rows].
    """
    out = clean[rows]  # (M, D)
    if rng is None or copies is None or len(rows) == 0:
        return out
    pick = torch.from_numpy(rng.integers(0, copies.shape[0] + 1, size=len(rows)))  # (M,)
    augmented = pick > 0
    out[augmented] = copies[pick[augmented] - 1, rows[augmented]]
    return out


def augmented_streams(video, stream_dims: dict[str, int]) -> dict[str, torch.Tensor]:
    """The copies of every stream the model reads, as (K, N, D) float32 tensors.

    Called only when `tim.augment_copies` is on, so a video without them is a configuration error
    (features extracted without `extract.augment_copies`), not something to train around.
    """
    missing = [name for name in stream_dims if name not in video.aug_streams]
    if missing:
        raise ValueError(
            f"video {video.key}: tim.augment_copies is on but stream(s) {missing} have no augmented "
            "copies; extract them with extract.augment_copies > 0 or set tim.augment_copies=false"
        )
    return {name: torch.from_numpy(np.asarray(video.aug_streams[name], np.float32)) for name in stream_dims}
