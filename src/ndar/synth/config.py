"""`SynthConfig`: what `python -m ndar synth` writes and how hard it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ndar.config import ConfigError

X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)  # fmt: skip


@dataclass
class SynthConfig:
    """Synthetic dataset settings. Same settings and seed -> byte-identical files."""

    out: Path = Path("data/synthetic")  # dataset root (A1/, A2/, A2_ground_truth.txt, synth.json)
    drivers: int = 8  # training drivers (A1)
    test_drivers: int | None = None  # test drivers (A2); default max(1, drivers // 4)
    seed: int = 0
    fps: float = 30.0
    width: int = 160
    height: int = 120
    time_scale: float = 1.0  # multiplies activity durations and gaps (0.25 -> ~2 min videos)
    views: list[str] = field(default_factory=lambda: ["dashboard", "rear", "right"])
    gop: int = 30  # key frame every `gop` frames (fixed, no scene cuts)
    crf: int = 26  # x264 constant rate factor
    preset: str = "ultrafast"  # x264 preset (the encoder is most of the generation time)
    workers: int = 2  # processes rendering sessions in parallel
    min_activity_s: int = 2  # shortest activity after time scaling (labels are whole seconds)
    min_gap_s: int = 2  # shortest normal-driving gap after time scaling
    # difficulty (calibrated so the simple baseline lands at a middling mOS; see docs/synth.md)
    noise: float = 4.0  # luma noise amplitude (grey levels, uniform +-noise)
    lighting: float = 0.08  # std of slow brightness changes
    occlusion_rate: float = 1.5  # brief lens occlusions per minute per view
    camera_jitter: float = 0.03  # per-session camera pose change (metres)
    shake_px: float = 0.7  # per-frame camera shake (pixels, std)
    distractor_rate: float = 1.0  # weak look-alike motions per 10 s of normal driving
    amp_low: float = 0.6  # per driver and class: activity amplitude drawn from [amp_low, amp_high]
    amp_high: float = 1.1
    overwrite: bool = False  # replace a dataset of other settings in `out` (else refused)

    @property
    def n_test_drivers(self) -> int:
        return self.test_drivers if self.test_drivers is not None else max(1, self.drivers // 4)

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the field when a setting cannot produce a valid dataset."""
        from ndar.taxonomy import VIEWS

        if self.drivers < 1:
            raise ConfigError(f"synth: drivers must be >= 1, got {self.drivers}")
        if self.n_test_drivers < 1:
            raise ConfigError(f"synth: test_drivers must be >= 1, got {self.test_drivers}")
        if self.fps <= 0:
            raise ConfigError(f"synth: fps must be > 0, got {self.fps}")
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 32:
            raise ConfigError(f"synth: size must be even and at least 32 px, got {self.width}x{self.height}")
        if self.time_scale <= 0:
            raise ConfigError(f"synth: time_scale must be > 0, got {self.time_scale}")
        bad = [v for v in self.views if v not in VIEWS]
        if bad or not self.views:
            raise ConfigError(f"synth: views must be a non-empty subset of {list(VIEWS)}, got {self.views}")
        if self.gop < 1:
            raise ConfigError(f"synth: gop must be >= 1, got {self.gop}")
        self._validate_encoder_and_motion()

    def _validate_encoder_and_motion(self) -> None:
        """Why before rendering: x264 clamps a crf above 51 silently, and refuses a preset only inside a
        worker, after the run has recorded its settings in `out`."""
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"synth: crf must be in 0..51 (x264), got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"synth: preset must be one of {list(X264_PRESETS)}, got {self.preset!r}")
        if self.min_activity_s < 1:
            raise ConfigError(f"synth: min_activity_s must be >= 1, got {self.min_activity_s}")
        if not 0 <= self.amp_low <= self.amp_high:
            raise ConfigError(f"synth: need 0 <= amp_low <= amp_high, got {self.amp_low} and {self.amp_high}")


@dataclass
class MainJobSynthConfig(SynthConfig):
    """The main job's dataset: `SynthConfig` with these defaults, the one place they are written (the
    main job's `synth` section is this class, so its YAML sets only what differs; the benches pass it
    as arguments, `MAIN_JOB_ARGS`). Measured in bench/results/synth.md: generates in under 60 s on 2
    cores."""

    test_drivers: int | None = 2
    fps: float = 10.0
    time_scale: float = 0.25


def as_args(settings: dict) -> list[str]:
    """`python -m ndar synth` arguments for these SynthConfig fields (width/height as --size)."""
    args: list[str] = []
    for key, value in settings.items():
        if key not in ("width", "height"):
            args += [f"--{key.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    if "width" in settings:
        args += ["--size", f"{settings['width']}x{settings['height']}"]
    return args


MAIN_JOB_ARGS = as_args(
    {
        k: getattr(MainJobSynthConfig(), k)
        for k in ("drivers", "test_drivers", "fps", "width", "height", "time_scale")
    }
)
