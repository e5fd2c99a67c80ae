"""Where a run's folders and files live: the one place their names are spelled.

The main job, the stage config defaults and the shell scripts all take their paths from here
(the scripts through `python -m ndar layout ...`), so renaming a folder is one edit and a
stage run by hand writes where the main job would read.

    runs/<name>/
      config.yaml  pipeline.json  pipeline.log
      configs/  logs/  stages/  notebooks/          derived configs, stage logs, stage records, notebooks
      baseline/  clipcache/<track>/
      finetune/<track>_<view>[_fold<k>]/
      features/<track>/<view>/  features_folds/fold<k>/
      heads/<head>_<track>/
    submissions/<name>/submission.txt  metrics.json  report.html
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ndar.taxonomy import VIEWS

RUNS_DIR = Path("runs")
SUBMISSIONS_DIR = Path("submissions")


def model_name(track: str, view: str, fold: int | None = None) -> str:
    """`<track>_<view>[_fold<k>]`: one fine-tuned model's folder name (fold None: trained on all A1)."""
    return f"{track}_{view}" + ("" if fold is None else f"_fold{fold}")


def stage_slug(stage: str) -> str:
    """A stage's name as a file stem: 'finetune k400_vith/rear fold0' -> 'finetune_k400_vith_rear_fold0'."""
    return stage.replace(" ", "_").replace("/", "_")


@dataclass(frozen=True)
class RunLayout:
    """The folders of one run; `run_dir` is runs/<name> (or any folder a stage is run in by hand)."""

    run_dir: Path
    submission_dir: Path

    @classmethod
    def of(cls, name: str, runs_dir: Path = RUNS_DIR, submissions_dir: Path = SUBMISSIONS_DIR) -> RunLayout:
        return cls(Path(runs_dir) / name, Path(submissions_dir) / name)

    # ---------------------------------------------------------------- bookkeeping of the main job
    @property
    def config(self) -> Path:
        return self.run_dir / "config.yaml"

    @property
    def summary(self) -> Path:
        return self.run_dir / "pipeline.json"

    @property
    def log(self) -> Path:
        return self.run_dir / "pipeline.log"

    @property
    def configs(self) -> Path:
        return self.run_dir / "configs"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def stages(self) -> Path:
        return self.run_dir / "stages"

    @property
    def notebooks(self) -> Path:
        return self.run_dir / "notebooks"

    def derived_config(self, stem: str) -> Path:
        return self.configs / f"{stem}.yaml"

    def stage_log(self, stage: str) -> Path:
        return self.logs / f"{stage_slug(stage)}.log"

    def stage_record(self, stage: str) -> Path:
        return self.stages / f"{stage_slug(stage)}.json"

    # ---------------------------------------------------------------- stage outputs
    @property
    def baseline(self) -> Path:
        return self.run_dir / "baseline"

    def clipcache(self, track: str | None = None) -> Path:
        return self.run_dir / "clipcache" / (track or "")

    def clipcache_manifest(self, track: str, view: str) -> Path:
        """Written last by `cache-clips` (`ndar.clipcache.store.MANIFEST`): the view's cache is built."""
        from ndar.taxonomy import canonical_view

        return self.clipcache(track) / canonical_view(view) / "cache.json"

    def finetune(self, track: str, view: str, fold: int | None = None) -> Path:
        return self.run_dir / "finetune" / model_name(track, view, fold)

    @property
    def features(self) -> Path:
        """<features>/<track>/<view>/<video_stem>.npz"""
        return self.run_dir / "features"

    def fold_features(self, fold: int) -> Path:
        return self.run_dir / "features_folds" / f"fold{fold}"

    def heads(self, head: str, track: str | None = None) -> Path:
        return self.run_dir / "heads" / (head if track is None else f"{head}_{track}")

    @property
    def submission(self) -> Path:
        return self.submission_dir / "submission.txt"

    @property
    def submission_metrics(self) -> Path:
        return self.submission_dir / "metrics.json"

    @property
    def report(self) -> Path:
        return self.submission_dir / "report.html"


# A stage run by hand, outside the main job, writes under runs/ directly (runs/features, ...).
STANDALONE = RunLayout(RUNS_DIR, SUBMISSIONS_DIR)


# ---------------------------------------------------------------------- `python -m ndar layout`
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True)
    ft = sub.add_parser("finetune-dir", help="a fine-tuned model's folder: <root>/<track>_<view>[_fold<k>]")
    ft.add_argument("--track", required=True)
    ft.add_argument("--view", required=True, choices=VIEWS, help="a camera view: " + ", ".join(VIEWS))
    ft.add_argument("--fold", type=int, default=-1, help="held-out fold; -1: trained on all of A1")
    ft.add_argument(
        "--root", type=Path, default=None, help="folder of the models (default: runs/<name>/finetune)"
    )
    ft.add_argument("--name", default=None, help="run name (default: standalone, runs/finetune)")
    for what in ("features-dir", "run-dir"):
        p = sub.add_parser(what, help=f"a run's {what[:-4]} folder")
        p.add_argument("--name", default=None, help="run name (default: standalone, runs/)")


def _layout(name: str | None) -> RunLayout:
    return STANDALONE if name is None else RunLayout.of(name)


def main(args: argparse.Namespace) -> int:
    if args.what == "finetune-dir":
        fold = None if args.fold < 0 else args.fold
        if args.root is not None:
            print(args.root / model_name(args.track, args.view, fold))
        else:
            print(_layout(args.name).finetune(args.track, args.view, fold))
    elif args.what == "features-dir":
        print(_layout(args.name).features)
    else:
        print(_layout(args.name).run_dir)
    return 0
