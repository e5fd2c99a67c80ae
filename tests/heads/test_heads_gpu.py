"""The heads on a CUDA device (skipped where there is none; run on a GPU machine with
`pytest tests/heads/test_heads_gpu.py tests/extract/test_extract_gpu.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from heads_fixtures import make_videos
from test_heads_actionformer import tiny as tiny_actionformer
from test_tim_train import CLASSES, DIMS
from test_tim_train import tiny as tiny_tim

from ndar.heads.actionformer import ActionFormerHead
from ndar.heads.base import check_output
from ndar.heads.tim import TimHead
from ndar.heads.tim.losses import drloc_pairs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_drloc_pairs_are_the_same_on_gpu_and_cpu_for_a_seed() -> None:
    valid = torch.rand(4, 32, generator=torch.Generator().manual_seed(0)) > 0.3
    cpu = drloc_pairs(valid, 16, torch.Generator().manual_seed(1))
    gpu = drloc_pairs(valid.cuda(), 16, torch.Generator().manual_seed(1))
    assert all(g.device.type == "cuda" for g in gpu)
    for c, g in zip(cpu, gpu, strict=True):
        torch.testing.assert_close(g.cpu(), c)


@pytest.mark.parametrize("mode", ["recognition", "detection"])
def test_tim_trains_and_predicts_on_gpu(mode: str, tmp_path: Path) -> None:
    train = make_videos(n_drivers=3, sessions=2, duration=90.0, classes=CLASSES, seed=0)
    val = make_videos(n_drivers=1, sessions=1, duration=90.0, classes=CLASSES, seed=5, first_driver=900)
    head = TimHead(tiny_tim(mode, epochs=3, device="cuda"), DIMS, seed=0)
    history = head.fit(train, val, tmp_path)["epochs"]
    assert np.isfinite([h["train_cls"] for h in history]).all()
    for video in val:
        check_output(video.key, head.predict(val)[video.key], video.duration)


def test_actionformer_trains_and_predicts_on_gpu(tmp_path: Path) -> None:
    videos = make_videos(n_drivers=6, sessions=2, seed=0)  # as the CPU test, on the GPU
    head = ActionFormerHead(tiny_actionformer(epochs=10, lr=5e-3, device="cuda"), DIMS, seed=0)
    history = head.fit(videos[:8], videos[8:], tmp_path)["epochs"]
    assert history[-1]["loss"] < history[0]["loss"], [h["loss"] for h in history]
    out = head.predict(videos[8:])
    for video in videos[8:]:
        check_output(video.key, out[video.key], video.duration)
