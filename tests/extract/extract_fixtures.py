"""Fixtures: small real H.264 videos (PyAV) in the official layout and tiny fine-tuned model folders."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from ndar.backbones import create_backbone, get_spec, save_model_folder

FPS = 30
WIDTH, HEIGHT = 64, 48


def make_video(
    path: Path,
    num_frames: int,
    fps: int = FPS,
    width: int = WIDTH,
    height: int = HEIGHT,
    seed: int = 0,
    faststart: bool = False,
) -> Path:
    """A moving random texture encoded as H.264 (key frame every 8 frames, so random access re-decodes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height // 4, width // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "8"}
        for i in range(num_frames):
            image = np.roll(base, 2 * i, axis=1)
            image[..., 0] = (image[..., 0].astype(np.int32) + 5 * i).clip(0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_path(root: Path, driver: str, session: int, view_prefix: str) -> Path:
    return root / "A2" / f"user_id_{driver}" / f"{view_prefix}_user_id_{driver}_NoAudio_{session}.MP4"


def make_model_folder(
    folder: Path, seed: int, num_frames: int = 4, img_size: int = 32, sampling_rate: int = 2
) -> Path:
    import torch

    torch.manual_seed(seed)
    over = {"depth": 1, "embed_dim": 48, "num_heads": 2}
    model = create_backbone("videomae_vit_tiny", num_frames=num_frames, img_size=img_size, **over)
    spec = get_spec(
        "videomae_vit_tiny", num_frames=num_frames, img_size=img_size, sampling_rate=sampling_rate, **over
    )
    save_model_folder(model, spec, folder)
    return folder
