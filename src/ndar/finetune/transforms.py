"""Clip augmentation: one random draw per clip, applied identically to every frame.

A clip is a uint8 tensor (T, H, W, 3) already resized on decode so its short side is fixed. Train:
random resized crop (same box for all frames), timm RandAugment with the same ops and magnitudes on
every frame (the Python and NumPy random states are replayed per frame), [0, 1] scaling and the
backbone's normalisation, timm random erasing (one box through all frames), and an optional
horizontal flip that swaps the left/right labels. Eval: `num_crops` square crops along the long side.
Outputs are laid out for the model: (3, T, S, S) float32.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.auto_augment import rand_augment_transform
from timm.data.random_erasing import RandomErasing
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from ndar import taxonomy


def flip_label(label: int) -> int:
    """The label of a horizontally flipped clip (phone call / text right <-> left)."""
    return taxonomy.FLIP_PAIRS.get(int(label), int(label))


def normalize_clip(clip: torch.Tensor, mean, std, normalize: bool = True) -> torch.Tensor:
    """(T, 3, H, W) uint8 -> (3, T, H, W) float32 in [0, 1], then (x - mean) / std if `normalize`."""
    x = clip.float().div_(255.0).permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)
    if normalize:
        m = torch.tensor(mean, dtype=x.dtype).view(3, 1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype).view(3, 1, 1, 1)
        x.sub_(m).div_(s)
    return x


class ConsistentRandAugment:
    """timm RandAugment whose random choices are drawn once per clip and replayed on every frame."""

    def __init__(self, spec: str, img_size: int, mean) -> None:
        hparams = {"translate_const": int(img_size * 0.45), "img_mean": tuple(round(255 * m) for m in mean)}
        self.transform = rand_augment_transform(spec, hparams)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) uint8 -> (T, 3, H, W) uint8, the same ops and magnitudes on every frame."""
        py_state, np_state = random.getstate(), np.random.get_state()
        frames = []
        for frame in clip.permute(0, 2, 3, 1).numpy():  # (H, W, 3)
            random.setstate(py_state)
            np.random.set_state(np_state)
            frames.append(np.asarray(self.transform(Image.fromarray(frame))))
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class TrainClipTransform:
    """Random resized crop + consistent RandAugment + normalise + random erasing (+ optional flip)."""

    def __init__(
        self,
        img_size: int,
        mean,
        std,
        normalize: bool = True,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (0.75, 1.3333),
        rand_augment: str = "",
        reprob: float = 0.0,
        hflip: float = 0.0,
    ) -> None:
        self.img_size = img_size
        self.mean, self.std, self.normalize = mean, std, normalize
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.rand_augment = ConsistentRandAugment(rand_augment, img_size, mean) if rand_augment else None
        self.erase = (
            RandomErasing(reprob, mode="pixel", max_count=1, num_splits=0, device="cpu")
            if reprob > 0
            else None
        )
        self.hflip = hflip

    def __call__(self, frames: torch.Tensor, label: int) -> tuple[torch.Tensor, int]:
        clip = frames.permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
        top, left, h, w = RandomResizedCrop.get_params(clip, self.scale, self.ratio)
        clip = TF.resized_crop(clip, top, left, h, w, [self.img_size, self.img_size], antialias=True)
        if self.rand_augment is not None:
            clip = self.rand_augment(clip)
        if self.hflip > 0 and random.random() < self.hflip:
            clip = clip.flip(-1)
            label = flip_label(label)
        x = normalize_clip(clip, self.mean, self.std, self.normalize)  # (3, T, S, S)
        if self.erase is not None:
            c, t, s1, s2 = x.shape
            self.erase(x.view(c * t, s1, s2))  # one box through every frame, in place
        return x, label


def spatial_crops(clip: torch.Tensor, size: int, num_crops: int) -> list[torch.Tensor]:
    """`num_crops` square crops of (T, 3, H, W) evenly placed along the long side (1 = centre)."""
    _, _, h, w = clip.shape
    if min(h, w) < size:  # decoded smaller than the crop: scale the short side up
        clip = resize_short_side(clip, size)
        _, _, h, w = clip.shape
    crops = []
    for k in range(num_crops):
        frac = 0.5 if num_crops == 1 else k / (num_crops - 1)
        top = int(round((h - size) * (frac if h > w else 0.5)))
        left = int(round((w - size) * (frac if w >= h else 0.5)))
        crops.append(clip[:, :, top : top + size, left : left + size])
    return crops


def resize_short_side(clip: torch.Tensor, short: int) -> torch.Tensor:
    """(T, 3, H, W) uint8 resized so min(H, W) == short (aspect kept)."""
    _, _, h, w = clip.shape
    if min(h, w) == short:
        return clip
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    out = F.interpolate(clip.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class EvalClipTransform:
    """Deterministic views of a clip: `num_crops` crops of size `img_size`, normalised."""

    def __init__(self, img_size: int, mean, std, normalize: bool = True, num_crops: int = 3) -> None:
        self.img_size, self.num_crops = img_size, num_crops
        self.mean, self.std, self.normalize = mean, std, normalize

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 -> (num_crops, 3, T, S, S) float32."""
        clip = frames.permute(0, 3, 1, 2)  # (T, 3, H, W)
        crops = spatial_crops(clip, self.img_size, self.num_crops)
        return torch.stack([normalize_clip(c, self.mean, self.std, self.normalize) for c in crops])
