"""Fault injection, fine-tuning: crafted checkpoints, kill -9 then re-run, resumes with other settings.

Tiny synthetic data and a 2-block model, so each case runs in seconds on a CPU (gloo, one process).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ndar.config import load_config
from ndar.finetune.checkpoint import CheckpointError
from ndar.finetune.config import FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "finetune" / "tiny" / "k400_vith.yaml"


def overrides(root: Path, output: Path, *extra: str) -> list[str]:
    """The tiny config shrunk to seconds, with every random stream in use: mixup/cutmix (numpy),
    RandAugment (python), random erasing and drop path (torch), one DataLoader worker."""
    return [
        "train.torch_threads=1", f"data.root={root}", f"output={output}",
        "model.overrides={depth: 2, embed_dim: 32, num_heads: 2}", "model.num_frames=4", "model.img_size=32",
        "model.sampling_rate=1", "data.k=3", "data.num_workers=1", "train.batch_size=4", "train.log_every=1",
        "eval.num_segments=1", "eval.num_crops=1", "train.epochs=3", "train.max_steps_per_epoch=3", "train.save_every=1",
        "optim.warmup_epochs=1", "aug.mixup=0.8", "aug.cutmix=1.0", "aug.rand_augment=rand-m7-n2",
        "aug.reprob=0.25", *extra,
    ]  # fmt: skip


def finetune(root: Path, output: Path, *extra: str) -> Path:
    from ndar.finetune.engine import run

    return run(load_config(FinetuneConfig, TINY, overrides(root, output, *extra)))


def weights(output: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(output / "model.safetensors"))


def comparable_metrics(output: Path) -> pd.DataFrame:
    """metrics.csv without the timing columns (they differ between any two runs)."""
    from ndar.finetune.engine import EPOCH_TIMINGS

    return pd.read_csv(output / "metrics.csv").drop(columns=list(EPOCH_TIMINGS))


class WriteMarker:
    """A pickle payload: unpickling it calls Path.touch on the marker (code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def uninterrupted(synth_root, tmp_path_factory) -> Path:
    return finetune(synth_root, tmp_path_factory.mktemp("ft_ref") / "run")


@pytest.mark.slow
def test_crafted_deepspeed_checkpoint_is_never_unpickled(synth_root, tmp_path):
    """A DeepSpeed-style `epoch001/mp_rank_00_model_states.pt` that runs code when unpickled, with
    `latest` pointing at it: the resume refuses the folder by name and the payload never runs."""
    output, marker = tmp_path / "run", tmp_path / "pwned"
    tag = output / "checkpoints" / "epoch001"
    tag.mkdir(parents=True)
    (tag / "mp_rank_00_model_states.pt").write_bytes(pickle.dumps({"module": WriteMarker(marker)}))
    (output / "checkpoints" / "latest").write_text("epoch001")
    with pytest.raises(CheckpointError, match=r"epoch001: not a complete ndar checkpoint.*never loaded"):
        finetune(synth_root, output)
    assert not marker.exists()


@pytest.mark.slow
def test_crafted_checkpoint_with_ndar_names_runs_no_code(synth_root, uninterrupted, tmp_path):
    """The attacker also plants pickles under ndar's own file names: they are parsed as safetensors
    and JSON only, so the load fails with an error and the payload never runs."""
    output, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(uninterrupted, output)
    (output / "metrics.json").unlink()
    tag = output / "checkpoints" / "epoch003"
    for name in ("model.safetensors", "optimizer_rank0.safetensors"):
        (tag / name).write_bytes(pickle.dumps(WriteMarker(marker)))
    with pytest.raises(Exception, match="deserializing header"):
        finetune(synth_root, output)
    assert not marker.exists()


KILLER = """
import os, signal, sys
from ndar.finetune import engine

add = engine.RunLog.add
def add_then_die(self, step, row):
    add(self, step, row)
    # killed in the middle of epoch 3, after its checkpoint of epoch 2 and two logged steps of epoch 3
    if row.get("split") == "train" and row.get("epoch") == 3 and step == 8:
        os.kill(os.getpid(), signal.SIGKILL)
engine.RunLog.add = add_then_die

from ndar.config import load_config
from ndar.finetune.config import FinetuneConfig
engine.run(load_config(FinetuneConfig, sys.argv[1], sys.argv[2:]))
"""


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_result(synth_root, uninterrupted, tmp_path):
    """kill -9 during epoch 3, then the same command: the same weights bit for bit, the same
    metrics.csv, and no row of the killed attempt left twice."""
    output = tmp_path / "run"
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # set by earlier runs here
    env = {k: v for k, v in os.environ.items() if k not in launcher} | {"PYTHONPATH": str(ROOT / "src")}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(TINY), *overrides(synth_root, output)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (output / "checkpoints" / "latest").read_text().strip() == "epoch002"
    assert not (output / "metrics.json").exists()
    partial = pd.read_csv(output / "metrics.csv")
    assert ((partial["epoch"] == 3) & (partial["split"] == "train")).sum() == 2  # the killed attempt's rows

    finetune(synth_root, output)
    resumed, reference = comparable_metrics(output), comparable_metrics(uninterrupted)
    assert not resumed.duplicated(subset=["step", "split", "epoch"]).any()
    pd.testing.assert_frame_equal(resumed, reference)
    got, want = weights(output), weights(uninterrupted)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want), (
        "resumed weights differ from the uninterrupted run"
    )


@pytest.mark.slow
def test_zero1_bf16_resume_gives_the_uninterrupted_result(synth_root, tmp_path):
    """The real configs' step (ZeRO-1, bf16): a run resumed from its epoch-1 checkpoint ends with the
    same fp32 master weights as the uninterrupted run (optimizer partition and RNG restored)."""
    extra = ("train.precision=bf16", "train.zero_stage=1", "optim.clip_grad=0", "train.epochs=2")
    reference = finetune(synth_root, tmp_path / "ref", *extra)
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    for name in ("metrics.json", "model.safetensors"):
        (resumed / name).unlink()
    shutil.rmtree(resumed / "checkpoints" / "epoch002")
    (resumed / "checkpoints" / "latest").write_text("epoch001\n")
    finetune(synth_root, resumed, *extra)
    got, want = weights(resumed), weights(reference)
    assert all(torch.equal(got[k], want[k]) for k in want), "resumed ZeRO-1 weights differ"
    pd.testing.assert_frame_equal(comparable_metrics(resumed), comparable_metrics(reference))


@pytest.mark.parametrize(
    "change, listed",
    [
        ("data.view=dashboard", "data.view: rear -> dashboard"),
        ("optim.lr=0.01", "optim.lr: 0.005 -> 0.01"),
        ("train.epochs=5", "train.epochs: 3 -> 5"),
    ],
)
def test_resume_with_other_settings_is_refused(synth_root, uninterrupted, tmp_path, change, listed):
    """Killed (no finished marker), then re-run with another view, lr or epochs: refused, listing
    `key: old -> new`, and config.yaml still describes the checkpoint."""
    output = tmp_path / "run"
    shutil.copytree(uninterrupted, output)
    (output / "metrics.json").unlink()
    before = (output / "config.yaml").read_text()
    with pytest.raises(ValueError, match=rf"trained with other settings \({listed}\).*overwrite=true"):
        finetune(synth_root, output, change)
    assert (output / "config.yaml").read_text() == before


@pytest.mark.parametrize("damage", ["faststart_truncated", "no_video_stream"])
def test_a_broken_clip_video_is_named(synth_root, tmp_path, damage):
    """Fine-tuning decodes clips with decord, whose errors name no file: a broken video (which
    check-data reports and prepare leaves out) stops the run with an error naming it."""
    from ndar.finetune.data import FrameReader
    from ndar.video import VideoError
    from ndar.video.geometry import plan_geometry

    source = next(synth_root.rglob("*.MP4")).read_bytes()
    path = tmp_path / f"{damage}.MP4"
    path.write_bytes(source[: len(source) // 2] if damage == "faststart_truncated" else b"\x00" * 4096)
    with pytest.raises(VideoError, match=rf"^{path}: "):
        reader = FrameReader(plan_geometry(32), subtract_mean=True)
        reader.read(str(path), np.arange(4))


TWO_RUNS = """
import shutil, sys
from pathlib import Path
import torch
from ndar.config import load_config
from ndar.finetune.config import FinetuneConfig
from ndar.finetune.engine import run

config, reference, resumed, overrides = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
run(load_config(FinetuneConfig, config, [*overrides, f"output={reference}"]))
if torch.distributed.get_rank() == 0:  # as if killed during epoch 2: its tag and the markers gone
    shutil.copytree(reference, resumed)
    for name in ("metrics.json", "model.safetensors"):
        (resumed / name).unlink()
    shutil.rmtree(resumed / "checkpoints" / "epoch002")
    (resumed / "checkpoints" / "latest").write_text("epoch001")
torch.distributed.barrier()
run(load_config(FinetuneConfig, config, [*overrides, f"output={resumed}"]))
"""


@pytest.mark.slow
def test_two_process_zero1_resume_gives_the_uninterrupted_result(synth_root, tmp_path):
    """torchrun, 2 processes (gloo), ZeRO-1 bf16: each rank saves and restores its own optimizer
    partition and RNG streams; the resumed run ends with the uninterrupted run's weights. Both runs
    share one launch (the second adopts the process group), which halves the start-up cost."""
    script = tmp_path / "two_runs.py"
    script.write_text(TWO_RUNS)
    reference, resumed = tmp_path / "ref", tmp_path / "resumed"
    extra = ("train.precision=bf16", "train.zero_stage=1", "optim.clip_grad=0", "train.epochs=2")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
    ]
    cmd += [str(TINY), str(reference), str(resumed), *overrides(synth_root, tmp_path / "unused", *extra)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in (reference / "checkpoints" / "epoch002").glob("optimizer_rank*")} == {
        "optimizer_rank0.safetensors", "optimizer_rank1.safetensors"
    }  # fmt: skip
    assert "resumed from" in (resumed / "finetune.log").read_text()
    got, want = weights(resumed), weights(reference)
    assert all(torch.equal(got[k], want[k]) for k in want), "resumed 2-process ZeRO-1 weights differ"
