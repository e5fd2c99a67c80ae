"""The main job: raw videos -> fine-tuned backbones -> six feature sets -> heads -> ensemble -> submission.

`python -m ndar run --config configs/main/synthetic.yaml [key=value ...]`

Each stage runs as its own `python -m ndar <stage>` process (the same command a user would type), so
a stage's failure is isolated and named, DeepSpeed / torch.distributed state never leaks from one
stage to the next, and multi-process stages go through torchrun. Every stage skips work that is
already complete, so re-running the main job resumes where it stopped; a stage whose command and
config are unchanged since it last finished, with nothing before it re-run, is not even started
(`skipped (done)`, its recorded time kept). The pipeline itself only chooses folders and arguments:
the logic of each stage lives in its own subpackage.

The heads and the ensemble run through the papermill notebooks (`notebooks/10_tim.ipynb`,
`20_actionformer.ipynb`, `30_ensemble.ipynb`), the way the project's users work; each notebook only
calls the package with the stage's resolved config, so `notebooks: false` (`--no-notebooks`) runs the
same code and writes the same files, without the executed copies in `runs/<name>/notebooks/`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ndar.config import load_config, parse_overrides, read_yaml_with_base, save_config
from ndar.synth.config import MainJobSynthConfig
from ndar.utils.io import read_json, write_json
from ndar.utils.logging import setup_logging
from ndar.utils.progress import format_seconds

log = logging.getLogger(__name__)


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


REPO = Path(__file__).resolve().parents[2]
HEAD_NOTEBOOKS = {"tim": "notebooks/10_tim.ipynb", "actionformer": "notebooks/20_actionformer.ipynb"}
ENSEMBLE_NOTEBOOK = "notebooks/30_ensemble.ipynb"


class StageError(RuntimeError):
    """A stage of the main job failed; the message names the stage, the command and its log."""


@dataclass
class Stage:
    name: str  # e.g. "finetune k400_vith/rear"
    argv: list[str]  # arguments after `python -m ndar`
    log_file: Path
    distributed: bool = False  # launch through torchrun when nproc > 1
    outputs: list[Path] = field(default_factory=list)  # what it leaves when done (empty: always run)


def run_stage(stage: Stage, nproc: int = 1) -> float:
    """Run one stage as a subprocess, its output appended to its log file; returns seconds taken."""
    if stage.distributed and nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "-m", "ndar"]
    else:
        cmd = [sys.executable, "-m", "ndar"]
    cmd += stage.argv
    stage.log_file.parent.mkdir(parents=True, exist_ok=True)
    log.debug("stage %s: %s", stage.name, shlex.join(cmd))
    start = time.perf_counter()
    with open(stage.log_file, "a") as fh:
        fh.write(f"\n$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_stage_env())
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = _tail(stage.log_file, 25)
        raise StageError(
            f"stage '{stage.name}' failed with exit code {proc.returncode} after {seconds:.0f} s\n"
            f"command: {shlex.join(cmd)}\nlog: {stage.log_file}\n--- last lines ---\n{tail}"
        )
    return seconds


# Rendezvous variables of a process group this process may belong to: a stage must not inherit
# them (it would try to join or re-bind that group's port); torchrun sets fresh ones when needed.
_DIST_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _stage_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_VARS}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _tail(path: Path, n: int) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-n:])


def derive_config(base: str | Path, updates: dict, out: Path, overrides: list[str] = ()) -> Path:
    """Write `base` YAML with keys replaced by `updates`, then the dotted `overrides`, to `out` (the
    stage's resolved input: what a notebook or a user re-running the stage reads, complete).

    The stage still validates every key against its own dataclass, so a wrong key fails there, loudly.
    """
    import yaml

    base = Path(base)
    if not base.is_file():
        raise StageError(f"stage config not found: {base}")
    data = read_yaml_with_base(base)  # the derived file lives elsewhere: its `_base_` is resolved here
    for key, value in {**updates, **parse_overrides(list(overrides))}.items():
        _set_nested(data, key, value)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(_plain(data), sort_keys=False))
    return out


def _set_nested(data: dict, dotted: str, value) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


class MainJob:
    """Folders and stage commands of one main-job run."""

    def __init__(self, cfg: MainConfig) -> None:
        self.cfg = cfg
        self.run_dir = cfg.runs_dir / cfg.name
        self.data_root = cfg.data_root or cfg.synth.out
        self.logs = self.run_dir / "logs"
        self.configs = self.run_dir / "configs"
        self.notebooks_dir = self.run_dir / "notebooks"
        self.markers = self.run_dir / "stages"
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self.planned = self.plan()
        self.started = 0
        self.clock = time.perf_counter()
        self.lock = threading.Lock()
        # a stage is skipped only while nothing before it has run in this invocation: whatever ran
        # may have changed its inputs. Independent stages of one group see the state before the group.
        self.upstream_ran = False
        self.group_ran = False

    # ------------------------------------------------------------------ folders
    def finetune_dir(self, track: str, view: str, fold: int | None = None) -> Path:
        suffix = "" if fold is None else f"_fold{fold}"
        return self.run_dir / "finetune" / f"{track}_{view}{suffix}"

    @property
    def fold_models(self) -> list[int | None]:
        """Fold of each model per track and view: [None] (one model) or [0, ..., k-1]."""
        return list(range(self.cfg.finetune_folds)) if self.cfg.finetune_folds else [None]

    @property
    def features_dir(self) -> Path:
        return self.run_dir / "features"

    def heads_dir(self, head: str, track: str) -> Path:
        return self.run_dir / "heads" / f"{head}_{track}"

    @property
    def submission_dir(self) -> Path:
        return self.cfg.submissions_dir / self.cfg.name

    @property
    def ground_truth(self) -> Path | None:
        if self.cfg.ground_truth is not None:
            return self.cfg.ground_truth
        if self.cfg.data_root is None:
            return self.cfg.synth.out / "A2_ground_truth.txt"
        return None

    def _common(self) -> dict:
        common = {"data_root": str(self.data_root)}
        if self.cfg.labels_dir is not None:
            common["labels_dir"] = str(self.cfg.labels_dir)
        return common

    # ------------------------------------------------------------------ stages
    def stage(self, name: str, argv: list[str], distributed: bool = False, outputs: list[Path] = ()) -> None:
        """Run one stage (or skip it when it is done), printing `[k/N]` lines with the overall ETA."""
        slug = name.replace(" ", "_").replace("/", "_")
        stage = Stage(name, argv, self.logs / f"{slug}.log", distributed, list(outputs))
        with self.lock:
            self.started += 1
            k = self.started
        done = self.finished_record(stage)
        if done is not None and not self.upstream_ran:
            with self.lock:
                self.timings[name] = done["seconds"]
                self.skipped.append(name)
            log.info(
                "[%d/%d] %s: skipped (done, took %s)",
                k,
                len(self.planned),
                name,
                format_seconds(done["seconds"]),
            )
            return
        log.info("[%d/%d] %s ... (log: %s)", k, len(self.planned), name, stage.log_file)
        if stage.outputs:
            with self.lock:
                self.group_ran = True
        seconds = run_stage(stage, self.cfg.nproc)
        with self.lock:
            if done is None:
                self.record_finished(stage, seconds)
            # a finished stage re-run only because something before it ran mostly resumes: its
            # recorded time is still the time its work took
            self.timings[name] = seconds if done is None else done["seconds"]
            eta = self.eta()
        log.info(
            "[%d/%d] %s: done in %s; elapsed %s, ETA %s",
            k,
            len(self.planned),
            name,
            format_seconds(seconds),
            format_seconds(time.perf_counter() - self.clock),
            eta,
        )

    # ------------------------------------------------------------------ resume and ETA
    def marker(self, stage: Stage) -> Path:
        return self.markers / (stage.log_file.stem + ".json")

    def fingerprint(self, stage: Stage) -> dict:
        """What makes a stage's work: its command and the text of the config it reads."""
        config = ""
        for flag in ("--config", "config_path"):  # a command's config, or a notebook's parameter
            if flag in stage.argv[:-1]:
                path = Path(stage.argv[stage.argv.index(flag) + 1])
                config = path.read_text() if path.is_file() else ""
        return {"argv": stage.argv, "config": config, "nproc": self.cfg.nproc}

    def finished_record(self, stage: Stage) -> dict | None:
        """The record of this stage's last finish with the same command and config, its outputs still
        there; None if there is none (the stage has work to do)."""
        path = self.marker(stage)
        if not stage.outputs or not path.is_file():
            return None
        record = read_json(path)
        if record.get("fingerprint") != self.fingerprint(stage):
            return None
        if not all(Path(p).exists() for p in stage.outputs):
            return None
        return record

    def record_finished(self, stage: Stage, seconds: float) -> None:
        if stage.outputs:
            record = {
                "stage": stage.name,
                "seconds": round(seconds, 1),
                "fingerprint": self.fingerprint(stage),
            }
            write_json(self.marker(stage), record)

    def known_seconds(self) -> dict[str, float]:
        """Stage times measured by earlier runs of this job (their records), by stage name."""
        known = {}
        for path in sorted(self.markers.glob("*.json")) if self.markers.is_dir() else []:
            record = read_json(path)
            known[record["stage"]] = float(record["seconds"])
        return known

    def eta(self) -> str:
        """Time left: each stage not yet finished at its earlier recorded time, else at the mean time of
        this run's stages of its kind (`heads`, `finetune`, ...), else of all measured stages; the
        fine-tunes and heads runs, `jobs` at a time, count 1/jobs."""
        remaining = [n for n in self.planned if n not in self.timings]
        if not remaining:
            return "0s"
        known = self.known_seconds()
        measured = {n: v for n, v in self.timings.items() if n not in self.skipped} or known

        def mean(values: list[float]) -> float:
            return sum(values) / max(1, len(values))

        total = 0.0
        for name in remaining:
            kind = name.split(" ")[0]
            same_kind = [v for n, v in measured.items() if n.split(" ")[0] == kind]
            guess = known.get(name, mean(same_kind) if same_kind else mean(list(measured.values())))
            total += guess / (self.cfg.jobs if kind in ("finetune", "heads") else 1)
        return "~" + format_seconds(total)

    def plan(self) -> list[str]:
        """Names of the stages this job will run, in order (for the `[k/N]` lines and the ETA)."""
        cfg = self.cfg
        names = (["synth"] if cfg.data_root is None else []) + ["check-data"]
        names += ["baseline"] if cfg.baseline else []
        if cfg.clip_cache:
            names += [f"cache-clips {track}/{view}" for track in cfg.tracks for view in cfg.views]
        for track in cfg.tracks:
            for view in cfg.views:
                for fold in self.fold_models:
                    names.append(f"finetune {track}/{view}" + ("" if fold is None else f" fold{fold}"))
        if cfg.finetune_folds:
            names += [f"extract fold{f}" for f in self.fold_models] + ["merge-features"]
        else:
            names.append("extract")
        names += [f"heads {head}/{track}" for head in cfg.heads for track in cfg.tracks]
        return names + ["ensemble"]

    def synth(self) -> None:
        # every setting goes through a config file; the stage itself keeps a finished identical dataset
        path = save_config(self.cfg.synth, self.configs / "synth.yaml")
        self.stage("synth", ["synth", "--config", str(path)], outputs=[self.cfg.synth.out / "synth.json"])

    def check_data(self) -> None:
        argv = ["check-data", str(self.data_root), "--split", "all"]
        if self.cfg.labels_dir is not None:
            argv += ["--labels", str(self.cfg.labels_dir)]
        self.stage("check-data", argv)

    def baseline(self) -> None:
        # the baseline's A1 out-of-fold score uses the heads' k folds by driver (same sessions held out)
        updates = {**self._common(), "out": str(self.run_dir / "baseline"), "oof_folds": self.cfg.folds}
        if self.ground_truth is not None:
            updates["ground_truth"] = str(self.ground_truth)
        path = derive_config(self.cfg.baseline_config, updates, self.configs / "baseline.yaml")
        outputs = [self.run_dir / "baseline" / "metrics.json"]
        self.stage("baseline", ["baseline", "--config", str(path)], outputs=outputs)

    def finetune_config(self, track: str, view: str, fold: int | None = None) -> Path:
        """The derived fine-tuning config of one model (written under <run>/configs/)."""
        per_fold = fold is not None
        updates = {
            "data.root": str(self.data_root),
            "data.view": view,
            "data.k": self.cfg.finetune_folds if per_fold else self.cfg.folds,
            "data.fold": fold if per_fold else self.cfg.finetune_fold,
            "output": str(self.finetune_dir(track, view, fold)),
            "train.seed": self.cfg.seed,
        }
        if track in self.cfg.pretrained:
            updates["model.pretrained"] = self.cfg.pretrained[track]
        if self.cfg.clip_cache:
            updates.update({"data.cache_dir": str(self.run_dir / "clipcache" / track), "data.cache": False})
        base = self.cfg.finetune_config.format(track=track)
        name = f"{track}_{view}" + ("" if fold is None else f"_fold{fold}")
        return derive_config(base, updates, self.configs / f"finetune_{name}.yaml")

    def cache_clips(self, track: str, view: str) -> None:
        """The clip cache of one track and view (all its fold models read it: folds do not change clips)."""
        path = self.finetune_config(track, view, self.fold_models[0])
        argv = ["cache-clips", "--from-finetune", str(path), "--workers", str(self.cfg.clip_cache_workers)]
        self.stage(f"cache-clips {track}/{view}", argv + list(self.cfg.finetune_overrides))

    def finetune(self, track: str, view: str, fold: int | None = None) -> None:
        path = self.finetune_config(track, view, fold)
        argv = ["finetune", "--config", str(path), *self.cfg.finetune_overrides]
        label = f"{track}/{view}" + ("" if fold is None else f" fold{fold}")
        outputs = [self.finetune_dir(track, view, fold) / "model.safetensors"]
        self.stage(f"finetune {label}", argv, distributed=True, outputs=outputs)

    def extract(self, fold: int | None = None) -> None:
        """Extract with the single models, or with fold model `fold` on the videos it never saw."""
        suffix = "" if fold is None else f"_fold{fold}"
        models = [
            {
                "track": t,
                "folder": str(self.run_dir / "finetune" / f"{t}_{{view}}{suffix}"),
                "checkpoint": self.cfg.finetune_checkpoint,
            }
            for t in self.cfg.tracks
        ]
        updates = {
            **self._common(),
            "views": list(self.cfg.views),
            "models": models,
            "out": str(self.features_dir if fold is None else self.fold_features_dir(fold)),
        }
        if fold is not None:
            updates.update(held_out_fold=fold, folds=self.cfg.finetune_folds)
        path = derive_config(self.cfg.extract_config, updates, self.configs / f"extract{suffix}.yaml")
        argv = ["extract", "--config", str(path), *self.cfg.extract_overrides]
        out = self.features_dir if fold is None else self.fold_features_dir(fold)
        name = "extract" if fold is None else f"extract fold{fold}"
        self.stage(name, argv, distributed=True, outputs=[out])

    def fold_features_dir(self, fold: int) -> Path:
        return self.run_dir / "features_folds" / f"fold{fold}"

    def merge_features(self) -> None:
        sources = [str(self.fold_features_dir(f)) for f in range(self.cfg.finetune_folds)]
        argv = ["merge-features", "--out", str(self.features_dir), *sources]
        self.stage("merge-features", argv, outputs=[self.features_dir])

    def heads(self, head: str, track: str) -> None:
        updates = {
            **self._common(),
            "head": head,
            "features_root": str(self.features_dir),
            "feature_sets": [f"{track}/{view}" for view in self.cfg.views],
            "inputs": self.cfg.heads_inputs,
            "folds": self.cfg.folds,
            "seed": self.cfg.seed,
            "out": str(self.heads_dir(head, track)),
        }
        if head in self.cfg.heads_extra_train:
            updates["extra_train_tracks"] = list(self.cfg.tracks)
        base = self.cfg.heads_config.format(head=head)
        overrides = [*self.cfg.head_overrides.get(head, []), *self.cfg.heads_overrides]
        path = derive_config(base, updates, self.configs / f"heads_{head}_{track}.yaml", overrides)
        if self.cfg.notebooks:
            notebook = HEAD_NOTEBOOKS[head]
            executed = self.notebooks_dir / f"{Path(notebook).stem}_{track}.ipynb"
            argv = self.notebook_argv(notebook, executed, path)
        else:
            argv = ["heads", "train", "--config", str(path)]
        outputs = [self.heads_dir(head, track) / "metrics.json"]
        self.stage(f"heads {head}/{track}", argv, outputs=outputs)

    def notebook_argv(self, notebook: str, executed: Path, config: Path) -> list[str]:
        """`ndar notebooks` running `notebook` on the stage's resolved config, its copy saved as `executed`."""
        return [
            "notebooks",
            "--notebook",
            str(REPO / notebook),
            "--executed",
            str(executed),
            "-p",
            "config_path",
            str(config),
        ]

    def ensemble(self) -> None:
        sources = [
            {"name": f"{head}_{track}", "kind": "head", "path": str(self.heads_dir(head, track))}
            for head in self.cfg.heads
            for track in self.cfg.tracks
        ]
        updates = {
            **self._common(),
            "run_name": self.cfg.name,
            "out_dir": str(self.cfg.submissions_dir),
            "sources": sources,
            "features_root": str(self.features_dir),
            "feature_sets": [f"{t}/{v}" for t in self.cfg.tracks for v in self.cfg.views],
            "stacker.folds": self.cfg.folds,
            "seed": self.cfg.seed,
        }
        if self.ground_truth is not None:
            updates["a2_ground_truth"] = str(self.ground_truth)
        path = derive_config(
            self.cfg.ensemble_config, updates, self.configs / "ensemble.yaml", self.cfg.ensemble_overrides
        )
        if self.cfg.notebooks:
            executed = self.notebooks_dir / Path(ENSEMBLE_NOTEBOOK).name
            argv = self.notebook_argv(ENSEMBLE_NOTEBOOK, executed, path)
        else:
            argv = ["ensemble", "--config", str(path)]
        outputs = [self.submission_dir / "submission.txt", self.submission_dir / "metrics.json"]
        self.stage("ensemble", argv, outputs=outputs)

    # ------------------------------------------------------------------ the whole job
    def run(self) -> dict:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")
        start = self.clock = time.perf_counter()
        log.info("main job '%s': %d stages, logs in %s", cfg.name, len(self.planned), self.logs)
        if cfg.data_root is None:
            self.in_order(self.synth)
        self.check_data()
        if cfg.baseline:
            self.in_order(self.baseline)
        if cfg.clip_cache:  # before the fine-tunes, which may run together and share a cache
            for track in cfg.tracks:  # one at a time: each uses every core it is given
                for view in cfg.views:
                    self.in_order(lambda t=track, v=view: self.cache_clips(t, v))
        self.run_together(
            [
                lambda t=track, v=view, f=fold: self.finetune(t, v, f)
                for track in cfg.tracks
                for view in cfg.views
                for fold in self.fold_models
            ]
        )
        if cfg.finetune_folds:
            for fold in self.fold_models:  # one at a time: extraction uses every core itself
                self.in_order(lambda f=fold: self.extract(f))
            self.in_order(self.merge_features)
        else:
            self.in_order(self.extract)
        self.run_together(
            [lambda h=head, t=track: self.heads(h, t) for head in cfg.heads for track in cfg.tracks]
        )
        self.in_order(self.ensemble)
        self.finish_report()
        summary = self.summary(time.perf_counter() - start)
        write_json(self.run_dir / "pipeline.json", summary)
        return summary

    def in_order(self, stage: Callable[[], None]) -> None:
        """Run one stage as a group of its own (see `upstream_ran`)."""
        self.run_together([stage])

    def finish_report(self) -> None:
        """Add the baseline row, the stage timings and the heads' training curves to report.html."""
        from ndar.ensemble.report import add_main_job

        report = self.submission_dir / "report.html"
        if not report.is_file():
            return
        baseline = self.run_dir / "baseline" / "metrics.json"
        heads = {
            f"{head} {track}": self.heads_dir(head, track)
            for head in self.cfg.heads
            for track in self.cfg.tracks
        }
        timings = {name: self.timings[name] for name in self.planned if name in self.timings}
        add_main_job(report, read_json(baseline) if baseline.is_file() else None, timings, heads)

    def run_together(self, stages: list[Callable[[], None]]) -> None:
        """Run independent stages, `cfg.jobs` at a time, in the order given.

        Every stage runs to its end even when another fails (its work is kept for the resume); then
        the first failure is raised, naming its stage.
        """
        self.group_ran = False
        try:
            if self.cfg.jobs <= 1 or len(stages) == 1:
                for stage in stages:
                    stage()
                return
            with ThreadPoolExecutor(self.cfg.jobs, thread_name_prefix="ndar-stage") as pool:
                futures = [pool.submit(stage) for stage in stages]
                errors = [f.exception() for f in futures]  # waits for every stage
            failed = [e for e in errors if e is not None]
            if failed:
                raise failed[0]
        finally:
            self.upstream_ran = self.upstream_ran or self.group_ran

    def summary(self, seconds: float) -> dict:
        out: dict = {"run": self.cfg.name, "seconds": round(seconds, 1), "stages": {}}
        # a skipped stage keeps the time it took when it ran, so this file always describes the work
        out["stages"] = {k: round(v, 1) for k, v in self.timings.items()}
        out["skipped"] = list(self.skipped)
        report = self.submission_dir / "metrics.json"
        if report.is_file():
            out["ensemble"] = read_json(report)
        baseline = self.run_dir / "baseline" / "metrics.json"
        if baseline.is_file():
            out["baseline"] = read_json(baseline)
        out["submission"] = str(self.submission_dir / "submission.txt")
        out["report"] = str(self.submission_dir / "report.html")
        return out


def check_config(cfg: MainConfig) -> None:
    """Refuse settings that would run for minutes and then mislead: checked before any stage starts."""
    if cfg.finetune_folds == 1 or cfg.finetune_folds < 0:
        raise StageError(f"finetune_folds={cfg.finetune_folds}: use 0 (one model) or k >= 2 fold models")
    if cfg.jobs < 1:
        raise StageError(f"jobs={cfg.jobs}: expected 1 (one stage at a time) or more")
    if cfg.jobs > 1 and cfg.nproc > 1:
        raise StageError(
            f"jobs={cfg.jobs} with nproc={cfg.nproc}: torchrun stages would share one rendezvous "
            "port; run them one at a time (jobs: 1)"
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


def run(cfg: MainConfig) -> dict:
    """Run the main job; returns the summary also written to runs/<name>/pipeline.json."""
    check_config(cfg)
    setup_logging(cfg.runs_dir / cfg.name / "pipeline.log")
    return MainJob(cfg).run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="YAML for MainConfig (configs/main/synthetic.yaml: the demo)"
    )
    parser.add_argument(
        "--no-notebooks",
        action="store_true",
        help="run the heads and the ensemble through the package, not their notebooks (notebooks=false)",
    )
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. name=try2 synth.drivers=4")


def main(args: argparse.Namespace) -> int:
    cfg = load_config(MainConfig, args.config, args.overrides)
    if args.no_notebooks:
        cfg.notebooks = False
    try:
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
