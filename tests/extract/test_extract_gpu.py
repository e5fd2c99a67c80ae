"""Extraction on a CUDA device (skipped where there is none): the bf16 GPU run with threaded frame
conversion gives the CPU float32 run's windows and, to bf16 tolerance, its features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_extract_run import config, outputs_of

from ndar.extract import run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_gpu_bf16_run_matches_the_cpu_run(dataset: Path, models_dir: Path, tmp_path: Path) -> None:
    assert run(config(dataset, models_dir, tmp_path / "cpu"))["failed"] == 0
    gpu = config(dataset, models_dir, tmp_path / "gpu", dtype="bfloat16", convert_threads=2)
    gpu.device = "cuda"
    summary = run(gpu)
    assert summary["done"] == 4 and summary["failed"] == 0
    cpu_out, gpu_out = outputs_of(tmp_path / "cpu"), outputs_of(tmp_path / "gpu")
    assert cpu_out.keys() == gpu_out.keys()
    for name, ref in cpu_out.items():
        got = gpu_out[name]
        np.testing.assert_array_equal(got["t_start"], ref["t_start"])
        np.testing.assert_allclose(got["probs"], ref["probs"], atol=0.05)
        cos = (got["features"].astype(np.float32) * ref["features"]).sum(1) / (
            np.linalg.norm(got["features"].astype(np.float32), axis=1)
            * np.linalg.norm(ref["features"], axis=1)
        )
        assert cos.min() > 0.99, (name, cos.min())
