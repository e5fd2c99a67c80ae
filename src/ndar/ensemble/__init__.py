"""The ensemble stage: fuse prediction sources, tune post-processing on A1 OOF mOS, write the submission.

Entry points: `ndar.ensemble.run(EnsembleConfig)` (implemented in `ndar.ensemble.stage`), the
command `python -m ndar ensemble`, and `ndar.ensemble.sources.feature_set_source(...)`.
Imports are lazy so `import ndar.ensemble` stays cheap.
"""

from __future__ import annotations


def run(cfg):
    """Fuse, tune on A1 OOF mOS, write `<out_dir>/<run_name>/submission.txt` and reports (see `stage.run`)."""
    from ndar.ensemble.stage import run as run_stage

    return run_stage(cfg)
