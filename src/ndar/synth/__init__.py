"""The synthetic dataset: a rendered driver in a car, three camera views, the official layout."""

from ndar.synth.config import MAIN_JOB_ARGS, SynthConfig
from ndar.synth.generate import generate

__all__ = ["MAIN_JOB_ARGS", "SynthConfig", "generate"]
