"""One geometry: what extraction feeds a model for a window is what validation fed it for that clip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from ndar.backbones import get_spec
from ndar.extract.models import preprocess_clips
from ndar.extract.stream import WindowStream
from ndar.finetune.data import ClipDataset
from ndar.finetune.transforms import EvalClipTransform
from ndar.video import WindowSpec
from ndar.video.geometry import CROP_PRESETS, Geometry, plan_geometry, resolve_crop_box

FPS = 30
BOX = (0.2, 0.1, 0.8, 0.9)


def write_smooth_video(path: Path, frames: int = 48, width: int = 320, height: int = 180) -> Path:
    """Smooth moving gradients (H.264): two decoders' scalers agree on them to a few grey levels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "8", "crf": "12"}
        for i in range(frames):
            r = 128 + 100 * np.sin((xx + 3 * i) / 23.0)
            g = 128 + 100 * np.cos((yy - 2 * i) / 17.0)
            b = 128 + 60 * np.sin((xx + yy) / 31.0 + i / 5.0)
            image = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_smooth_video(tmp_path_factory.mktemp("geometry") / "clip.mp4")


def window_rows(path: Path, starts: list[int], span: int) -> pd.DataFrame:
    """Clip rows whose frame grid is exactly the window's frames (start .. start + span)."""
    return pd.DataFrame(
        {
            "path": [str(path)] * len(starts),
            "label": [1] * len(starts),
            "start": [(s + 0.25) / FPS for s in starts],
            "end": [(s + span + 0.25) / FPS for s in starts],
            "fold": [0] * len(starts),
        }
    )


@pytest.mark.parametrize("resize", ["squash", "pad"])
@pytest.mark.parametrize("subtract_mean", [False, True])
def test_extraction_input_equals_validation_input(video: Path, subtract_mean: bool, resize: str) -> None:
    spec = dataclasses.replace(
        get_spec("videomae_vit_tiny"), num_frames=4, sampling_rate=2, img_size=48, crop_box=BOX,
        subtract_video_mean=subtract_mean, resize=resize,
    )  # fmt: skip
    geometry = Geometry(spec.img_size, spec.crop_box, spec.resize)  # what fine-tuning is given
    plan = geometry.plan((180, 320))  # what extraction plans once it has probed the video
    # the box is 192 x 144 px of the 320 x 180 frame: squashed to 48 x 48, or 48 x 36 on zeros
    assert plan.scaled == ((60, 80) if resize == "squash" else (44, 80)) and not plan.is_whole_frame
    window = WindowSpec(num_frames=4, sampling_rate=2, stride=8)
    means = None
    if subtract_mean:
        from ndar.video import video_mean_frame

        means = [plan.crop(video_mean_frame(video, plan.scaled))]
    batches = list(WindowStream(video, [window], [plan.scaled], batch_size=8, means=means, crops=[plan]))
    clips = np.concatenate([b.clips for b in batches])  # (N, T, S, S, 3)
    starts = [s for b in batches for s in b.starts]
    extracted = preprocess_clips(clips, spec, torch.device("cpu"))  # (N, 3, T, S, S)

    if resize == "pad":
        fill = 128 if subtract_mean else 0  # zeros, minus a mean frame padded with zeros the same way
        assert (
            plan.box_hw == (36, 48) and (clips[:, :, :6] == fill).all() and (clips[:, :, -6:] == fill).all()
        )
        assert np.abs(clips[:, :, 6:-6].astype(int) - fill).mean() > 10

    dataset = ClipDataset(
        window_rows(video, starts, 6), spec.num_frames, spec.sampling_rate, geometry,
        eval_transform=EvalClipTransform(spec.img_size, spec.mean, spec.std, spec.normalize, num_crops=1),
        num_segments=1, subtract_mean=subtract_mean,
    )  # fmt: skip
    validated = torch.stack([dataset[i][0][0] for i in range(len(dataset))])  # (N, 3, T, S, S)
    assert validated.shape == extracted.shape == (len(starts), 3, 4, 48, 48)
    # the two decoders (swscale bilinear in PyAV, decord's ffmpeg scaler) differ by a few grey levels
    std = torch.tensor(spec.std).view(1, 3, 1, 1, 1)
    grey_levels = ((validated - extracted) * std * 255).abs()
    assert grey_levels.mean() < 2.0, grey_levels.mean()
    assert torch.quantile(grey_levels.flatten(), 0.99) < 8.0


def test_crop_box_changes_the_input(video: Path) -> None:
    """The crop is really applied: the same window through a whole-frame plan differs a lot."""
    window = WindowSpec(num_frames=4, sampling_rate=2, stride=8)
    crop = plan_geometry(48, BOX)
    whole = plan_geometry(48)
    a = next(iter(WindowStream(video, [window], [crop.scaled], 8, crops=[crop]))).clips.astype(float)
    b = next(iter(WindowStream(video, [window], [whole.scaled], 8))).clips.astype(float)
    assert a.shape == b.shape and np.abs(a - b).mean() > 10


def test_plan_geometry_maps_the_box_onto_the_input() -> None:
    plan = plan_geometry(224, (0.25, 0.0, 0.75, 1.0))
    assert plan.scaled == (224, 448) and (plan.top, plan.left) == (0, 112)
    frames = np.zeros((2, 224, 448, 3), np.uint8)
    assert plan.crop(frames).shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="expected the planned"):
        plan.crop(np.zeros((2, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="left < right"):
        plan_geometry(224, (0.5, 0.0, 0.4, 1.0))


def test_pad_keeps_the_box_aspect_ratio() -> None:
    """The real rear box (0.12-0.98 of a 1920 x 1080 frame, 1651 x 1080 px) padded into 224."""
    plan = plan_geometry(224, (0.12, 0.0, 0.98, 1.0), "pad", (1080, 1920))
    assert plan.box_hw == (146, 224) and plan.scaled == (146, 260) and plan.left == 31
    frames = np.full((1, 146, 260, 3), 200, np.uint8)
    out = plan.crop(frames)  # (1, 224, 224, 3): 39 rows of zeros above and below the box
    assert out.shape == (1, 224, 224, 3) and out[:, 39:185].min() == 200
    assert not out[:, :39].any() and not out[:, 185:].any()
    with pytest.raises(ValueError, match="needs the frame's size"):
        plan_geometry(224, (0.12, 0.0, 0.98, 1.0), "pad")
    with pytest.raises(ValueError, match="resize: expected one of"):
        plan_geometry(224, resize="stretch")


def test_crop_presets_cover_every_view() -> None:
    for name, boxes in CROP_PRESETS.items():
        assert set(boxes) == {"dashboard", "rear", "right"}, name
    assert resolve_crop_box("aicity", "Rear_view") == CROP_PRESETS["aicity"]["rear"]
    assert resolve_crop_box([0.1, 0.1, 0.9, 0.9], "rear") == (0.1, 0.1, 0.9, 0.9)
    with pytest.raises(ValueError, match="expected one of"):
        resolve_crop_box("nope", "rear")


def test_finetune_config_carries_the_resize_rule() -> None:
    from ndar.config import ConfigError, load_config
    from ndar.finetune.config import FinetuneConfig
    from ndar.finetune.data import finetune_spec

    base = "configs/finetune/tiny/k400_vith.yaml"
    cfg = load_config(FinetuneConfig, base, ["data.root=data", "data.resize=pad"])
    assert finetune_spec(cfg).resize == "pad"  # saved in model.json, read back by extraction
    with pytest.raises(ConfigError, match="data.resize: expected one of"):
        load_config(FinetuneConfig, base, ["data.root=data", "data.resize=stretch"]).validate()
