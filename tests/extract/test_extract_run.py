"""End-to-end extraction on real H.264 videos with tiny fine-tuned model folders."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import decord
import numpy as np
import pytest
import torch
from extract_fixtures import make_video, video_path

from ndar.backbones import load_model_folder
from ndar.extract import ExtractConfig, ModelEntry, run
from ndar.extract import outputs as outputs_module
from ndar.extract.cli import main as cli_main
from ndar.extract.models import FeaturesAndLogits, embed, preprocess_clips
from ndar.extract.outputs import read_features
from ndar.video import window_starts

STRIDES = {"tiny_a": 4, "tiny_b": 8}


def config(data: Path, models: Path, out: Path, **kw) -> ExtractConfig:
    entries = [ModelEntry(t, str(models / f"{t}_{{view}}"), stride=s) for t, s in STRIDES.items()]
    return ExtractConfig(
        data_root=data, splits=["A2"], models=entries, out=out, batch_size=3, device="cpu", **kw
    )


def outputs_of(out: Path) -> dict[str, dict[str, np.ndarray]]:
    return {str(p.relative_to(out)): read_features(p) for p in sorted(out.glob("*/*/*.npz"))}


@pytest.fixture(scope="module")
def full_decode_run(dataset: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One single-process run decoding at full size (torch resize), shared by several tests."""
    out = tmp_path_factory.mktemp("out_full")
    summary = run(config(dataset, models_dir, out, resize_on_decode=False))
    assert summary["done"] == 4 and summary["failed"] == 0
    return out


def reference_random_access(path: Path, folder: Path, stride: int) -> dict[str, np.ndarray]:
    """The seed's way: decord random access (get_batch) per window, one window at a time."""
    model, spec = load_model_folder(folder)
    net = FeaturesAndLogits(model).eval()
    reader = decord.VideoReader(str(path))
    stamps = reader.get_frame_timestamp(list(range(len(reader))))  # (F, 2) start/end seconds
    span = spec.num_frames * spec.sampling_rate
    rows: dict[str, list] = {"features": [], "probs": [], "t_start": [], "t_end": []}
    for start in window_starts(len(reader), span, stride):
        idx = [start + j * spec.sampling_rate for j in range(spec.num_frames)]
        clip = reader.get_batch(idx).asnumpy()[None]  # (1, T, H, W, 3)
        feats, probs = embed(net, preprocess_clips(clip, spec, torch.device("cpu")), None)
        rows["features"].append(feats[0].numpy())
        rows["probs"].append(probs[0].numpy())
        rows["t_start"].append(stamps[idx[0], 0])
        rows["t_end"].append(stamps[idx[-1], 0])
    return {k: np.array(v) for k, v in rows.items()}


@pytest.mark.slow
@pytest.mark.parametrize("track", ["tiny_a", "tiny_b"])
def test_streaming_equals_per_window_random_access(
    full_decode_run: Path, dataset: Path, models_dir: Path, track
):
    stem = "Rear_view_user_id_1002_NoAudio_2"  # 52 frames
    got = read_features(full_decode_run / track / "rear" / f"{stem}.npz")
    ref = reference_random_access(
        video_path(dataset, "1002", 2, "Rear_view"), models_dir / f"{track}_rear", STRIDES[track]
    )
    # windows of 8 frames: every 4 frames -> 12 windows (start 44 ends at 51), every 8 -> 6
    assert len(got["t_start"]) == {"tiny_a": 12, "tiny_b": 6}[track] == len(ref["t_start"])
    assert got["features"].dtype == np.float16 and got["probs"].dtype == np.float32
    assert got["t_start"].dtype == np.float64
    np.testing.assert_allclose(got["features"].astype(np.float32), ref["features"], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(got["probs"], ref["probs"], atol=1e-5)
    np.testing.assert_allclose(got["probs"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got["t_start"], ref["t_start"], atol=1e-4)
    np.testing.assert_allclose(got["t_end"], ref["t_end"], atol=1e-4)
    # by hand: window k starts at frame 4k (8k), its last used frame is start + 6, at 30 fps
    k = np.arange(len(got["t_start"]))
    np.testing.assert_allclose(got["t_start"], k * STRIDES[track] / 30, atol=1e-6)
    np.testing.assert_allclose(got["t_end"], (k * STRIDES[track] + 6) / 30, atol=1e-6)


@pytest.mark.slow
def test_metadata_config_and_metrics_are_written(full_decode_run: Path) -> None:
    meta = json.loads(
        (full_decode_run / "tiny_a" / "dashboard" / "Dashboard_user_id_1001_NoAudio_1.json").read_text()
    )
    assert meta["backbone"] == "videomae_vit_tiny" and len(meta["checkpoint_sha256"]) == 64
    assert meta["window"]["stride"] == 4 and meta["window"]["window_len"] == 8
    assert meta["fps"] == pytest.approx(30.0) and meta["num_frames"] == 40 and meta["num_windows"] == 9
    assert meta["ndar_version"]
    assert (full_decode_run / "config.yaml").is_file()
    metrics = json.loads((full_decode_run / "metrics.json").read_text())
    # 2 tracks x (9 + 12 windows at stride 4, 5 + 6 at stride 8) x 2 views
    assert metrics["windows"] == 2 * (9 + 12 + 5 + 6)
    assert json.loads((full_decode_run / "failures.json").read_text()) == []


@pytest.mark.slow
def test_resume_skips_finished_files_and_overwrite_redoes_them(
    dataset: Path, models_dir: Path, tmp_path: Path
):
    cfg = config(dataset, models_dir, tmp_path, views=["rear"])
    assert run(cfg)["done"] == 2
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/*/*.npz")}
    assert len(stamps) == 4
    again = run(cfg)
    assert again["skipped"] == 2 and again["done"] == 0 and again["windows"] == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # another window rule for one track: only that track's files are recomputed
    changed = config(dataset, models_dir, tmp_path, views=["rear"])
    changed.models[1].stride = 16
    assert run(changed)["done"] == 2
    assert all((p.stat().st_mtime_ns == t) == ("tiny_a" in str(p)) for p, t in stamps.items())
    cfg.overwrite = True
    assert run(cfg)["done"] == 2
    assert all(p.stat().st_mtime_ns != t for p, t in stamps.items())


@pytest.mark.slow
def test_a_crash_while_writing_leaves_no_partial_file(
    dataset: Path, models_dir: Path, tmp_path: Path, monkeypatch
):
    def savez_then_crash(file, **arrays):
        file.write(b"half written")
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(outputs_module.np, "savez", savez_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(config(dataset, models_dir, tmp_path))
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("config.yaml", "run.log")] == []


def _write_yaml(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def _yaml_config(dataset: Path, models: Path, out: Path) -> dict:
    return {
        "data_root": str(dataset),
        "splits": ["A2"],
        "models": [
            {"track": t, "folder": str(models / f"{t}_{{view}}"), "stride": s} for t, s in STRIDES.items()
        ],
        "out": str(out),
        "batch_size": 3,
        "device": "cpu",
        "resize_on_decode": False,
    }


def final_jsons(out: Path) -> list[Path]:
    """The jsons under their final names (a kill may leave a temporary `.<name>.json.<random>.json`)."""
    return [p for p in out.glob("*/*/*.json") if not p.name.startswith(".")]


@pytest.mark.slow
def test_killed_run_leaves_only_complete_files_and_resumes(tmp_path: Path, models_dir: Path) -> None:
    data = tmp_path / "data"
    for k in range(4):
        make_video(video_path(data, str(3000 + k), 1, "Rear_view"), 60, seed=k)
    out = tmp_path / "out"
    cfg_path = _write_yaml(
        tmp_path / "cfg.yaml", {**_yaml_config(data, models_dir, out), "batch_size": 1, "views": ["rear"]}
    )
    cmd = [sys.executable, "-m", "ndar", "extract", "--config", str(cfg_path), "stride=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not final_jsons(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in final_jsons(out)}
    assert 0 < len(finished) < 8, "the kill should land in the middle of the run"
    for npz in out.glob("*/*/*.npz"):  # every file under a final name is whole
        arrays = read_features(npz)
        assert len(arrays["features"]) == len(arrays["t_end"]) > 0
    summary = run(
        ExtractConfig(
            **{
                **config(data, models_dir, out).__dict__,
                "stride": 1,
                "resize_on_decode": False,
                "views": ["rear"],
            }
        )
    )
    assert summary["failed"] == 0 and summary["done"] + summary["skipped"] == 4
    assert len(list(out.glob("*/*/*.json"))) == len(list(out.glob("*/*/*.npz"))) == 8
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "finished files must not be redone"
    assert not [p for p in out.glob("*/*/.*") if p.is_file()], "temporary files must be cleaned up"


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(
    full_decode_run: Path, dataset: Path, models_dir: Path, tmp_path
):
    out = tmp_path / "out2"
    cfg_path = _write_yaml(
        tmp_path / "cfg.yaml", {**_yaml_config(dataset, models_dir, out), "views": ["rear"]}
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "ndar", "extract", "--config", str(cfg_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["done"] == 2  # one video per rank
    one, two = outputs_of(full_decode_run), outputs_of(out)
    one = {k: v for k, v in one.items() if "/rear/" in k}
    assert sorted(one) == sorted(two) and len(one) == 4
    for name in one:
        for key in ("t_start", "t_end"):
            np.testing.assert_array_equal(one[name][key], two[name][key])
        np.testing.assert_allclose(one[name]["features"], two[name]["features"], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(one[name]["probs"], two[name]["probs"], atol=1e-6)


@pytest.fixture(scope="module")
def bad_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for driver in ("2002", "2003"):
        video_path(root, driver, 1, "Rear_view").parent.mkdir(parents=True)
    make_video(video_path(root, "2001", 1, "Rear_view"), 40)
    make_video(video_path(root, "2001", 1, "Dashboard"), 40)
    video_path(root, "2002", 1, "Rear_view").write_bytes(b"\x00\x01garbage" * 500)  # corrupt
    make_video(video_path(root, "2002", 1, "Dashboard"), 40)
    good = make_video(root / "tmp.mp4", 60, faststart=True).read_bytes()
    video_path(root, "2003", 1, "Rear_view").write_bytes(good[: len(good) * 6 // 10])  # truncated
    video_path(root, "2003", 1, "Dashboard").write_bytes(b"")  # zero-frame (empty) file
    make_video(video_path(root, "2004", 1, "Dashboard"), 40)  # no rear view at all
    make_video(video_path(root, "2005", 1, "Rear_view"), 40, fps=25)  # unexpected fps
    make_video(video_path(root, "2005", 1, "Dashboard"), 6)  # shorter than one window
    (root / "tmp.mp4").unlink()
    return root


@pytest.mark.slow
def test_bad_inputs_are_reported_and_the_rest_goes_on(
    bad_dataset: Path, models_dir: Path, tmp_path: Path
) -> None:
    cfg_path = _write_yaml(
        tmp_path / "cfg.yaml",
        {**_yaml_config(bad_dataset, models_dir, tmp_path / "out"), "expected_fps": 30.0},
    )
    code = cli_main(argparse.Namespace(config=str(cfg_path), overwrite=False, overrides=[]))
    assert code == 1
    out = tmp_path / "out"
    failures = json.loads((out / "failures.json").read_text())
    reasons = {(f["session"], f["view"]): f["reason"] for f in failures}
    assert set(reasons) == {("2002_1", "rear"), ("2003_1", "rear"), ("2003_1", "dashboard"), ("2004_1", "rear"),
                            ("2005_1", "rear"), ("2005_1", "dashboard")}  # fmt: skip
    assert "missing view" in reasons[("2004_1", "rear")]
    assert "truncated" in reasons[("2003_1", "rear")] or "decoding failed" in reasons[("2003_1", "rear")]
    assert "unexpected frame rate 25" in reasons[("2005_1", "rear")]
    assert "shorter than one window" in reasons[("2005_1", "dashboard")]
    assert "Rear_view_user_id_2002" in reasons[("2002_1", "rear")]
    produced = sorted(p.stem for p in out.glob("tiny_a/*/*.npz"))
    assert produced == sorted(["Rear_view_user_id_2001_NoAudio_1", "Dashboard_user_id_2001_NoAudio_1",
                               "Dashboard_user_id_2002_NoAudio_1", "Dashboard_user_id_2004_NoAudio_1"])  # fmt: skip
    assert sorted(p.stem for p in out.glob("*/*/*.json")) == sorted(p.stem for p in out.glob("*/*/*.npz"))
    shutil.rmtree(out)
