"""Fault injection, extraction: broken videos with the demo models, a kill between npz and json,
a model folder of another architecture, views of another frame rate."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from ndar.backbones import create_backbone, get_spec, save_model_folder
from ndar.extract import ExtractConfig, ModelEntry, run
from ndar.extract import outputs as outputs_module
from ndar.extract.cli import main as cli_main
from ndar.extract.models import ModelFolderError
from ndar.extract.outputs import read_features

_spec = importlib.util.spec_from_file_location(
    "faults_extract_fixtures", Path(__file__).resolve().parents[1] / "extract" / "extract_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fixtures  # dataclasses look their module up there
_spec.loader.exec_module(fixtures)
make_video, video_path = fixtures.make_video, fixtures.video_path


def demo_model_folder(folder: Path, seed: int) -> Path:
    """A tiny model that subtracts each video's mean frame, like the demo (synthetic) models."""
    import torch

    torch.manual_seed(seed)
    arch = {"depth": 1, "embed_dim": 48, "num_heads": 2}
    model = create_backbone("videomae_vit_tiny", num_frames=4, img_size=32, **arch)
    spec = get_spec(
        "videomae_vit_tiny", num_frames=4, img_size=32, sampling_rate=2, subtract_video_mean=True, **arch
    )
    save_model_folder(model, spec, folder)
    return folder


def config(data: Path, folder: Path, out: Path, **kw) -> ExtractConfig:
    kw = {"views": ["rear"], **kw}
    return ExtractConfig(
        data_root=data, splits=["A2"], models=[ModelEntry("demo", str(folder), stride=4)], out=out,
        batch_size=3, device="cpu", **kw,
    )  # fmt: skip


def write_yaml(path: Path, cfg: ExtractConfig) -> Path:
    from ndar.config import save_config

    return save_config(cfg, path)


@pytest.fixture(scope="module")
def broken_dataset(tmp_path_factory) -> Path:
    """One good rear video, one faststart MP4 cut at 60 % of its bytes, one with garbage mid-file."""
    root = tmp_path_factory.mktemp("broken")
    make_video(video_path(root, "2001", 1, "Rear_view"), 40)
    good = make_video(root / "faststart.mp4", 60, faststart=True).read_bytes()
    truncated = video_path(root, "2002", 1, "Rear_view")
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(good[: len(good) * 6 // 10])
    corrupt = bytearray(make_video(root / "plain.mp4", 60).read_bytes())
    middle = len(corrupt) // 2
    corrupt[middle : middle + 2048] = (
        np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    )
    video_path(root, "2003", 1, "Rear_view").parent.mkdir(parents=True)
    video_path(root, "2003", 1, "Rear_view").write_bytes(bytes(corrupt))
    (root / "faststart.mp4").unlink()
    (root / "plain.mp4").unlink()
    return root


@pytest.mark.slow
def test_broken_videos_with_mean_subtracting_models_are_reported_and_the_rest_goes_on(
    broken_dataset, tmp_path
):
    """The mean frame is computed before decoding starts: a truncated or corrupt video fails there
    (decord), is a line in failures.json naming the file, and the run goes on and exits 1 (twice)."""
    folder = demo_model_folder(tmp_path / "demo_rear", seed=0)
    out = tmp_path / "out"
    cfg_path = write_yaml(tmp_path / "cfg.yaml", config(broken_dataset, tmp_path / "demo_{view}", out))
    for attempt in range(2):  # a re-run neither crashes nor redoes the good video
        code = cli_main(argparse.Namespace(config=str(cfg_path), overwrite=False, overrides=[]))
        assert code == 1
        failures = json.loads((out / "failures.json").read_text())
        failed = {f["session"]: f["reason"] for f in failures}
        assert "2002_1" in failed and "Rear_view_user_id_2002" in failed["2002_1"]
        assert "2001_1" not in failed
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["done" if attempt == 0 else "skipped"] >= 1
        assert metrics["failed"] == len(failures)
    assert folder.is_dir()
    produced = sorted(p.stem for p in out.glob("demo/rear/*.npz"))
    assert "Rear_view_user_id_2001_NoAudio_1" in produced
    assert "Rear_view_user_id_2002_NoAudio_1" not in produced
    # the corrupt one is either decoded through (ffmpeg conceals the damage) or reported, never both
    corrupt_stem = "Rear_view_user_id_2003_NoAudio_1"
    assert ("2003_1" in failed) != (corrupt_stem in produced)


@pytest.mark.slow
def test_kill_between_npz_and_json_after_a_checkpoint_change_is_redone(tmp_path, monkeypatch):
    """Features of checkpoint A; a run with checkpoint B dies after writing its npz, before its
    json; the re-run with A must redo the video, not skip it as complete."""
    data = tmp_path / "data"
    make_video(video_path(data, "2001", 1, "Rear_view"), 40)
    a = demo_model_folder(tmp_path / "a", seed=1)
    b = demo_model_folder(tmp_path / "b", seed=2)
    out = tmp_path / "out"
    assert run(config(data, a, out))["done"] == 1
    npz = next(out.glob("demo/rear/*.npz"))
    features_a = read_features(npz)["features"]

    class Killed(BaseException):
        pass

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(outputs_module, "write_json", die)
        with pytest.raises(Killed):
            run(config(data, b, out))
    assert not np.array_equal(read_features(npz)["features"], features_a), "B's npz is on disk"

    summary = run(config(data, a, out))
    assert summary["done"] == 1 and summary["skipped"] == 0
    np.testing.assert_array_equal(read_features(npz)["features"], features_a)


@pytest.mark.slow
def test_a_pair_whose_npz_was_replaced_is_redone(tmp_path):
    """The json names its npz's hash: an npz swapped under a complete json is not trusted."""
    data = tmp_path / "data"
    make_video(video_path(data, "2001", 1, "Rear_view"), 40)
    folder = demo_model_folder(tmp_path / "a", seed=1)
    out = tmp_path / "out"
    run(config(data, folder, out))
    npz = next(out.glob("demo/rear/*.npz"))
    arrays = read_features(npz)
    np.savez(npz, **{**arrays, "features": np.zeros_like(arrays["features"])})
    summary = run(config(data, folder, out))
    assert summary["done"] == 1 and summary["skipped"] == 0
    np.testing.assert_array_equal(read_features(npz)["features"], arrays["features"])


@pytest.mark.slow
def test_a_pair_made_with_the_other_resize_rule_is_redone(tmp_path):
    """resize_on_decode changes the pixels the model sees: a resume must not keep the other rule's files."""
    data = tmp_path / "data"
    make_video(video_path(data, "2001", 1, "Rear_view"), 40)
    folder = demo_model_folder(tmp_path / "a", seed=1)
    out = tmp_path / "out"
    run(config(data, folder, out, resize_on_decode=True))
    summary = run(config(data, folder, out, resize_on_decode=False))
    assert summary["done"] == 1 and summary["skipped"] == 0
    assert json.loads(next(out.glob("demo/rear/*.json")).read_text())["resize"] == "torch-bilinear-antialias"


def test_model_folder_of_another_architecture_names_the_folder(tmp_path):
    """model.json says one architecture, model.safetensors holds another: one line naming the
    folder and the mismatch, not torch's multi-line size-mismatch report."""
    data = tmp_path / "data"
    make_video(video_path(data, "2001", 1, "Rear_view"), 40)
    folder = demo_model_folder(tmp_path / "wrong", seed=0)
    meta = json.loads((folder / "model.json").read_text())
    meta["overrides"]["embed_dim"] = 64
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError) as caught:
        run(config(data, folder, tmp_path / "out"))
    message = str(caught.value)
    assert message.startswith(str(folder)) and "size mismatch" in message and "\n" not in message


@pytest.mark.slow
def test_views_of_another_frame_rate_are_warned_about_not_another_size(tmp_path, caplog):
    """A session whose dashboard video is 25 fps and 80x48 while its rear one is 30 fps 64x48:
    extract says so before extracting (the heads would refuse the session later). Another session's
    views differ in size alone, as the official cameras of every 2024 session do: no warning."""
    data = tmp_path / "data"
    make_video(video_path(data, "2001", 1, "Rear_view"), 40)
    make_video(video_path(data, "2001", 1, "Dashboard"), 40, fps=25, width=80)
    make_video(video_path(data, "2002", 1, "Rear_view"), 40)
    make_video(video_path(data, "2002", 1, "Dashboard"), 40, width=80)
    demo_model_folder(tmp_path / "demo_rear", seed=0)
    demo_model_folder(tmp_path / "demo_dashboard", seed=1)
    with caplog.at_level(logging.WARNING, logger="ndar.extract.runner"):
        run(config(data, tmp_path / "demo_{view}", tmp_path / "out", views=["rear", "dashboard"]))
    warned = [r.getMessage() for r in caplog.records if "views differ" in r.getMessage()]
    assert len(warned) == 1 and "2001_1" in warned[0]
    assert "25 fps 80x48" in warned[0] and "30 fps 64x48" in warned[0]


@pytest.mark.slow
def test_disk_full_is_a_failure_per_video_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """ENOSPC while writing features: each video records it, nothing half-written is left, and
    a later run with space extracts them."""
    import errno

    data = tmp_path / "data"
    for driver in ("2001", "2002"):
        make_video(video_path(data, driver, 1, "Rear_view"), 40)
    folder = demo_model_folder(tmp_path / "a", seed=1)
    out = tmp_path / "out"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(outputs_module.np, "savez", full)
        summary = run(config(data, folder, out))
    assert summary["failed"] == 2 and summary["done"] == 0
    failures = json.loads((out / "failures.json").read_text())
    assert all("No space left on device" in f["reason"] for f in failures)
    assert not [p for p in out.glob("demo/**/*") if p.is_file()], "no partial or temporary file"
    assert run(config(data, folder, out))["done"] == 2
