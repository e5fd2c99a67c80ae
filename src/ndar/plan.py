"""The main job as data: stage groups, each stage with its command, derived config and files.

`build_plan(cfg)` only reads (base configs, the layout); it writes nothing, so `ndar run --dry-run`
can print it and the tests can assert on it. Every derived stage config is loaded here with the
same loader a user's config goes through (`ndar.config.load_config` into the stage's dataclass),
so a wrong key or value in a base config or an override fails before the first stage starts, not
an hour later. `ndar.executor` runs a plan.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ndar.config import ConfigError, load_config, to_dict
from ndar.layout import RunLayout

if TYPE_CHECKING:
    from ndar.pipeline import MainConfig

REPO = Path(__file__).resolve().parents[2]
HEAD_NOTEBOOKS = {"tim": "notebooks/10_tim.ipynb", "actionformer": "notebooks/20_actionformer.ipynb"}
ENSEMBLE_NOTEBOOK = "notebooks/30_ensemble.ipynb"

# stage command -> the dataclass its `--config` is loaded into by that stage's own CLI
STAGE_CONFIGS = {
    "baseline": ("ndar.baseline.config", "BaselineConfig"),
    "finetune": ("ndar.finetune.config", "FinetuneConfig"),
    "extract": ("ndar.extract.config", "ExtractConfig"),
    "heads": ("ndar.heads.config", "HeadsConfig"),
    "ensemble": ("ndar.ensemble.config", "EnsembleConfig"),
}
# stage command -> a check its CLI makes on the loaded config beyond the dataclass (a heads run
# builds its head's typed config from an untyped section)
STAGE_CHECKS = {"heads": ("ndar.heads.config", "head_config")}


@dataclass
class DerivedConfig:
    """A stage's resolved config: its base YAML, the main job's settings and overrides applied."""

    path: Path  # where the executor writes it (runs/<name>/configs/<stem>.yaml)
    base: Path
    data: dict  # every key of the stage's dataclass, as loaded

    def text(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False)


@dataclass
class Stage:
    name: str  # e.g. "finetune k400_vith/rear"
    argv: list[str]  # arguments after `python -m ndar`
    log_file: Path
    distributed: bool = False  # launch through torchrun when nproc > 1
    nproc: int = 0  # torchrun processes of this stage (0: the main job's nproc)
    outputs: list[Path] = field(default_factory=list)  # what it leaves when done (empty: always run)
    inputs: list[Path] = field(default_factory=list)  # what it reads (made by the user or earlier stages)
    config: DerivedConfig | None = None
    more_configs: list[DerivedConfig] = field(default_factory=list)  # a stage reading several configs

    def launcher(self, job_nproc: int = 1) -> list[str]:
        """The command before the stage's argv: torchrun for a distributed stage with several processes
        (`--standalone`: a free rendezvous port of its own), else `python -m ndar`."""
        nproc = self.nproc or job_nproc
        if self.distributed and nproc > 1:
            return [
                "python",
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={nproc}",
                "-m",
                "ndar",
            ]
        return ["python", "-m", "ndar"]

    @property
    def configs(self) -> list[DerivedConfig]:
        """Every config the stage reads: the executor writes them all before it runs."""
        return ([self.config] if self.config is not None else []) + self.more_configs


@dataclass
class StageGroup:
    """Stages run as one step: `together` ones are independent (run `jobs` at a time)."""

    name: str
    stages: list[Stage]
    together: bool = False


@dataclass
class Plan:
    layout: RunLayout
    groups: list[StageGroup]
    heads_runs: dict[str, Path]  # "<head> <track>" -> its heads folder (for the report)

    @property
    def stages(self) -> list[Stage]:
        return [s for g in self.groups for s in g.stages]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def _resolve(entry: tuple[str, str]):
    module, name = entry
    return getattr(importlib.import_module(module), name)


def load_stage_config(command: str, base: str | Path, overrides: list[str]):
    """`command`'s config as its CLI loads it: `load_config` into its dataclass, plus its own check."""
    cfg = load_config(_resolve(STAGE_CONFIGS[command]), base, overrides)
    if command in STAGE_CHECKS:
        _resolve(STAGE_CHECKS[command])(cfg)
    return cfg


def derive_config(
    command: str,
    base: str | Path,
    updates: dict,
    out: Path,
    overrides: list[str] | tuple[str, ...] = (),
    argv_overrides: list[str] | tuple[str, ...] = (),
) -> DerivedConfig:
    """Load `base` into `command`'s dataclass with `updates` (the main job's settings) then
    `overrides` applied, as `load_config` would for a user; `argv_overrides` (given on the stage's
    command line, not written) are checked with them. A failure names the stage's config."""
    settings = [f"{key}={json.dumps(to_dict(value))}" for key, value in updates.items()]
    try:
        cfg = load_stage_config(command, base, [*settings, *overrides])
        if argv_overrides:
            load_stage_config(command, base, [*settings, *overrides, *argv_overrides])
    except ConfigError as err:
        raise ConfigError(f"derived config {out.name} (from {base}): {err}") from None
    return DerivedConfig(Path(out), Path(base), to_dict(cfg))


def build_plan(cfg: MainConfig) -> Plan:
    """Every stage of the main job, in order, grouped as they run."""
    return _Planner(cfg).plan()


class _Planner:
    """Folders, commands and derived configs of one main-job run."""

    def __init__(self, cfg: MainConfig) -> None:
        self.cfg = cfg
        self.layout = RunLayout.of(cfg.name, cfg.runs_dir, cfg.submissions_dir)
        self.data_root = cfg.data_root or cfg.synth.out
        self.folds = list(range(cfg.finetune_folds)) if cfg.finetune_folds else [None]

    def plan(self) -> Plan:
        cfg, groups = self.cfg, []
        if cfg.data_root is None:
            groups.append(StageGroup("synth", [self.synth()]))
        groups.append(StageGroup("check-data", [self.check_data()]))
        if cfg.baseline:
            groups.append(StageGroup("baseline", [self.baseline()]))
        if cfg.clip_cache:  # before the fine-tunes, which may run together and share a cache;
            # one stage per view, `jobs` at a time when each is one process, else one at a time
            single = cfg.clip_cache_workers == 1
            groups.append(StageGroup("cache-clips", self.cache_clips_all(), together=single))
        finetunes = [self.finetune(t, v, f) for t in cfg.tracks for v in cfg.views for f in self.folds]
        groups.append(StageGroup("finetune", finetunes, together=True))
        if cfg.finetune_folds:  # one at a time: extraction uses every core itself
            groups += [StageGroup(f"extract fold{f}", [self.extract(f)]) for f in self.folds]
            groups.append(StageGroup("merge-features", [self.merge_features()]))
        else:
            groups.append(StageGroup("extract", [self.extract(None)]))
        heads = [self.heads(h, t) for h in cfg.heads for t in cfg.tracks]
        groups.append(StageGroup("heads", heads, together=True))
        groups.append(StageGroup("ensemble", [self.ensemble()]))
        runs = {f"{h} {t}": self.layout.heads(h, t) for h in cfg.heads for t in cfg.tracks}
        return Plan(self.layout, groups, runs)

    def stage(self, name: str, argv: list[str], **kw) -> Stage:
        return Stage(name, argv, self.layout.stage_log(name), **kw)

    @property
    def ground_truth(self) -> Path | None:
        if self.cfg.ground_truth is not None:
            return self.cfg.ground_truth
        if self.cfg.data_root is None:
            return self.cfg.synth.out / "A2_ground_truth.txt"
        return None

    def common(self) -> dict:
        common = {"data_root": str(self.data_root)}
        if self.cfg.labels_dir is not None:
            common["labels_dir"] = str(self.cfg.labels_dir)
        return common

    # ------------------------------------------------------------------ data
    def synth(self) -> Stage:
        """Every dataset setting goes through a config file; synth itself keeps an identical dataset."""
        s = self.cfg.synth
        out = self.layout.derived_config("synth")
        config = DerivedConfig(out, Path("(main job: synth section)"), to_dict(s))
        argv = ["synth", "--config", str(out)]
        return self.stage("synth", argv, outputs=[s.out / "synth.json"], config=config)

    def check_data(self) -> Stage:
        argv = ["check-data", str(self.data_root), "--split", "all"]
        if self.cfg.labels_dir is not None:
            argv += ["--labels", str(self.cfg.labels_dir)]
        return self.stage("check-data", argv, inputs=[self.data_root])

    def baseline(self) -> Stage:
        # the baseline's A1 out-of-fold score uses the heads' k folds by driver (same sessions held out)
        updates = {**self.common(), "out": str(self.layout.baseline), "oof_folds": self.cfg.folds}
        if self.ground_truth is not None:
            updates["ground_truth"] = str(self.ground_truth)
        out = self.layout.derived_config("baseline")
        config = derive_config("baseline", self.cfg.baseline_config, updates, out)
        outputs = [self.layout.baseline / "metrics.json"]
        argv = ["baseline", "--config", str(out)]
        return self.stage("baseline", argv, outputs=outputs, inputs=[self.data_root], config=config)

    # ------------------------------------------------------------------ backbones
    def finetune_config(self, track: str, view: str, fold: int | None) -> DerivedConfig:
        """The derived fine-tuning config of one model."""
        cfg, per_fold = self.cfg, fold is not None
        updates = {
            "data.root": str(self.data_root),
            "data.view": view,
            "data.k": cfg.finetune_folds if per_fold else cfg.folds,
            "data.fold": fold if per_fold else cfg.finetune_fold,
            "output": str(self.layout.finetune(track, view, fold)),
            "train.seed": cfg.seed,
        }
        if track in cfg.pretrained:
            updates["model.pretrained"] = cfg.pretrained[track]
        if cfg.clip_cache:
            updates.update({"data.cache_dir": str(self.layout.clipcache(track)), "data.cache": False})
        out = self.layout.derived_config(f"finetune_{self.layout.finetune(track, view, fold).name}")
        base = cfg.finetune_config.format(track=track)
        return derive_config("finetune", base, updates, out, argv_overrides=cfg.finetune_overrides)

    def cache_clips_all(self) -> list[Stage]:
        """The clip caches of each view, one per track (all its fold models read it: folds do not
        change clips), built in one stage that decodes each video once for every track."""
        stages = []
        for view in self.cfg.views:
            configs = [self.finetune_config(track, view, self.folds[0]) for track in self.cfg.tracks]
            argv = ["cache-clips", "--from-finetune", *(str(c.path) for c in configs)]
            argv += ["--workers", str(self.cfg.clip_cache_workers), *self.cfg.finetune_overrides]
            outputs = [self.layout.clipcache_manifest(track, view) for track in self.cfg.tracks]
            stages.append(
                self.stage(
                    f"cache-clips {view}",
                    argv,
                    inputs=[self.data_root],
                    outputs=outputs,
                    config=configs[0],
                    more_configs=configs[1:],
                )  # fmt: skip
            )
        return stages

    def finetune(self, track: str, view: str, fold: int | None) -> Stage:
        config = self.finetune_config(track, view, fold)
        argv = ["finetune", "--config", str(config.path), *self.cfg.finetune_overrides]
        label = f"{track}/{view}" + ("" if fold is None else f" fold{fold}")
        outputs = [self.layout.finetune(track, view, fold) / "model.safetensors"]
        inputs = [self.data_root] + ([self.layout.clipcache(track)] if self.cfg.clip_cache else [])
        inputs += [Path(self.cfg.pretrained[track])] if track in self.cfg.pretrained else []
        return self.stage(
            f"finetune {label}", argv, distributed=True, outputs=outputs, inputs=inputs, config=config
        )

    def extract(self, fold: int | None) -> Stage:
        """Extract with the single models, or with fold model `fold` on the videos it never saw."""
        cfg, layout = self.cfg, self.layout
        # the extract config names each model's folder with a {view} placeholder
        models = [
            {
                "track": t,
                "folder": str(layout.finetune(t, "{view}", fold)),
                "checkpoint": cfg.finetune_checkpoint,
            }
            for t in cfg.tracks
        ]
        out = layout.features if fold is None else layout.fold_features(fold)
        updates = {**self.common(), "views": list(cfg.views), "models": models, "out": str(out)}
        if fold is not None:
            updates.update(held_out_fold=fold, folds=cfg.finetune_folds)
        stem = "extract" + ("" if fold is None else f"_fold{fold}")
        config = derive_config(
            "extract",
            cfg.extract_config,
            updates,
            layout.derived_config(stem),
            argv_overrides=cfg.extract_overrides,
        )
        argv = ["extract", "--config", str(config.path), *cfg.extract_overrides]
        name = "extract" if fold is None else f"extract fold{fold}"
        inputs = [self.data_root] + [layout.finetune(t, v, fold) for t in cfg.tracks for v in cfg.views]
        return self.stage(
            name, argv, distributed=True, nproc=cfg.extract_nproc, outputs=[out], inputs=inputs, config=config
        )

    def merge_features(self) -> Stage:
        sources = [self.layout.fold_features(f) for f in self.folds]
        argv = ["merge-features", "--out", str(self.layout.features), "--probs", self.cfg.merge_probs]
        argv += [str(s) for s in sources]
        return self.stage("merge-features", argv, outputs=[self.layout.features], inputs=sources)

    # ------------------------------------------------------------------ heads and ensemble
    def heads(self, head: str, track: str) -> Stage:
        cfg, layout = self.cfg, self.layout
        updates = {
            **self.common(),
            "head": head,
            "features_root": str(layout.features),
            "feature_sets": [f"{track}/{view}" for view in cfg.views],
            "inputs": cfg.heads_inputs,
            "folds": cfg.folds,
            "seed": cfg.seed,
            "out": str(layout.heads(head, track)),
            # the official cameras of one session stop a second or more apart (2024 A1: 16 of 138
            # sessions, three by minutes; A2: 3 of 30), so their windows differ in count at the end:
            # cut to the shortest view with a warning rather than fail after the extraction
            "trim_mismatch": True,
        }
        if head in cfg.heads_extra_train:
            updates["extra_train_tracks"] = list(cfg.tracks)
        overrides = [*cfg.head_overrides.get(head, []), *cfg.heads_overrides]
        out = layout.derived_config(f"heads_{head}_{track}")
        config = derive_config("heads", cfg.heads_config.format(head=head), updates, out, overrides)
        if cfg.notebooks:
            executed = layout.notebooks / f"{Path(HEAD_NOTEBOOKS[head]).stem}_{track}.ipynb"
            argv = notebook_argv(HEAD_NOTEBOOKS[head], executed, out)
        else:
            argv = ["heads", "train", "--config", str(out)]
        outputs = [layout.heads(head, track) / "metrics.json"]
        return self.stage(
            f"heads {head}/{track}", argv, outputs=outputs, inputs=[layout.features], config=config
        )

    def ensemble(self) -> Stage:
        cfg, layout = self.cfg, self.layout
        runs = [(h, t, layout.heads(h, t)) for h in cfg.heads for t in cfg.tracks]
        updates = {
            **self.common(),
            "run_name": cfg.name,
            "out_dir": str(cfg.submissions_dir),
            "sources": [{"name": f"{h}_{t}", "kind": "head", "path": str(p)} for h, t, p in runs],
            "features_root": str(layout.features),
            "feature_sets": [f"{t}/{v}" for t in cfg.tracks for v in cfg.views],
            "stacker.folds": cfg.folds,
            "seed": cfg.seed,
        }
        if self.ground_truth is not None:
            updates["a2_ground_truth"] = str(self.ground_truth)
        out = layout.derived_config("ensemble")
        config = derive_config("ensemble", cfg.ensemble_config, updates, out, cfg.ensemble_overrides)
        if cfg.notebooks:
            argv = notebook_argv(ENSEMBLE_NOTEBOOK, layout.notebooks / Path(ENSEMBLE_NOTEBOOK).name, out)
        else:
            argv = ["ensemble", "--config", str(out)]
        outputs = [layout.submission, layout.submission_metrics]
        inputs = [p for _, _, p in runs] + [layout.features]
        return self.stage("ensemble", argv, outputs=outputs, inputs=inputs, config=config)


def notebook_argv(notebook: str, executed: Path, config: Path) -> list[str]:
    """`ndar notebooks` running `notebook` on the stage's resolved config, its copy saved as `executed`."""
    return ["notebooks", "--notebook", str(REPO / notebook), "--executed", str(executed)] + [
        "-p",
        "config_path",
        str(config),
    ]


def describe(plan: Plan, jobs: int, nproc: int = 1) -> str:
    """The plan as a user reads it: each group, its stages' commands, configs and files."""
    lines = [
        f"main job: {len(plan.stages)} stages in {len(plan.groups)} groups, run folder {plan.layout.run_dir}"
    ]
    k = 0
    for group in plan.groups:
        if group.together and len(group.stages) > 1:
            lines.append(f"-- {group.name}: {len(group.stages)} independent stages, {jobs} at a time")
        for stage in group.stages:
            k += 1
            lines.append(f"[{k}/{len(plan.stages)}] {stage.name}")
            lines.append(f"    $ {' '.join(stage.launcher(nproc) + stage.argv)}")
            for config in stage.configs:
                lines.append(f"    config:   {config.path} (from {config.base})")
            if stage.inputs:
                lines.append(f"    consumes: {', '.join(map(str, stage.inputs))}")
            lines.append(f"    produces: {', '.join(map(str, stage.outputs)) or '(nothing: always run)'}")
    return "\n".join(lines)
