"""Two processes on CPU (gloo) under torchrun: DistributedSampler shards, validation gathered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ndar.utils.io import read_json

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "finetune" / "tiny" / "hybrid_vitl.yaml"


@pytest.mark.slow
def test_two_process_gloo_run(shrink, synth_root, driver_clips, tmp_path):
    out = tmp_path / "run2"
    overrides = shrink(synth_root, out) + [
        f"data.clips={driver_clips}",
        "train.epochs=1",
        "train.max_steps_per_epoch=3",
    ]
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "torch_extensions"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "ndar", "finetune", "--config", str(TINY), *overrides]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(out / "metrics.json")
    assert summary["finished"] and summary["total_batch"] == 2 * 4
    assert summary["num_updates"] == 3
    assert summary["val"]["num_clips"] == 34  # both ranks' shares gathered on rank 0
    assert read_json(out / "deepspeed_config.json")["train_batch_size"] == 8
    assert (out / "model.safetensors").is_file()
    # DeepSpeed's CPU shared-memory op (a C++ build of ~60-100 s) was not compiled
    assert not (tmp_path / "torch_extensions").exists() or not any(
        (tmp_path / "torch_extensions").rglob("*.so")
    )


SINGLE = """
import os, torch
from ndar.finetune.distributed import init_distributed
info = init_distributed("gloo")
t = torch.ones(1); torch.distributed.all_reduce(t)
print(info.rank, info.world_size, t.item(), os.environ["MASTER_PORT"])
"""


@pytest.mark.slow
def test_plain_processes_started_together_each_get_their_own_world_of_one(tmp_path):
    """No launcher: each process binds its own rendezvous port (the OS picks it), so several
    started at the same moment never collide."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_PORT", "LOCAL_RANK")
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SINGLE], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lines = [o[0].strip().splitlines()[-1].split() for o in outs]
    assert all(line[:3] == ["0", "1", "1.0"] for line in lines), lines
    assert len({line[3] for line in lines}) == 3  # three different ports
