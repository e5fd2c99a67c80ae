"""Extraction honours the crop box a model folder carries (`model.json` `crop_box`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ndar.backbones import create_backbone, get_spec, load_model_folder, save_model_folder
from ndar.extract import ExtractConfig, ModelEntry, run
from ndar.extract.models import FeaturesAndLogits, embed, preprocess_clips
from ndar.extract.outputs import read_features
from ndar.video import iter_frames, window_starts
from ndar.video.geometry import plan_geometry

BOX = (0.25, 0.1, 0.75, 0.9)


@pytest.fixture(scope="module")
def crop_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crop_models")
    over = {"depth": 1, "embed_dim": 48, "num_heads": 2}
    for resize in ("squash", "pad"):
        for view in ("rear", "dashboard"):
            torch.manual_seed(3)
            model = create_backbone("videomae_vit_tiny", num_frames=4, img_size=32, **over)
            spec = get_spec(
                "videomae_vit_tiny", num_frames=4, img_size=32, sampling_rate=2, crop_box=BOX,
                resize=resize, **over,
            )  # fmt: skip
            save_model_folder(model, spec, root / f"{resize}_{view}")
    return root


def reference(path: Path, folder: Path, stride: int) -> np.ndarray:
    """Every frame decoded at the planned size, the box sliced out, windows cut by hand."""
    model, spec = load_model_folder(folder)
    frame = next(iter_frames(path, [None])).image  # (H, W, 3) native
    plan = plan_geometry(spec.img_size, spec.crop_box, spec.resize, frame.shape[:2])
    frames = np.stack([plan.crop(f.image) for f in iter_frames(path, [plan.scaled])])  # (F, S, S, 3)
    span = spec.num_frames * spec.sampling_rate
    clips = np.stack(
        [frames[s : s + span : spec.sampling_rate] for s in window_starts(len(frames), span, stride)]
    )
    feats, _ = embed(
        FeaturesAndLogits(model).eval(), preprocess_clips(clips, spec, torch.device("cpu")), None
    )
    return feats.numpy()


@pytest.mark.parametrize("resize", ["squash", "pad"])
def test_extraction_crops_the_model_box(
    dataset: Path, crop_models: Path, tmp_path: Path, resize: str
) -> None:
    cfg = ExtractConfig(
        data_root=dataset, splits=["A2"], views=["rear"], out=tmp_path / "out", batch_size=3, device="cpu",
        models=[ModelEntry("crop", str(crop_models / f"{resize}_{{view}}"), stride=4)],
    )  # fmt: skip
    summary = run(cfg)
    assert summary["done"] == 2 and summary["failed"] == 0
    for npz in sorted((tmp_path / "out" / "crop" / "rear").glob("*.npz")):
        meta = json.loads(npz.with_suffix(".json").read_text())
        video = Path(meta["path"])
        frame_hw = (meta["height"], meta["width"])
        assert meta["crop_box"] == list(BOX) and meta["resize_rule"] == resize
        # the box is half the width and 0.8 of the height: squashed, or its longer side made 32 px
        expected = [40, 64] if resize == "squash" else list(plan_geometry(32, BOX, "pad", frame_hw).scaled)
        assert meta["decoded_size"] == expected
        got = read_features(npz)["features"].astype(np.float32)
        reference_feats = reference(video, crop_models / f"{resize}_rear", 4)
        np.testing.assert_allclose(got, reference_feats, atol=2e-2, rtol=2e-2)
