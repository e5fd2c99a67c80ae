"""The one rule for starting a stage again over its own output folder.

Every stage records the settings its outputs were made with (its resolved config). Started again:
- same settings and the outputs are complete -> skip (re-running the main job resumes it), as long
  as the files they were made from are unchanged: the heads record a digest of their feature files
  in each fold's fold.json, the ensemble one of its sources' predictions and feature files in
  done.json, a built feature-set source one in its source.json; a different digest redoes that
  work (features re-merged or re-extracted, heads retrained, all with unchanged settings);
- other settings -> refuse, listing each `key: old -> new`, so outputs made one way are never
  silently mixed with, or replaced by, outputs made another way;
- `overwrite=true` -> redo with the new settings.
Keys that do not change what is computed (the output folder itself, worker counts, `overwrite`) are
left out of the comparison by each stage. Fine-tuning and the heads resume part-finished work
(checkpoints, fold models) and apply the same rule with their own markers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from ndar.config import describe_changes, dict_changes, to_dict

log = logging.getLogger(__name__)


class SettingsChanged(ValueError):
    """The output folder holds results made with other settings, and `overwrite` is not set."""


def saved_settings(path: Path) -> dict | None:
    """The settings recorded in a YAML config file, or None when there is none."""
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None


def should_skip(
    stage: str,
    out: Path,
    cfg: Any,
    saved: dict | None,
    complete: bool,
    overwrite: bool,
    ignore: tuple[str, ...] = ("overwrite",),
) -> bool:
    """True when `out` already holds complete outputs of these settings (the stage has nothing to do);
    False when the stage must run (nothing there, an unfinished run of the same settings, or
    `overwrite`). Raises `SettingsChanged` when `out` holds outputs of other settings.

    `saved` is the recorded settings of the outputs in `out` (None: no outputs); `cfg` is compared
    through `to_dict`, leaving out the dotted keys in `ignore`."""
    if saved is None:
        return False
    changes = refuse_other_settings(stage, out, cfg, saved, overwrite, ignore)
    if overwrite:
        if changes or complete:
            log.info("%s: overwrite=true: redoing %s", stage, out)
        return False
    if complete:
        log.info("%s: %s is complete for these settings; skipped (overwrite=true redoes it)", stage, out)
    return complete


def refuse_other_settings(
    stage: str, out: Path, cfg: Any, saved: dict, overwrite: bool, ignore: tuple[str, ...] = ("overwrite",)
) -> list[str]:
    """The `key: old -> new` changes from `saved` to `cfg`; raises `SettingsChanged` listing them
    unless `overwrite`. For stages that resume part-finished work (the heads' fold models) and decide
    themselves what is complete."""
    changes = dict_changes(saved, to_dict(cfg), ignore)
    if changes and not overwrite:
        raise SettingsChanged(
            f"{stage}: {out} holds outputs made with other settings ({describe_changes(changes)}): "
            "pass overwrite=true to redo them with the new ones, or choose another output folder"
        )
    return changes
