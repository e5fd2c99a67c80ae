"""The Track3 fine-tuning scripts launch one torchrun per view with the right arguments."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("track", ["k400_vith", "hybrid_vitl", "ego_vitl"])
def test_track_script_runs_rear_then_dashboard(track):
    env = {**os.environ, "PYTHON": "echo"}  # print the commands instead of running them
    out = subprocess.run(
        ["bash", f"shell/Track3_finetune_{track}.sh", "/d", "/p.pth", "/o", "2", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == 2
    for line, view in zip(out, ["rear", "dashboard"]):
        assert "--nproc_per_node 2" in line and f"--config configs/finetune/{track}.yaml" in line
        assert f"data.view={view}" in line and "data.root=/d" in line and "model.pretrained=/p.pth" in line
        assert f"output=/o/{track}_{view}_fold1" in line and "data.fold=1" in line


def test_track_script_defaults_train_on_all_folds():
    env = {k: v for k, v in os.environ.items() if k not in ("FOLD", "OUT_DIR")} | {"PYTHON": "echo"}
    out = subprocess.run(
        ["bash", "shell/Track3_finetune_ego_vitl.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "data.fold=-1" in out and out.splitlines()[0].endswith("output=weights/finetuned/ego_vitl_rear")
    assert "model.pretrained=weights/pretrained/vit_l_ego4d_verb.pth" in out
