"""Fault injection, heads: same seed same checkpoint bytes; a crafted checkpoint names its path."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import pytest

from ndar.heads.actionformer import ActionFormerConfig, ActionFormerHead

_spec = importlib.util.spec_from_file_location(
    "faults_heads_fixtures", Path(__file__).resolve().parents[1] / "heads" / "heads_fixtures.py"
)
fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fixtures  # dataclasses look their module up there
_spec.loader.exec_module(fixtures)

DIMS = {"rear": 8, "dashboard": 8}


def tiny() -> ActionFormerConfig:
    return ActionFormerConfig(
        embed_dim=16, num_heads=2, window=5, head_dim=16, head_layers=2, epochs=2, warmup_epochs=1, batch_size=2,
        lr=3e-3, drop_path=0.0, device="cpu", cpu_threads=1, pre_nms_topk=100,
    )  # fmt: skip


class WriteMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.slow
def test_same_seed_gives_byte_identical_models(tmp_path):
    """Two fits with one seed in two folders save the same model bytes: the zip inside a torch file
    no longer stores the random temporary file name. The resume checkpoint differs only by its
    recorded epoch timings; its records carry the fixed name too."""
    import zipfile

    videos = fixtures.make_videos(n_drivers=3, sessions=1, duration=60.0, seed=2)
    for name in ("a", "b"):
        head = ActionFormerHead(tiny(), DIMS, seed=1)
        head.fit(videos, [], tmp_path / name)
        head.save(tmp_path / name / "model.pt")
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    for path in (tmp_path / "a").glob("*.pt"):
        assert {n.split("/")[0] for n in zipfile.ZipFile(path).namelist()} == {"archive"}, path


def test_crafted_head_checkpoint_names_the_path_and_runs_no_code(tmp_path):
    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    path.write_bytes(pickle.dumps({"model": WriteMarker(marker)}))
    head = ActionFormerHead(tiny(), DIMS, seed=0)
    with pytest.raises(ValueError, match=rf"^{path}: not a loadable head checkpoint") as caught:
        head.load(path)
    assert "\n" not in str(caught.value)
    assert not marker.exists()
