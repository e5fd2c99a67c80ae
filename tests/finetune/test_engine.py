"""A real tiny fine-tune (DeepSpeed, gloo, one process): loss falls, checkpoint, resume, export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from ndar.config import load_config
from ndar.finetune.config import FinetuneConfig
from ndar.utils.io import read_json

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "finetune" / "tiny" / "k400_vith.yaml"


def _run(shrink, root: Path, clips: Path, output: Path, *extra: str) -> Path:
    from ndar.finetune.engine import run

    overrides = shrink(root, output) + [
        f"data.clips={clips}",
        "train.epochs=3",
        "train.max_steps_per_epoch=5",
        "train.save_every=1",
        "optim.lr=0.003",
        "optim.warmup_epochs=0",
        *extra,
    ]
    return run(load_config(FinetuneConfig, TINY, overrides))


@pytest.fixture(scope="module")
def finished_run(shrink, synth_root, driver_clips, tmp_path_factory) -> Path:
    return _run(shrink, synth_root, driver_clips, tmp_path_factory.mktemp("ft") / "run")


@pytest.mark.slow
def test_loss_falls_and_outputs_are_complete(finished_run):
    out = finished_run
    for name in ("config.yaml", "deepspeed_config.json", "metrics.csv", "metrics.json", "model.safetensors"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").iterdir())
    ds = read_json(out / "deepspeed_config.json")
    assert ds["train_micro_batch_size_per_gpu"] == 4 and ds["zero_optimization"]["stage"] == 0
    log = pd.read_csv(out / "metrics.csv")
    train = log[log["split"] == "train"]["loss"].to_numpy()
    assert len(train) == 15  # 3 epochs x 5 steps, one row per step
    assert train[-5:].mean() < train[:5].mean() - 0.1, f"loss did not fall: {train}"
    summary = read_json(out / "metrics.json")
    assert summary["finished"] and summary["num_updates"] == 15
    val = summary["val"]
    assert val["num_clips"] == 34 and 0.0 <= val["top1"] <= 1.0
    assert sum(map(sum, val["confusion"])) == 34
    assert (out / "checkpoints" / "latest").read_text().strip() == "epoch003"
    assert len(list((out / "checkpoints").glob("epoch*"))) == 2  # keep_checkpoints


def test_exported_folder_matches_the_last_checkpoint(finished_run):
    from safetensors.torch import load_file

    from ndar.backbones import load_model_folder

    model, spec = load_model_folder(finished_run)
    assert (spec.num_frames, spec.img_size, spec.sampling_rate) == (4, 32, 1)
    reference, _ = load_model_folder(finished_run)
    reference.load_state_dict(load_file(str(finished_run / "checkpoints" / "epoch003" / "model.safetensors")))
    assert not list(finished_run.rglob("*.pt")), "no pickle is written"
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), reference.eval()(x), atol=1e-6)
        assert model(x).shape == (2, 16)


def test_finished_run_is_skipped(shrink, finished_run, synth_root, driver_clips):
    stamp = (finished_run / "metrics.json").stat().st_mtime_ns
    _run(shrink, synth_root, driver_clips, finished_run)
    assert (finished_run / "metrics.json").stat().st_mtime_ns == stamp


def test_finished_run_with_other_settings_is_refused_not_reused(
    shrink, finished_run, synth_root, driver_clips
):
    stamp = (finished_run / "metrics.json").stat().st_mtime_ns
    with pytest.raises(
        ValueError, match=r"finished, but with other settings \(optim.lr: 0.003 -> 0.001\).*overwrite=true"
    ):
        _run(shrink, synth_root, driver_clips, finished_run, "optim.lr=0.001")
    assert (finished_run / "metrics.json").stat().st_mtime_ns == stamp  # nothing touched


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_checkpoint(shrink, finished_run, synth_root, driver_clips):
    """Drop the finished marker and the last tag (as if killed during epoch 3): only epoch 3 runs."""
    import shutil

    (finished_run / "metrics.json").unlink()
    shutil.rmtree(finished_run / "checkpoints" / "epoch003")
    (finished_run / "checkpoints" / "latest").write_text("epoch002\n")
    _run(shrink, synth_root, driver_clips, finished_run)
    summary = read_json(finished_run / "metrics.json")
    assert summary["num_updates"] == 15  # 10 restored + 5 new optimizer steps
    log = pd.read_csv(finished_run / "metrics.csv")
    assert sorted(log[log["split"] == "train_epoch"]["epoch"]) == [1, 2, 3]  # epoch 3 once
    assert len(log[log["split"] == "train"]) == 15
    assert (finished_run / "checkpoints" / "latest").read_text().strip() == "epoch003"


def test_resume_with_other_settings_is_refused(shrink, finished_run, synth_root, driver_clips):
    """Killed, then re-run with more epochs: the old checkpoint is not continued under a new config."""
    (finished_run / "metrics.json").unlink()
    config = (finished_run / "config.yaml").read_text()
    with pytest.raises(
        ValueError, match=r"epoch003 was trained with other settings \(train.epochs: 3 -> 4\)"
    ):
        _run(shrink, synth_root, driver_clips, finished_run, "train.epochs=4")
    assert (finished_run / "config.yaml").read_text() == config  # still describes the checkpoint


@pytest.mark.slow
def test_a_fresh_run_over_an_older_runs_later_tags_keeps_its_own(shrink, synth_root, driver_clips, tmp_path):
    """resume=none where a killed run left epoch003/epoch004: the new run's tags are not pruned as
    the oldest (which left `latest` naming a deleted folder); the replaced run's later tags go."""
    from ndar.finetune import checkpoint as ckpt

    out = tmp_path / "run"
    keep = ["train.max_steps_per_epoch=1", "train.keep_checkpoints=2"]
    _run(shrink, synth_root, driver_clips, out, "train.epochs=4", *keep)
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint
    _run(shrink, synth_root, driver_clips, out, "train.epochs=2", "resume=none", *keep)
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch*")) == ["epoch001", "epoch002"]
    assert ckpt.resume_folder(out / "checkpoints", "auto") == out / "checkpoints" / "epoch002"


def _train_batches(shrink, root: Path, workers: int, epoch: int, tmp: Path) -> list[torch.Tensor]:
    """The clips of the first three batches of `epoch` through the engine's own training loader."""
    from ndar.finetune.data import build_datasets, finetune_spec
    from ndar.finetune.distributed import DistInfo
    from ndar.finetune.engine import train_loader

    cfg = load_config(FinetuneConfig, TINY, shrink(root, tmp) + [f"data.num_workers={workers}"])
    train, _, _ = build_datasets(cfg, finetune_spec(cfg))
    loader = train_loader(train, cfg, DistInfo(rank=0, world_size=1, local_rank=0))
    assert loader.persistent_workers == (workers > 0)  # kept across epochs: no restart per epoch
    loader.sampler.set_epoch(epoch)
    batches = []
    for x, _ in loader:
        batches.append(x)
        if len(batches) == 3:
            break
    return batches


def test_a_clip_is_augmented_by_its_key_not_by_the_worker_that_builds_it(shrink, synth_root, tmp_path):
    """The same epoch gives the same augmented clips from the main process and from two workers;
    the next epoch draws others. Why: persistent workers and exact resumption need augmentation
    that depends on (seed, epoch, clip) only."""
    inline = _train_batches(shrink, synth_root, 0, 0, tmp_path / "a")
    workers = _train_batches(shrink, synth_root, 2, 0, tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(inline, workers, strict=True))
    later = _train_batches(shrink, synth_root, 0, 1, tmp_path / "c")
    assert not any(torch.equal(a, b) for a, b in zip(inline, later, strict=True))


def test_a_keyed_clip_leaves_the_process_random_streams_as_they_were(shrink, synth_root, tmp_path):
    import random

    import numpy as np

    from ndar.finetune.data import build_datasets, finetune_spec

    cfg = load_config(FinetuneConfig, TINY, shrink(synth_root, tmp_path))
    train, _, _ = build_datasets(cfg, finetune_spec(cfg))
    before = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    first, _ = train[(3, 7, 1)]
    again, _ = train[(3, 7, 1)]
    assert torch.equal(first, again)  # the key alone decides the draws
    assert not torch.equal(first, train[(3, 7, 2)][0])
    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])


@pytest.mark.slow
def test_any_number_of_workers_trains_the_same_weights(
    shrink, finished_run, synth_root, driver_clips, tmp_path
):
    """With two loader workers the run reproduces the in-process run bit for bit, which is why
    `data.num_workers` may change between a run and its resumption (a host with other cores)."""
    from safetensors.torch import load_file

    out = _run(shrink, synth_root, driver_clips, tmp_path / "workers", "data.num_workers=2")
    want, got = load_file(str(finished_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all(torch.equal(got[k], want[k]) for k in want)
    stamp = (out / "metrics.json").stat().st_mtime_ns
    _run(shrink, synth_root, driver_clips, out)  # the same run with no workers: finished, reused as it is
    assert (out / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_bf16_zero1_run_exports_the_fp32_master_weights(shrink, synth_root, driver_clips, tmp_path):
    """With ZeRO-1 in bf16 the module holds bf16 copies; the export must be the fp32 master."""
    from safetensors.torch import load_file

    out = _run(
        shrink, synth_root, driver_clips, tmp_path / "bf16", "train.epochs=1", "train.max_steps_per_epoch=2",
        "train.precision=bf16", "train.zero_stage=1", "optim.clip_grad=0",
    )  # fmt: skip
    ds = read_json(out / "deepspeed_config.json")
    assert ds["bf16"]["enabled"] is True
    # the real configs' setting: DeepSpeed accepts the host-side checks off and trains
    assert (
        ds["bf16"]["check_grad_overflow"] is False and ds["zero_optimization"]["compute_grad_norm"] is False
    )
    assert (out / "checkpoints" / "epoch001" / "optimizer_rank0.safetensors").is_file()
    weights = load_file(str(out / "model.safetensors"))
    fc1 = weights["blocks.0.mlp.fc1.weight"]
    assert fc1.dtype == torch.float32
    assert not torch.equal(fc1, fc1.to(torch.bfloat16).float()), "exported weights are only bf16-precise"


class _SleepyEngine(torch.nn.Module):
    """The parts of a DeepSpeed engine `train_one_epoch` uses; each step takes `step_s`."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 16)
        self.step_s, self.global_steps, self.device = step_s, 0, torch.device("cpu")
        self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=0.1)

    def bfloat16_enabled(self) -> bool:
        return False

    def fp16_enabled(self) -> bool:
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        import time

        time.sleep(self.step_s)
        self.global_steps += 1


class _SleepyLoader:
    """`batches` batches, each after `wait_s`; the first after `start_s` more (the workers' start)."""

    def __init__(self, batches: int, wait_s: float, start_s: float = 0.0) -> None:
        from types import SimpleNamespace

        self.batches, self.wait_s, self.start_s = batches, wait_s, start_s
        self.sampler = SimpleNamespace(set_epoch=lambda epoch: None)  # as the engine's SeededSampler

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        import time

        time.sleep(self.start_s)
        for _ in range(self.batches):
            time.sleep(self.wait_s)
            yield torch.randn(2, 4), torch.tensor([0, 1])


def _epoch_stats(engine, loader, criterion=None) -> dict:
    """`train_one_epoch` over a fake engine and loader (no mixup, one process)."""
    from types import SimpleNamespace

    from ndar.finetune.engine import train_one_epoch

    cfg = SimpleNamespace(train=SimpleNamespace(max_steps_per_epoch=0, grad_accum=1, log_every=1000))
    scheduler = SimpleNamespace(step_update=lambda num_updates: None)
    runlog = SimpleNamespace(add=lambda step, row: None)
    dist = SimpleNamespace(is_main=False, world_size=1)
    criterion = criterion or torch.nn.CrossEntropyLoss()
    return train_one_epoch(engine, loader, scheduler, None, criterion, cfg, 0, runlog, dist)


@pytest.mark.parametrize(("wait_s", "step_s", "low", "high"), [(0.2, 0.0, 0.6, 1.0), (0.0, 0.2, 0.0, 0.25)])
def test_epoch_reports_the_time_spent_waiting_for_data(wait_s, step_s, low, high):
    """An input-bound epoch reports most of its time as data wait, a compute-bound one almost none."""
    stats = _epoch_stats(_SleepyEngine(step_s), _SleepyLoader(8, wait_s))
    assert low <= stats["data_wait"] <= high, stats
    assert low <= stats["data_wait_steady"] <= high, stats


def test_a_slow_loader_start_is_told_apart_from_a_slow_loader():
    """A short epoch whose workers take long to start waits mostly for the first batch: `data_wait`
    is high, the steady fraction after the first batch is near 0 (the loader keeps up)."""
    stats = _epoch_stats(_SleepyEngine(0.05), _SleepyLoader(4, 0.0, start_s=1.0))
    assert 1.0 <= stats["first_batch_s"] < 1.5, stats
    assert stats["data_wait"] > 0.5, stats
    assert stats["data_wait_steady"] < 0.1, stats
    from ndar.finetune.engine import EPOCH_TIMINGS

    assert set(stats) == {"loss", "lr", *EPOCH_TIMINGS}  # what the resume tests leave out as timings


@pytest.mark.slow
def test_compiled_fused_run_trains_as_the_eager_one(shrink, synth_root, driver_clips, tmp_path):
    """`train.compile` (inductor through DeepSpeed's engine.compile) and `optim.fused` change the
    kernels, not the function: the same seed gives the same losses, and the exported weights keep
    the model's own names (no `_orig_mod.` prefix), so extraction loads them as usual."""
    from safetensors.torch import load_file
    from torch._dynamo.utils import counters

    from ndar.backbones import load_model_folder

    same = ("train.epochs=1", "train.max_steps_per_epoch=3", "model.drop_path_rate=0", "train.precision=fp32")
    counters.clear()  # other tests of this process may have compiled
    eager = _run(shrink, synth_root, driver_clips, tmp_path / "eager", *same)
    assert counters["stats"]["unique_graphs"] == 0, "the eager run compiled something"
    fast = _run(
        shrink, synth_root, driver_clips, tmp_path / "fast", *same, "train.compile=true", "optim.fused=true"
    )
    assert counters["stats"]["unique_graphs"] > 0, "train.compile=true compiled nothing"

    def losses(out: Path) -> list[float]:
        rows = pd.read_csv(out / "metrics.csv")
        return rows[rows["split"] == "train"]["loss"].tolist()

    assert len(losses(fast)) == 3
    assert losses(fast) == pytest.approx(losses(eager), rel=1e-3)
    weights, reference = (
        load_file(str(fast / "model.safetensors")),
        load_file(str(eager / "model.safetensors")),
    )
    assert sorted(weights) == sorted(reference)
    assert all(torch.allclose(weights[k], reference[k], atol=1e-4) for k in weights)
    load_model_folder(fast)  # the exported folder loads as a backbone


def test_fused_adamw_is_asked_of_torch_only_when_configured():
    from ndar.finetune.engine import build_model, build_optimizer

    for fused in (False, True):
        cfg = load_config(FinetuneConfig, TINY, [f"optim.fused={str(fused).lower()}"])
        optimizer = build_optimizer(build_model(cfg)[0], cfg, lr=1e-3)
        assert type(optimizer) is torch.optim.AdamW
        assert bool(optimizer.defaults["fused"]) is fused


def test_a_non_finite_loss_stops_the_epoch_at_that_step():
    """The loss is read once per step, after the update; a NaN there ends the run with an error that
    names the epoch and step (a diverged run must not go on to write checkpoints)."""
    engine = _SleepyEngine(0.0)

    def nan_on_third_step(logits, target):
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss * float("nan") if engine.global_steps == 2 else loss

    with pytest.raises(FloatingPointError, match=r"epoch 1 step 2: loss is nan"):
        _epoch_stats(engine, _SleepyLoader(6, 0.0), nan_on_third_step)
    assert engine.global_steps == 3  # the diverged step was applied, none after it
