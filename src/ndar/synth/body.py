"""A simple articulated driver: pose parameters per frame -> 3-D points per frame (vectorised).

Coordinates: metres, car frame, origin at the driver's hip point, x to the driver's right (towards
the passenger), y up, z forward (towards the windscreen). Every function works on whole sessions at
once: arrays are (T,) per parameter and (T, 3) per point, so rendering never recomputes kinematics.

Each class (1..15) is a `ClassMotion`: angle offsets, periodic components, a hand target (a body or
car anchor) and a prop. An activity's weight ramps smoothly in and out around its labelled start and
end; normal driving has its own small motions (steering, glances, mirror checks) and short, weak
"distractor" motions that resemble activities, so the classes are not trivially separable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ANGLES = ("torso_pitch", "torso_roll", "torso_yaw", "head_yaw", "head_pitch", "head_roll")


@dataclass(frozen=True)
class ClassMotion:
    """How one class moves the body (all angles in radians, added at full activity weight)."""

    angles: dict[str, float] = field(default_factory=dict)
    periodic: dict[str, tuple[float, float]] = field(default_factory=dict)  # param -> (amplitude, Hz)
    mouth: float = 0.0  # mouth opening held during the activity
    mouth_periodic: tuple[float, float] = (0.0, 0.0)  # (amplitude, Hz): talking, chewing, singing
    hand: str | None = None  # "r", "l", or "driver" (the driver's habit decides)
    target: str | None = None  # anchor name the hand goes to
    target_swing: str | None = None  # second anchor: the hand swings between the two (eating)
    swing_hz: float = 0.0
    poke: float = 0.0  # small periodic hand motion amplitude (metres): pressing, typing
    prop: str | None = None  # "cup", "phone", "phone_flat", "food"
    ramp_s: float = 0.8  # transition time in and out


# The generator's model of each class (documented in docs/synth.md).
MOTIONS: dict[int, ClassMotion] = {
    1: ClassMotion(angles={"head_pitch": -0.3}, hand="r", target="mouth", prop="cup"),
    2: ClassMotion(
        angles={"head_roll": 0.15}, mouth_periodic=(0.3, 3.0), hand="r", target="ear_r", prop="phone"
    ),
    3: ClassMotion(
        angles={"head_roll": -0.15}, mouth_periodic=(0.3, 3.0), hand="l", target="ear_l", prop="phone"
    ),
    4: ClassMotion(
        angles={"head_pitch": 0.05},
        mouth_periodic=(0.35, 2.0),
        hand="r",
        target="chest",
        target_swing="mouth",
        swing_hz=0.45,
        prop="food",
    ),
    5: ClassMotion(angles={"head_pitch": 0.5}, hand="r", target="lap_r", poke=0.015, prop="phone_flat"),
    6: ClassMotion(angles={"head_pitch": 0.5}, hand="l", target="lap_l", poke=0.015, prop="phone_flat"),
    7: ClassMotion(
        angles={"torso_yaw": 0.7, "torso_roll": 0.15, "head_yaw": 0.8}, hand="r", target="behind", ramp_s=1.0
    ),
    8: ClassMotion(angles={"head_yaw": 0.45, "head_pitch": 0.3}, hand="r", target="panel", poke=0.025),
    9: ClassMotion(
        angles={"torso_pitch": 0.7, "torso_roll": -0.35, "head_pitch": 0.4},
        hand="l",
        target="floor_l",
        ramp_s=1.0,
    ),
    10: ClassMotion(
        angles={"torso_pitch": 0.55, "torso_roll": 0.6, "head_yaw": 0.3, "head_pitch": 0.4},
        hand="r",
        target="floor_r",
        ramp_s=1.0,
    ),
    11: ClassMotion(angles={"head_yaw": 1.0, "torso_yaw": 0.1}, mouth_periodic=(0.3, 3.0)),
    12: ClassMotion(
        angles={"head_yaw": 1.4, "head_pitch": -0.05, "torso_yaw": 0.4}, mouth_periodic=(0.3, 3.0)
    ),
    13: ClassMotion(angles={"head_pitch": -0.25}, mouth=1.0, hand="driver", target="mouth", ramp_s=1.2),
    14: ClassMotion(angles={"head_pitch": 0.1}, hand="driver", target="head_top"),
    15: ClassMotion(
        periodic={"head_roll": (0.25, 1.5), "torso_roll": (0.12, 0.75), "head_pitch": (0.1, 1.5)},
        mouth_periodic=(0.5, 2.0),
        poke=0.03,
    ),
}

# Fixed anchors in the car frame (metres).
CAR_ANCHORS: dict[str, tuple[float, float, float]] = {
    "panel": (0.42, 0.2, 0.55),
    "floor_l": (-0.3, -0.3, 0.3),
    "floor_r": (0.55, -0.25, 0.25),
    "behind": (0.45, 0.35, -0.55),
}
WHEEL_CENTRE = np.array([0.0, 0.24, 0.44])
WHEEL_RADIUS = 0.18
WHEEL_TILT = 0.45  # radians: the rim's top leans towards the windscreen
UPPER_ARM, FOREARM = 0.29, 0.27


@dataclass(frozen=True)
class Driver:
    """What makes one driver look and move unlike another (fixed across their sessions)."""

    scale: float
    seat: tuple[float, float, float]  # hip point offset (x, y, z)
    rest_pitch: float  # habitual forward lean
    amplitude: dict[int, float]  # per class: how far this driver goes (1 = as modelled)
    speed: float  # periodic motions run at this multiple of the modelled rate
    free_hand: str  # hand used for yawning / hand on head: "r", "l" (yawning may use none)
    yawn_hand: bool
    target_offset: dict[int, tuple[float, float, float]]  # per class: where exactly the hand goes
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    pants: tuple[int, int, int]
    hair: tuple[int, int, int]


def make_driver(rng: np.random.Generator, amp_range: tuple[float, float] = (0.6, 1.1)) -> Driver:
    def colour(low: int, high: int) -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]

    base_skin = rng.uniform(0.35, 1.0)
    skin = (int(90 + 150 * base_skin), int(60 + 130 * base_skin), int(40 + 110 * base_skin))
    return Driver(
        scale=float(rng.uniform(0.88, 1.12)),
        seat=(
            float(rng.uniform(-0.03, 0.03)),
            float(rng.uniform(-0.04, 0.04)),
            float(rng.uniform(-0.07, 0.07)),
        ),
        rest_pitch=float(rng.uniform(-0.12, 0.06)),
        amplitude={c: float(rng.uniform(*amp_range)) for c in MOTIONS},
        speed=float(rng.uniform(0.8, 1.25)),
        free_hand=str(rng.choice(["r", "l"])),
        yawn_hand=bool(rng.random() < 0.5),
        target_offset={c: tuple(float(v) for v in rng.normal(0, 0.025, size=3)) for c in MOTIONS},  # type: ignore[misc]
        skin=skin,
        shirt=colour(20, 235),
        pants=colour(15, 120),
        hair=colour(10, 110),
    )


def smooth_noise(
    rng: np.random.Generator, n: int, fps: float, sigma_s: float, amplitude: float
) -> np.ndarray:
    """(n,) band-limited noise: white noise blurred over `sigma_s` seconds, scaled to `amplitude` std."""
    width = max(1, int(sigma_s * fps))
    kernel = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    raw = np.convolve(rng.standard_normal(n + 6 * width), kernel, mode="same")[3 * width : 3 * width + n]
    std = raw.std() or 1.0
    return raw / std * amplitude


def envelope(t: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """(T,) weight 0..1: smoothstep up centred on `start`, down centred on `end`."""
    ramp = max(0.05, min(ramp, 0.45 * (end - start) + 0.05))

    def step(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        return x * x * (3 - 2 * x)

    return step((t - start + ramp / 2) / ramp) * step((end + ramp / 2 - t) / ramp)


def rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def orient(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(T, 3, 3): yaw>0 turns right, pitch>0 leans forward / looks down, roll>0 tilts to the right."""
    return rot_y(yaw) @ rot_x(pitch) @ rot_z(-roll)


def apply(rot: np.ndarray, vec: np.ndarray | tuple) -> np.ndarray:
    """(T, 3): each frame's rotation applied to one local vector (3,) or per-frame vectors (T, 3)."""
    vec = np.asarray(vec, dtype=np.float64)
    if vec.ndim == 1:
        return rot @ vec
    return np.einsum("tij,tj->ti", rot, vec)


def two_bone_ik(shoulder: np.ndarray, target: np.ndarray, pole: np.ndarray, l1: float, l2: float):
    """Elbow and reachable hand positions (T, 3) for a target; the elbow bends towards `pole`."""
    delta = target - shoulder
    dist = np.linalg.norm(delta, axis=-1, keepdims=True).clip(1e-6)
    direction = delta / dist
    reach = np.clip(dist, abs(l1 - l2) + 0.02, l1 + l2 - 1e-3)
    hand = shoulder + direction * reach
    along = (l1**2 - l2**2 + reach**2) / (2 * reach)
    height = np.sqrt(np.clip(l1**2 - along**2, 0.0, None))
    perp = pole - np.sum(pole * direction, axis=-1, keepdims=True) * direction
    perp /= np.linalg.norm(perp, axis=-1, keepdims=True).clip(1e-6)
    elbow = shoulder + direction * along + perp * height
    return elbow, hand


def wheel_rim(angle: np.ndarray, theta: float) -> np.ndarray:
    """(T, 3): the rim point at clock angle `theta` (0 = top, >0 clockwise) after steering `angle`."""
    a = theta + angle
    up = np.array([0.0, np.cos(WHEEL_TILT), np.sin(WHEEL_TILT)])
    right = np.array([1.0, 0.0, 0.0])
    return WHEEL_CENTRE + WHEEL_RADIUS * (np.sin(a)[:, None] * right + np.cos(a)[:, None] * up)


@dataclass
class Pose:
    """Everything the renderer needs for one session, per frame."""

    points: dict[str, np.ndarray]  # name -> (T, 3)
    mouth: np.ndarray  # (T,) 0 closed .. 1 wide open
    props: dict[str, np.ndarray]  # "cup_r", "phone_l", ... -> (T,) bool visible
    wheel_angle: np.ndarray  # (T,)


@dataclass(frozen=True)
class Motion:
    """One scheduled motion: a class's movement at some strength over [start, end) seconds."""

    label: int
    start: float
    end: float
    strength: float  # 1 = the driver's full activity; distractors are weaker and brief


def normal_driving(
    rng: np.random.Generator, t: np.ndarray, fps: float, driver: Driver
) -> dict[str, np.ndarray]:
    """Small natural motions of normal driving: sway, steering, glances and mirror checks."""
    n = len(t)
    params = {
        "torso_pitch": driver.rest_pitch + smooth_noise(rng, n, fps, 1.5, 0.03),
        "torso_roll": smooth_noise(rng, n, fps, 1.5, 0.03),
        "torso_yaw": smooth_noise(rng, n, fps, 2.0, 0.03),
        "head_yaw": smooth_noise(rng, n, fps, 0.8, 0.06),
        "head_pitch": smooth_noise(rng, n, fps, 1.0, 0.04),
        "head_roll": smooth_noise(rng, n, fps, 1.5, 0.03),
    }
    # glances: left mirror, rear-view mirror (up right), right, road sides
    looks = [(-0.6, 0.0), (0.45, -0.15), (0.35, 0.0), (-0.25, 0.05)]
    cursor = float(rng.uniform(1, 6))
    while cursor < t[-1]:
        yaw, pitch = looks[int(rng.integers(len(looks)))]
        length = float(rng.uniform(0.4, 1.2))
        env = envelope(t, cursor, cursor + length, 0.3)
        params["head_yaw"] += yaw * env
        params["head_pitch"] += pitch * env
        cursor += length + float(rng.uniform(3, 12))
    return params


def schedule_motions(
    rng: np.random.Generator, activities: list[tuple[int, int, int]], duration: float, distractor_rate: float
) -> list[Motion]:
    """The labelled activities plus weak, brief look-alike motions inside normal driving."""
    motions = [Motion(label, float(s), float(e), 1.0) for label, s, e in activities]
    busy = sorted((s - 1.0, e + 1.0) for _, s, e in activities)
    free_start = 0.5
    for busy_start, busy_end in busy + [(duration, duration)]:
        free = busy_start - free_start
        count = rng.poisson(distractor_rate * free / 10.0) if free > 2.0 else 0
        for _ in range(count):
            length = float(rng.uniform(0.6, 1.5))
            if free <= length + 0.5:
                break
            start = free_start + float(rng.uniform(0.2, free - length - 0.2))
            motions.append(
                Motion(int(rng.integers(1, 16)), start, start + length, float(rng.uniform(0.25, 0.55)))
            )
        free_start = max(free_start, busy_end)
    return motions


def animate(
    rng: np.random.Generator,
    driver: Driver,
    activities: list[tuple[int, int, int]],
    duration: float,
    fps: float,
    distractor_rate: float = 1.0,
) -> Pose:
    """All 3-D points of one session, frame by frame."""
    n = int(round(duration * fps))
    t = np.arange(n) / fps
    params = normal_driving(rng, t, fps, driver)
    mouth = np.zeros(n)
    motions = schedule_motions(rng, activities, duration, distractor_rate)
    weights = [(m, envelope(t, m.start, m.end, MOTIONS[m.label].ramp_s) * m.strength) for m in motions]

    for motion, w in weights:
        spec = MOTIONS[motion.label]
        amp = driver.amplitude[motion.label]
        for name, value in spec.angles.items():
            params[name] += w * amp * value
        for name, (value, hz) in spec.periodic.items():
            params[name] += w * amp * value * np.sin(2 * np.pi * hz * driver.speed * (t - motion.start))
        mouth = np.maximum(mouth, w * spec.mouth * amp)
        talk, hz = spec.mouth_periodic
        if talk:
            wave = 0.5 + 0.5 * np.sin(2 * np.pi * hz * driver.speed * (t - motion.start))
            mouth = np.maximum(mouth, w * talk * wave)

    sc = driver.scale
    pelvis = np.broadcast_to(np.array(driver.seat, dtype=np.float64), (n, 3)).copy()
    torso = orient(params["torso_yaw"], params["torso_pitch"], params["torso_roll"])
    head_rot = torso @ orient(params["head_yaw"], params["head_pitch"], params["head_roll"])
    neck = pelvis + apply(torso, (0.0, 0.52 * sc, -0.04 * sc))
    head = neck + apply(head_rot, (0.0, 0.12 * sc, 0.02 * sc))
    face = {
        "eye_l": (-0.035, 0.015, 0.085),
        "eye_r": (0.035, 0.015, 0.085),
        "mouth": (0.0, -0.045, 0.08),
        "hair": (0.0, 0.03, -0.035),
        "hat": (0.0, 0.075, -0.01),
        "brim": (0.0, 0.06, 0.1),
        "glasses": (0.0, 0.015, 0.095),
    }
    points = {"pelvis": pelvis, "neck": neck, "head": head}
    for name, local in face.items():
        points[name] = head + apply(head_rot, tuple(v * sc for v in local))
    points["hip_l"] = pelvis + apply(torso, (-0.15 * sc, 0.02, 0.0))
    points["hip_r"] = pelvis + apply(torso, (0.15 * sc, 0.02, 0.0))
    points["thigh_l"] = pelvis + np.array([-0.1 * sc, 0.0, 0.0])
    points["thigh_r"] = pelvis + np.array([0.1 * sc, 0.0, 0.0])
    points["knee_l"] = pelvis + np.array([-0.13 * sc, 0.1, 0.42 * sc])
    points["knee_r"] = pelvis + np.array([0.13 * sc, 0.1, 0.42 * sc])
    shoulder = {
        side: neck + apply(torso, (sign * 0.18 * sc, -0.04 * sc, 0.0)) for side, sign in (("l", -1), ("r", 1))
    }

    anchors = {
        "mouth": head + apply(head_rot, (0.0, -0.05 * sc, 0.14 * sc)),
        "ear_r": head + apply(head_rot, (0.12 * sc, 0.0, 0.0)),
        "ear_l": head + apply(head_rot, (-0.12 * sc, 0.0, 0.0)),
        "head_top": head + apply(head_rot, (0.0, 0.14 * sc, 0.0)),
        "chest": neck + apply(torso, (0.03, -0.17 * sc, 0.22 * sc)),
        "lap_r": pelvis + apply(torso, (0.1 * sc, 0.14, 0.28 * sc)),
        "lap_l": pelvis + apply(torso, (-0.1 * sc, 0.14, 0.28 * sc)),
    }
    for name, pos in CAR_ANCHORS.items():
        anchors[name] = np.broadcast_to(np.array(pos), (n, 3))

    wheel_angle = smooth_noise(rng, n, fps, 1.2, 0.08)
    hands = {
        "l": wheel_rim(wheel_angle, -1.0) + np.array([0.0, 0.0, -0.03]),
        "r": wheel_rim(wheel_angle, 1.0) + np.array([0.0, 0.0, -0.03]),
    }
    for side in hands:
        hands[side] = hands[side] + np.stack([smooth_noise(rng, n, fps, 0.6, 0.006) for _ in range(3)], -1)
    props = {
        f"{p}_{s}": np.zeros(n, dtype=bool) for p in ("cup", "phone", "phone_flat", "food") for s in "lr"
    }

    for motion, w in weights:
        spec = MOTIONS[motion.label]
        if spec.hand is None or spec.target is None:
            if spec.poke:  # rhythmic tapping on the wheel
                bounce = w * spec.poke * np.sin(2 * np.pi * 2.0 * driver.speed * (t - motion.start))
                for side in hands:
                    hands[side] = hands[side] + bounce[:, None] * np.array([0.0, 1.0, 0.0])
            continue
        side = spec.hand
        if side == "driver":
            if motion.label == 13 and not driver.yawn_hand:
                continue
            side = "l" if motion.label == 13 else driver.free_hand
        target = anchors[spec.target] + np.array(driver.target_offset[motion.label])
        if spec.target_swing:
            mix = 0.5 + 0.5 * np.sin(2 * np.pi * spec.swing_hz * driver.speed * (t - motion.start))
            target = target + mix[:, None] * (anchors[spec.target_swing] - anchors[spec.target])
        if spec.poke:
            target = target + spec.poke * np.sin(2 * np.pi * 2.5 * (t - motion.start))[:, None] * np.array(
                [0, 1.0, 0.5]
            )
        hw = w[:, None]
        hands[side] = hands[side] * (1 - hw) + target * hw
        if spec.prop:
            props[f"{spec.prop}_{side}"] |= w > 0.5

    for side, sign in (("l", -1.0), ("r", 1.0)):
        pole = np.broadcast_to(np.array([sign * 0.6, -1.0, -0.3]), (n, 3))
        elbow, hand = two_bone_ik(shoulder[side], hands[side], pole, UPPER_ARM * sc, FOREARM * sc)
        points[f"shoulder_{side}"] = shoulder[side]
        points[f"elbow_{side}"] = elbow
        points[f"hand_{side}"] = hand
        points[f"phone_{side}"] = hand + np.array([0.0, 0.11, 0.0])
        points[f"phone_flat_{side}"] = hand + np.array([0.0, 0.015, 0.09])
        points[f"cup_{side}"] = hand + np.array([0.0, 0.06, 0.02])
        points[f"food_{side}"] = hand + np.array([0.0, 0.04, 0.02])

    points["wheel"] = np.broadcast_to(WHEEL_CENTRE, (n, 3))
    for k in range(12):
        points[f"rim{k}"] = wheel_rim(wheel_angle, 2 * np.pi * k / 12)
    for k, theta in enumerate((np.pi / 2, -np.pi / 2, np.pi)):
        points[f"spoke{k}"] = wheel_rim(wheel_angle, theta)
    return Pose(points=points, mouth=mouth, props=props, wheel_angle=wheel_angle)
