from pathlib import Path

import pandas as pd
import pytest

from ndar.config import load_config
from ndar.heads.actionformer import ActionFormerConfig, ActionFormerHead
from ndar.heads.config import HeadsConfig, head_config
from ndar.heads.logs import TrainLog
from ndar.heads.runner import resolved

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "heads").glob("actionformer*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_actionformer_configs_load_and_build(path):
    cfg = load_config(HeadsConfig, path)
    assert cfg.head == "actionformer"
    af = head_config(cfg)
    assert isinstance(af, ActionFormerConfig) and len(af.regression_ranges) == af.levels
    assert resolved(cfg)["actionformer"]["embed_dim"] == af.embed_dim
    if "tiny" in path.name:  # building the real-scale model is left to the GPU
        head = ActionFormerHead(af, {"rear": 16, "dashboard": 16}, seed=0)
        assert sum(p.numel() for p in head.model.parameters()) < 500_000  # 64 wide: about 0.4 M


def test_train_log_keeps_columns_first_seen_later(tmp_path):
    with TrainLog(tmp_path, tensorboard=True) as log:
        log.log(0, loss=1.0)
        log.log(1, loss=0.5, val_loss=0.7)
    with TrainLog(tmp_path, tensorboard=False) as log:  # a resumed run appends
        log.log(2, loss=0.4)
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert table["epoch"].tolist() == [0, 1, 2] and table["val_loss"].isna().tolist() == [True, False, True]
    assert list((tmp_path / "tb").iterdir())
