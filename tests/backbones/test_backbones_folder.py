"""Fine-tuned model folder: model.safetensors + model.json round trip (interfaces.md)."""

from __future__ import annotations

import json

import pytest
import torch

from ndar.backbones import (
    create_backbone,
    get_spec,
    load_checkpoint,
    load_model_folder,
    read_model_meta,
    save_model_folder,
)

OVERRIDES = {"depth": 2, "embed_dim": 24, "init_values": 0.1, "use_learnable_pos_emb": True}


def build():
    torch.manual_seed(3)
    model = create_backbone("videomae_vit_tiny", num_classes=16, num_frames=4, img_size=32, **OVERRIDES)
    spec = get_spec(
        "videomae_vit_tiny", num_frames=4, img_size=32, sampling_rate=3, normalize=False, **OVERRIDES
    )
    return model.eval(), spec


def test_round_trip_gives_identical_outputs_and_spec(tmp_path):
    model, spec = build()
    with torch.no_grad():
        model.head.weight.normal_()  # make the head non-trivial
    save_model_folder(model, spec, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["backbone"] == "videomae_vit_tiny" and meta["num_classes"] == 16
    assert (meta["num_frames"], meta["img_size"], meta["sampling_rate"]) == (4, 32, 3)
    assert meta["overrides"] == OVERRIDES and meta["normalize"] is False
    assert meta["mean"] == [0.485, 0.456, 0.406]

    loaded, loaded_spec = load_model_folder(tmp_path / "m")
    assert not loaded.training
    assert loaded_spec == spec
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded.forward_features(x), model.forward_features(x), rtol=0, atol=0)


def test_folder_is_also_a_checkpoint_for_load_checkpoint(tmp_path):
    model, spec = build()
    save_model_folder(model, spec, tmp_path)
    fresh = create_backbone(
        "videomae_vit_tiny", num_classes=16, num_frames=4, img_size=32, **OVERRIDES
    ).eval()
    report = load_checkpoint(fresh, tmp_path)
    assert report.path.endswith("model.safetensors") and not report.missing and not report.unexpected
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_explicit_name_and_overrides_win(tmp_path):
    model, spec = build()
    save_model_folder(model, spec, tmp_path, backbone_name="videomae_vit_tiny", overrides=OVERRIDES)
    assert read_model_meta(tmp_path)["overrides"] == OVERRIDES


def test_incomplete_or_corrupt_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model_folder(tmp_path)
    model, spec = build()
    save_model_folder(model, spec, tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match="model.safetensors.*truncated or corrupt"):
        load_model_folder(tmp_path)


def test_spec_that_disagrees_with_model_is_refused(tmp_path):
    model, _ = build()
    with pytest.raises(ValueError, match="spec says 16 frames"):
        save_model_folder(model, get_spec("videomae_vit_tiny"), tmp_path)
    assert not (tmp_path / "model.json").exists()
