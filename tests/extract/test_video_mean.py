"""Per-video mean-frame subtraction: the mean itself, the residual encoding, and that fine-tuning's
reader, the extraction stream and the model folder all apply or carry it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from extract_fixtures import make_video

from ndar.backbones import create_backbone, get_spec, load_model_folder, read_model_meta, save_model_folder
from ndar.extract.stream import WindowStream
from ndar.finetune.data import FrameReader
from ndar.video import WindowSpec, iter_frames, subtract_mean, video_mean_frame
from ndar.video.geometry import plan_geometry


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("mean") / "clip.mp4", 24)


def decoded(path: Path, size=None) -> np.ndarray:
    return np.stack([f.image for f in iter_frames(path, [size])])  # (N, H, W, 3)


def test_mean_frame_is_the_mean_of_every_frame_when_the_video_is_short(clip: Path) -> None:
    frames = decoded(clip).astype(np.float32)
    mean = video_mean_frame(clip)  # 24 frames < 64 samples: every frame is averaged
    assert mean.shape == frames.shape[1:] and mean.dtype == np.float32
    assert np.abs(mean - frames.mean(0)).max() < 1.0
    assert np.abs(mean - frames[0]).max() > 20  # the texture moves: the mean is not one frame


def test_mean_frame_resized_matches_the_mean_of_resized_frames(clip: Path) -> None:
    small = video_mean_frame(clip, (12, 16))
    assert small.shape == (12, 16, 3)
    reference = decoded(clip, (12, 16)).astype(np.float32).mean(0)  # swscale, as extraction decodes
    assert np.abs(small - reference).mean() < 4.0  # same mean up to the interpolation kernel


def test_residual_is_centred_on_128_and_clipped() -> None:
    mean = np.full((2, 2, 3), 100.0, dtype=np.float32)
    frames = np.array([[[[100, 0, 255]] * 2] * 2], dtype=np.uint8)  # (1, 2, 2, 3)
    out = subtract_mean(frames, mean)
    assert out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [128, 28, 255]  # 100 -> 128, 0 -> 28, 255 -> 283 clipped
    with pytest.raises(ValueError, match="differs"):
        subtract_mean(frames, np.zeros((3, 3, 3), dtype=np.float32))


def test_finetune_reader_returns_residual_frames(clip: Path) -> None:
    reader = FrameReader(plan_geometry(24), subtract_mean=True)
    frames = reader.read(str(clip), np.arange(24)).numpy().astype(np.float32)
    plain = FrameReader(plan_geometry(24)).read(str(clip), np.arange(24)).numpy().astype(np.float32)
    assert frames.shape == plain.shape
    assert np.abs(frames.mean(0) - 128).mean() < 3.0  # every frame averaged: residuals average to 0
    assert np.abs(plain.mean(0) - 128).mean() > 10


def test_stream_subtracts_the_mean_only_for_the_backbones_that_want_it(clip: Path) -> None:
    spec = WindowSpec(num_frames=4, sampling_rate=1, stride=8)
    mean = video_mean_frame(clip, (16, 16))
    batches = list(WindowStream(clip, [spec, spec], [(16, 16), (16, 16)], 8, means=[mean, None]))
    with_mean = np.concatenate([b.clips for b in batches if b.model == 0])
    without = np.concatenate([b.clips for b in batches if b.model == 1])
    np.testing.assert_array_equal(with_mean, subtract_mean(without, mean))


def test_model_folder_carries_the_setting(tmp_path: Path) -> None:
    over = {"depth": 1, "embed_dim": 32, "num_heads": 2, "subtract_video_mean": True}
    model = create_backbone("videomae_vit_tiny", num_frames=4, img_size=32, **over)
    spec = get_spec("videomae_vit_tiny", num_frames=4, img_size=32, **over)
    save_model_folder(model, spec, tmp_path / "m")
    assert read_model_meta(tmp_path / "m")["subtract_video_mean"] is True
    _, loaded = load_model_folder(tmp_path / "m")
    assert loaded.subtract_video_mean is True
    assert get_spec("videomae_vit_tiny").subtract_video_mean is False  # off unless asked
