"""Augmented feature copies: N RandAugment views of every window, embedded beside the clean one.

The official TIM extracts each window once clean and N times under RandAugment, and its recognition
training draws one copy per feature slot per step (`ndar.heads.tim.augment`). Copy k of window w of
a video is seeded by (seed, video stem, w, k) only, so the bytes do not depend on the batch size, the
number of ranks or which other windows ran. The ops are timm RandAugment applied identically to every
frame of the clip (`ndar.finetune.transforms.ConsistentRandAugment`, the fine-tuning's transform).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

from ndar.extract.models import embed, preprocess_clips
from ndar.finetune.transforms import ConsistentRandAugment


def copy_seed(seed: int, stem: str, window: int, copy: int) -> int:
    """A 32-bit seed that names one (video, window, copy) and nothing else."""
    digest = hashlib.sha256(f"{seed}/{stem}/{window}/{copy}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def augment_clips(
    clips: np.ndarray, augment: ConsistentRandAugment, seed: int, stem: str, first_window: int, copy: int
) -> np.ndarray:
    """uint8 clips (B, T, H, W, 3) -> their augmented copy `copy` (B, T, H, W, 3).

    The global Python and NumPy random states (which timm's RandAugment draws from) are seeded per
    clip and restored afterwards, so the caller's random streams are untouched.
    """
    if clips.dtype != np.uint8:
        raise ValueError(
            f"{stem}: augmented copies need uint8 frames (RandAugment works on images), got {clips.dtype} clips"
        )
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        out = []
        for b, clip in enumerate(clips):
            s = copy_seed(seed, stem, first_window + b, copy)
            random.seed(s)
            np.random.seed(s)
            frames = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (T, 3, H, W)
            out.append(augment(frames).permute(0, 2, 3, 1).numpy())  # (T, H, W, 3)
        return np.stack(out)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def make_augment(spec: str, backbone) -> ConsistentRandAugment:
    """The RandAugment transform for `backbone`'s input size and mean (fill colour of geometric ops)."""
    return ConsistentRandAugment(spec, int(backbone.spec.img_size), backbone.spec.mean)


def embed_copies(
    clips: np.ndarray,
    backbone,
    augment: ConsistentRandAugment,
    copies: int,
    seed: int,
    stem: str,
    first_window: int,
    device: torch.device,
    amp,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (K, B, D) and probabilities (K, B, C) of K augmented copies of a batch of clips."""
    feats, probs = [], []
    for k in range(copies):
        aug = augment_clips(clips, augment, seed, stem, first_window, k)
        f, p = embed(backbone.net, preprocess_clips(aug, backbone.spec, device), amp)
        feats.append(f)
        probs.append(p)
    return torch.stack(feats), torch.stack(probs)


def augment_meta(copies: int, spec: str, seed: int) -> dict | None:
    """What the sidecar JSON records about the copies (None, and no key at all, without copies)."""
    return {"copies": copies, "spec": spec, "seed": seed} if copies > 0 else None
