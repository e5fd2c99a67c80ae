"""Clip augmentation: one random draw per clip, the same on every frame; label-swapping flip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from ndar import taxonomy
from ndar.finetune.transforms import ConsistentRandAugment, EvalClipTransform, TrainClipTransform, flip_label

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _textured_frame(h: int = 64, w: int = 80, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)


def test_rand_augment_same_ops_on_every_frame():
    frame = _textured_frame()
    clip = frame.permute(2, 0, 1).unsqueeze(0).repeat(6, 1, 1, 1)  # (T, 3, H, W), identical frames
    aug = ConsistentRandAugment("rand-m9-n3-mstd0.5", 64, MEAN)
    changed = 0
    for seed in range(8):
        random.seed(seed)
        np.random.seed(seed)
        out = aug(clip)
        assert out.shape == clip.shape and out.dtype == torch.uint8
        for t in range(1, out.shape[0]):
            assert torch.equal(out[t], out[0]), f"seed {seed}: frame {t} got different ops than frame 0"
        changed += int(not torch.equal(out[0], clip[0]))
    assert changed >= 6, "RandAugment left almost every clip unchanged"


def test_rand_augment_without_replay_would_differ():
    """The check above can fail: applying timm's RandAugment frame by frame gives different frames."""
    frame = _textured_frame()
    aug = ConsistentRandAugment("rand-m9-n3-mstd0.5", 64, MEAN).transform
    from PIL import Image

    random.seed(0)
    np.random.seed(0)
    outs = [np.asarray(aug(Image.fromarray(frame.numpy()))) for _ in range(6)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_train_transform_crop_and_erasing_span_all_frames():
    frames = torch.full((4, 72, 96, 3), 128, dtype=torch.uint8)
    frames[:, :, :48] = 30  # left half dark: the crop box shows up in the output
    tf = TrainClipTransform(32, MEAN, STD, scale=(0.3, 0.6), reprob=1.0)
    torch.manual_seed(0)
    random.seed(0)
    x, label = tf(frames, 5)
    assert x.shape == (3, 4, 32, 32) and x.dtype == torch.float32 and label == 5
    clean = TrainClipTransform(32, MEAN, STD, scale=(0.3, 0.6), reprob=0.0)
    torch.manual_seed(0)
    random.seed(0)
    ref, _ = clean(frames, 5)
    erased = (x != ref).any(0)  # (T, S, S): pixels the eraser touched
    assert erased.any()
    for t in range(1, 4):
        assert torch.equal(erased[t], erased[0]), "the erased box must be the same in every frame"


def test_normalisation_uses_the_spec():
    frames = torch.full((2, 40, 40, 3), 255, dtype=torch.uint8)
    x = EvalClipTransform(32, MEAN, STD, num_crops=1)(frames)  # (1, 3, T, S, S)
    expected = (1.0 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(x[0, :, 0, 0, 0], expected, atol=1e-5)
    raw = EvalClipTransform(32, MEAN, STD, normalize=False, num_crops=1)(frames)
    assert torch.allclose(raw, torch.ones_like(raw))


@pytest.mark.parametrize("label", range(taxonomy.NUM_CLASSES))
def test_flip_swaps_left_right_classes(label):
    expected = {2: 3, 3: 2, 5: 6, 6: 5}.get(label, label)
    assert flip_label(label) == expected


def test_flip_option_mirrors_clip_and_swaps_label():
    frames = torch.zeros((2, 32, 32, 3), dtype=torch.uint8)
    frames[:, :, :8] = 255  # bright left stripe
    tf = TrainClipTransform(32, MEAN, STD, normalize=False, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0)
    x, label = tf(frames, 2)
    assert label == 3
    assert x[:, :, :, -4:].mean() > 0.9 and x[:, :, :, :4].mean() < 0.1  # stripe moved to the right


def test_eval_crops_cover_the_long_side():
    frames = torch.zeros((2, 32, 96, 3), dtype=torch.uint8)
    frames[:, :, :32] = 50
    frames[:, :, 32:64] = 120
    frames[:, :, 64:] = 200
    views = EvalClipTransform(32, MEAN, STD, normalize=False, num_crops=3)(frames)
    assert views.shape == (3, 3, 2, 32, 32)
    means = views.mean(dim=(1, 2, 3, 4))
    assert means[0] < means[1] < means[2]
