"""Streaming feature extraction: each video decoded once, every fine-tuned backbone of its view run on it.

`run(ExtractConfig) -> dict` (the summary) is the entry point; `python -m ndar extract` wraps it.
"""

from ndar.extract.config import ExtractConfig, ModelEntry
from ndar.extract.runner import run

__all__ = ["ExtractConfig", "ModelEntry", "run"]
