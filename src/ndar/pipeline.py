"""The main job: raw videos -> fine-tuned backbones -> six feature sets -> heads -> ensemble -> submission.

`python -m ndar run --config configs/main/synthetic.yaml [key=value ...]` (`--dry-run`: print the plan)

The job is a plan and a runner. `ndar.plan.build_plan` turns this config into stage groups, each
stage with its command, its derived config (loaded and checked with the stages' own loader before
anything runs) and the files it consumes and produces; `ndar.executor` runs them. Each stage runs
as its own `python -m ndar <stage>` process (the same command a user would type), so a stage's
failure is isolated and named, DeepSpeed / torch.distributed state never leaks from one stage to the
next, and multi-process stages go through torchrun. Every stage skips work that is already complete,
so re-running the main job resumes where it stopped; a stage whose command and config are unchanged
since it last finished, with nothing before it re-run, is not even started (`skipped (done)`, its
recorded time kept). Folder names come from `ndar.layout`; the logic of each stage lives in its own
subpackage.

The heads and the ensemble run through the papermill notebooks (`notebooks/10_tim.ipynb`,
`20_actionformer.ipynb`, `30_ensemble.ipynb`), the way the project's users work; each notebook only
calls the package with the stage's resolved config, so `notebooks: false` (`--no-notebooks`) runs the
same code and writes the same files, without the executed copies in `runs/<name>/notebooks/`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ndar.config import load_config, save_config
from ndar.executor import Executor, StageError, StageRun, run_stage
from ndar.extract.merge import PROBS_RULES
from ndar.plan import ENSEMBLE_NOTEBOOK, HEAD_NOTEBOOKS, REPO, Plan, Stage, build_plan, describe
from ndar.synth.config import MainJobSynthConfig
from ndar.utils.io import read_json, write_json
from ndar.utils.logging import setup_logging

log = logging.getLogger(__name__)

__all__ = ["MainConfig", "StageError", "check_config", "run", "headline"]


@dataclass
class MainConfig:
    """Everything the main job needs; each stage's own hyperparameters live in its own config file."""

    name: str = "synthetic"  # run name: runs/<name>/ and submissions/<name>/
    runs_dir: Path = Path("runs")
    submissions_dir: Path = Path("submissions")
    data_root: Path | None = None  # official data (folder with A1/ and A2/); None -> synthetic
    labels_dir: Path | None = None  # label CSVs kept outside the driver folders
    ground_truth: Path | None = None  # A2 ground truth (submission format) to score against, if known
    # the embedded synthetic dataset, generated when `data_root` is not given (SynthConfig fields; the
    # defaults are the main job's setting)
    synth: MainJobSynthConfig = field(default_factory=MainJobSynthConfig)
    tracks: list[str] = field(default_factory=lambda: ["k400_vith", "hybrid_vitl", "ego_vitl"])
    views: list[str] = field(default_factory=lambda: ["rear", "dashboard"])
    nproc: int = 1  # processes per stage launched through torchrun (1 = plain process)
    # torchrun processes of each extraction stage (0: nproc). Extraction runs alone (it waits for every
    # fine-tune), so with `jobs: 2` it can take the two cores the paired stages use; each process
    # extracts its share of the videos (ndar.extract.runner.shard).
    extract_nproc: int = 0
    # independent stages (the fine-tunes; the heads runs) run this many at a time. Worth it when
    # each uses one core (the tiny configs: 2 on 2 cores); needs nproc 1.
    jobs: int = 1
    finetune_config: str = "configs/finetune/tiny/{track}.yaml"  # {track} is filled in
    finetune_overrides: list[str] = field(default_factory=list)
    finetune_fold: int = -1  # held-out validation fold of the fine-tuning; -1 trains on all of A1
    # k >= 2: k fold models per track and view instead of one; model f is fine-tuned without the A1
    # drivers of fold f and extracts them, so every A1 feature is out-of-sample like A2 (whose
    # probabilities are averaged over the k models). 0 = one model per track and view (finetune_fold).
    finetune_folds: int = 0
    # how the k fold models' probabilities of an A2 video are merged (`merge-features --probs`):
    # "mean", the plain fold ensemble; "entropy-matched" sharpens it to one model's entropy, the
    # sharpness the heads learn from on A1. Measured over three seeds, sharpening did not help
    # (docs/extract.md), so the plain mean stays
    merge_probs: str = "mean"
    # which model of each fine-tune extraction reads: final (the full schedule) or best (the epoch with
    # the highest held-fold top-1, only kept where a fold is held out); see docs/finetune.md
    finetune_checkpoint: str = "final"
    # fine-tune from a clip cache (`cache-clips`, one per track and view under <run>/clipcache/<track>):
    # every video decoded once, in order, instead of random access per clip (the real data's 8-min
    # 1080p files); the cache stage takes its settings from the derived fine-tuning config
    clip_cache: bool = False
    clip_cache_workers: int = 1  # processes of each cache-clips stage
    pretrained: dict[str, str] = field(default_factory=dict)  # track -> pretrained checkpoint path
    extract_config: str = "configs/extract/synthetic.yaml"
    extract_overrides: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=lambda: ["tim", "actionformer"])
    heads_config: str = "configs/heads/{head}_tiny.yaml"  # {head} is filled in
    heads_overrides: list[str] = field(default_factory=list)  # every heads run, after head_overrides
    head_overrides: dict[str, list[str]] = field(default_factory=dict)  # head -> overrides of its runs
    heads_inputs: str = "features"  # features | probs | log_probs; fold models need probabilities
    # these heads also train on the other tracks' windows of their training sessions (HeadsConfig
    # `extra_train_tracks` = `tracks`); needs heads_inputs probs or log_probs
    heads_extra_train: list[str] = field(default_factory=list)
    folds: int = 3  # k of the k-fold split by driver (heads and ensemble tuning)
    ensemble_config: str = "configs/ensemble/default.yaml"
    ensemble_overrides: list[str] = field(default_factory=list)
    baseline: bool = True  # also run the simple baseline (the reference the pipeline must beat)
    baseline_config: str = "configs/baseline/default.yaml"
    # run the heads and the ensemble through their notebooks (papermill), executed copies kept in
    # runs/<name>/notebooks/; false calls the package directly (the same files, no notebooks)
    notebooks: bool = True
    seed: int = 0


def check_config(cfg: MainConfig) -> None:
    """Refuse settings that would run for minutes and then mislead: checked before any stage starts."""
    if cfg.finetune_folds == 1 or cfg.finetune_folds < 0:
        raise StageError(f"finetune_folds={cfg.finetune_folds}: use 0 (one model) or k >= 2 fold models")
    if cfg.merge_probs not in PROBS_RULES:
        raise StageError(f"merge_probs={cfg.merge_probs!r}: expected one of {list(PROBS_RULES)}")
    if cfg.extract_nproc < 0:
        raise StageError(
            f"extract_nproc={cfg.extract_nproc}: expected 0 (the job's nproc) or a process count"
        )
    if cfg.jobs < 1:
        raise StageError(f"jobs={cfg.jobs}: expected 1 (one stage at a time) or more")
    if cfg.jobs > 1 and cfg.nproc > 1:
        raise StageError(
            f"jobs={cfg.jobs} with nproc={cfg.nproc}: independent torchrun stages would each start "
            "nproc processes on the same devices; run them one at a time (jobs: 1)"
        )
    if cfg.finetune_folds and cfg.heads_inputs == "features":
        raise StageError(
            "finetune_folds needs heads_inputs: probs or log_probs (the fold models' embeddings do "
            "not share a space; their class probabilities do)"
        )
    for name, heads in (
        ("head_overrides", list(cfg.head_overrides)),
        ("heads_extra_train", cfg.heads_extra_train),
    ):
        unknown = sorted(set(heads) - set(cfg.heads))
        if unknown:
            raise StageError(f"{name} names {unknown}, which are not in heads {cfg.heads}")
    if cfg.notebooks:
        missing = [
            nb
            for nb in [*(HEAD_NOTEBOOKS.get(h, "") for h in cfg.heads), ENSEMBLE_NOTEBOOK]
            if not (REPO / nb).is_file()
        ]
        if missing:
            raise StageError(
                f"notebooks {missing} not found under {REPO}: run with --no-notebooks (notebooks: false)"
            )
        unknown = sorted(set(cfg.heads) - set(HEAD_NOTEBOOKS))
        if unknown:
            raise StageError(f"heads {unknown} have no notebook; run with --no-notebooks (notebooks: false)")
    if cfg.heads_extra_train and cfg.heads_inputs == "features":
        raise StageError(
            "heads_extra_train needs heads_inputs: probs or log_probs (the embeddings of different "
            "backbones do not share a space)"
        )


def run(cfg: MainConfig, runner: Callable[[Stage, int], float | StageRun] = run_stage) -> dict:
    """Run the main job; returns the summary also written to runs/<name>/pipeline.json.

    `runner` runs one stage (a subprocess; the tests pass one that only records the stage)."""
    check_config(cfg)
    plan = build_plan(cfg)  # every derived config is checked here, before anything is written
    layout = plan.layout
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(layout.log)
    save_config(cfg, layout.config)
    log.info("main job '%s': %d stages, logs in %s", cfg.name, len(plan.stages), layout.logs)
    start = time.perf_counter()
    executor = Executor(plan, nproc=cfg.nproc, jobs=cfg.jobs, runner=runner)
    executor.run()
    finish_report(plan, executor.timings)
    summary = summarize(plan, executor, time.perf_counter() - start)
    write_json(layout.summary, summary)
    return summary


def finish_report(plan: Plan, timings: dict[str, float]) -> None:
    """Add the baseline row, the stage timings and the heads' training curves to report.html."""
    from ndar.ensemble.report import add_main_job

    report = plan.layout.report
    if not report.is_file():
        return
    baseline = plan.layout.baseline / "metrics.json"
    ordered = {name: timings[name] for name in plan.names if name in timings}
    add_main_job(report, read_json(baseline) if baseline.is_file() else None, ordered, plan.heads_runs)


def summarize(plan: Plan, executor: Executor, seconds: float) -> dict:
    layout = plan.layout
    out: dict = {"run": layout.run_dir.name, "seconds": round(seconds, 1)}
    # a skipped stage keeps the time it took when it ran, so this file always describes the work
    out["stages"] = {k: round(v, 1) for k, v in executor.timings.items()}
    out["peak_rss_mib"] = dict(executor.peak_rss_mib)  # each stage's process tree, where measured
    out["skipped"] = list(executor.skipped)
    if layout.submission_metrics.is_file():
        out["ensemble"] = read_json(layout.submission_metrics)
    baseline = layout.baseline / "metrics.json"
    if baseline.is_file():
        out["baseline"] = read_json(baseline)
    out["submission"] = str(layout.submission)
    out["report"] = str(layout.report)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="YAML for MainConfig (configs/main/synthetic.yaml: the demo)"
    )
    parser.add_argument(
        "--no-notebooks",
        action="store_true",
        help="run the heads and the ensemble through the package, not their notebooks (notebooks=false)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (stages, commands, configs, files); run nothing",
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. name=try2 synth.drivers=4")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(MainConfig, args.config, args.overrides)
    if args.no_notebooks:
        cfg.notebooks = False
    try:
        if getattr(args, "dry_run", False):
            check_config(cfg)
            print(describe(build_plan(cfg), cfg.jobs, cfg.nproc))
            return 0
        summary = run(cfg)
    except StageError as err:
        print(f"ndar run: {err}", file=sys.stderr)
        return 1
    print(headline(summary))
    print(f"  details:    {cfg.runs_dir / cfg.name / 'pipeline.json'}")
    return 0


def headline(summary: dict) -> str:
    """The few lines a user looks for at the end of the main job."""
    lines = [f"ndar run '{summary['run']}' finished in {summary['seconds']:.0f} s"]
    if summary.get("skipped"):
        lines[0] += f" ({len(summary['skipped'])} of {len(summary['stages'])} stages skipped: done earlier)"
    ensemble = summary.get("ensemble") or {}
    if "oof_mOS" in ensemble:
        lines.append(f"  ensemble mOS: A1 out-of-fold {ensemble['oof_mOS']:.3f}")
    if ensemble.get("test_mOS") is not None:
        lines.append(f"  ensemble mOS: A2 {ensemble['test_mOS']:.3f}")
    baseline = summary.get("baseline") or {}
    if "oof" in baseline:
        lines.append(f"  baseline mOS: A1 out-of-fold {baseline['oof']['mOS']:.3f}")
    if baseline.get("mOS") is not None:
        lines.append(f"  baseline mOS: A2 {baseline['mOS']:.3f}")
    lines.append(f"  submission: {summary['submission']}")
    lines.append(f"  report:     {summary['report']}")
    return "\n".join(lines)
