"""The simple baseline: per-second frame statistics + scikit-learn -> one segment per class."""

from ndar.baseline.config import BaselineConfig
from ndar.baseline.run import run

__all__ = ["BaselineConfig", "run"]
