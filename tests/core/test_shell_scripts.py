"""The shell scripts: usage on --help, argument checks before torchrun, one torchrun per view."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "shell").glob("*.sh"))


def fake_python(tmp_path: Path, torchrun_fails: bool = False) -> dict:
    """Env whose PYTHON runs the real checks (`ndar.utils.preflight`) and folder names (`ndar layout`)
    and prints any other command
    instead of running it (or, with `torchrun_fails`, creates the output folder and fails like a
    torchrun that died early)."""
    script = tmp_path / "python"
    fail = (
        'for a in "$@"; do case "$a" in output=*) mkdir -p "${a#output=}" ;; esac; done; exit 1'
        if torchrun_fails
        else 'echo "$@"'
    )
    script.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$2" = ndar.utils.preflight ]; then exec {sys.executable} "$@"; fi\n'
        f'if [ "$2 $3" = "ndar layout" ]; then exec {sys.executable} "$@"; fi\n{fail}\n'
    )
    script.chmod(0o755)
    src = str(ROOT / "src")
    return {
        **os.environ,
        "PYTHON": str(script),
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "A1" / "user_id_00001").mkdir(parents=True)
    (tmp_path / "p.pth").write_bytes(b"x")
    return root


def run(args, env, cwd=ROOT):
    return subprocess.run(["bash", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_prints_its_usage_on_help(script, tmp_path):
    for flag in ("--help", "-h"):
        done = run([f"shell/{script}", flag], fake_python(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "usage" in done.stdout.lower() and not done.stderr
    assert not (ROOT / "--help").exists()


@pytest.mark.parametrize("track", ["k400_vith", "hybrid_vitl", "ego_vitl"])
def test_track_script_runs_rear_then_dashboard_then_right(track, tmp_path):
    root = data_root(tmp_path)
    args = [
        f"shell/Track3_finetune_{track}.sh",
        str(root),
        str(tmp_path / "p.pth"),
        str(tmp_path / "o"),
        "2",
        "1",
    ]
    done = run(args, fake_python(tmp_path))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert len(out) == 3
    for line, view in zip(out, ["rear", "dashboard", "right"]):
        assert "--nproc_per_node 2" in line and f"--config configs/finetune/{track}.yaml" in line
        assert f"data.view={view}" in line and f"data.root={root}" in line
        assert f"model.pretrained={tmp_path / 'p.pth'}" in line
        assert f"output={tmp_path / 'o'}/{track}_{view}_fold1" in line and "data.fold=1" in line


def test_views_env_chooses_the_views_and_a_wrong_one_stops_before_torchrun(tmp_path):
    root = data_root(tmp_path)
    args = ["shell/Track3_finetune_k400_vith.sh", str(root), str(tmp_path / "p.pth"), str(tmp_path / "o")]
    done = run(args, {**fake_python(tmp_path), "VIEWS": "rear dashboard"})
    assert done.returncode == 0, done.stderr
    assert [line.split("data.view=")[1].split()[0] for line in done.stdout.splitlines()] == [
        "rear",
        "dashboard",
    ]
    for views, phrase in (("", "VIEWS: empty"), ("rear backseat", "backseat")):
        done = run(args, {**fake_python(tmp_path), "VIEWS": views})
        assert done.returncode != 0 and not done.stdout, (views, done.stdout)  # torchrun never started
        assert phrase in done.stderr, done.stderr


def test_wrong_data_root_or_checkpoint_stops_before_torchrun(tmp_path):
    env = {k: v for k, v in fake_python(tmp_path).items() if k not in ("FOLD", "OUT_DIR", "DATA_ROOT")}
    out = tmp_path / "o"
    done = run(["shell/Track3_finetune_ego_vitl.sh", str(tmp_path / "nope"), "", str(out)], env)
    assert done.returncode == 2 and not done.stdout  # torchrun never started
    assert done.stderr.strip().count("\n") == 0 and "data root" in done.stderr and "nope" in done.stderr
    root = data_root(tmp_path)
    done = run(["shell/Track3_finetune_ego_vitl.sh", str(root), str(tmp_path / "missing.pth"), str(out)], env)
    assert done.returncode == 2 and "missing.pth" in done.stderr and not done.stdout
    assert not out.exists()


def test_failed_view_leaves_no_output_folder(tmp_path):
    root = data_root(tmp_path)
    out = tmp_path / "o"
    done = run(
        ["shell/Track3_finetune_ego_vitl.sh", str(root), str(tmp_path / "p.pth"), str(out)],
        fake_python(tmp_path, torchrun_fails=True),
    )
    assert done.returncode == 1
    assert not (out / "ego_vitl_rear").exists()


def test_extract_script_checks_its_config_first(tmp_path):
    done = run(["shell/extract_features.sh", str(tmp_path / "nope.yaml")], fake_python(tmp_path))
    assert done.returncode == 2 and "nope.yaml" in done.stderr and not done.stdout
