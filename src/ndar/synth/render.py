"""Project the driver and the car through three camera poses and draw small RGB frames with PIL.

Per session and view everything that can be vectorised is computed up front: projected points
(T, K, 2), per-primitive depths and pixel sizes (T, P), the painter's drawing order (T, P), camera
shake, lighting and occlusion events. The per-frame loop then only issues PIL draw calls on a small
canvas, crops it (camera shake), applies a lighting lookup table and adds a pre-drawn noise image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ndar.synth.body import Driver, Pose, smooth_noise

MARGIN = 6  # canvas margin (pixels) for camera shake


@dataclass(frozen=True)
class Camera:
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    hfov_deg: float


# Nominal camera poses; each session moves them a little (camera_jitter).
CAMERAS: dict[str, Camera] = {
    "dashboard": Camera((0.12, 0.44, 0.86), (0.0, 0.32, 0.0), 78.0),  # in front of the driver, on the dash
    "rear": Camera((0.42, 0.74, 0.6), (0.0, 0.12, 0.05), 84.0),  # at the rear-view mirror: above, front right
    "right": Camera((1.0, 0.5, 0.3), (0.0, 0.2, 0.1), 62.0),  # at the passenger window, looking left
}

# Static car geometry: name -> (quad corners, colour role). Windows show moving scenery.
STATIC_QUADS: dict[str, tuple[tuple[tuple[float, float, float], ...], str]] = {
    "floor": (((-0.6, -0.35, -1.2), (1.2, -0.35, -1.2), (1.2, -0.35, 0.7), (-0.6, -0.35, 0.7)), "floor"),
    "door_left": (((-0.5, -0.35, -0.5), (-0.5, -0.35, 0.65), (-0.5, 0.36, 0.6), (-0.5, 0.36, -0.5)), "trim"),
    "door_right": (((1.15, -0.35, -0.5), (1.15, -0.35, 0.65), (1.15, 0.36, 0.6), (1.15, 0.36, -0.5)), "trim"),
    "window_left": (
        ((-0.5, 0.36, -0.45), (-0.5, 0.36, 0.58), (-0.5, 0.8, 0.42), (-0.5, 0.8, -0.35)),
        "window",
    ),
    "window_rear": (((-0.45, 0.3, -1.4), (1.1, 0.3, -1.4), (1.0, 0.78, -1.3), (-0.35, 0.78, -1.3)), "window"),
    "window_front": (((-0.5, 0.4, 0.85), (1.1, 0.4, 0.85), (1.0, 0.95, 0.55), (-0.4, 0.95, 0.55)), "window"),
    "window_right": (
        ((1.15, 0.36, -0.45), (1.15, 0.36, 0.58), (1.15, 0.8, 0.42), (1.15, 0.8, -0.35)),
        "window",
    ),
    "rear_seat": (((-0.45, -0.1, -1.0), (1.1, -0.1, -1.0), (1.1, 0.5, -1.15), (-0.45, 0.5, -1.15)), "seat"),
    "seat_back": (
        ((-0.23, 0.0, -0.12), (0.23, 0.0, -0.12), (0.21, 0.64, -0.24), (-0.21, 0.64, -0.24)),
        "seat",
    ),
    "headrest": (
        ((-0.11, 0.68, -0.22), (0.11, 0.68, -0.22), (0.1, 0.86, -0.25), (-0.1, 0.86, -0.25)),
        "seat",
    ),
    "seat_base": (
        ((-0.24, -0.04, -0.12), (0.24, -0.04, -0.12), (0.24, 0.02, 0.38), (-0.24, 0.02, 0.38)),
        "seat",
    ),
    "pass_back": (((0.52, 0.0, -0.12), (0.98, 0.0, -0.12), (0.96, 0.64, -0.24), (0.54, 0.64, -0.24)), "seat"),
    "console": (((0.28, 0.05, -0.1), (0.5, 0.05, -0.1), (0.5, 0.05, 0.55), (0.28, 0.05, 0.55)), "trim"),
    "dash_face": (((-0.6, 0.36, 0.62), (1.2, 0.36, 0.62), (1.2, -0.12, 0.6), (-0.6, -0.12, 0.6)), "dash"),
    "panel": (((0.32, 0.28, 0.595), (0.52, 0.28, 0.595), (0.52, 0.12, 0.59), (0.32, 0.12, 0.59)), "panel"),
}
# Pieces of the car right in front of a lens, drawn over the driver, as image-plane polygons in
# fractions of (width, height): the dashboard camera looks over the dash top, which hides the lap.
FOREGROUND: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {
    "dashboard": (((0.0, 0.8), (0.3, 0.74), (0.7, 0.72), (1.0, 0.76), (1.0, 1.0), (0.0, 1.0)),),
    "rear": (),
    "right": (),
}
BACKGROUND_ORDER = (
    "floor",
    "window_rear",
    "rear_seat",
    "window_front",
    "door_left",
    "window_left",
    "door_right",
    "window_right",
    "dash_face",
    "panel",
    "console",
    "pass_back",
    "seat_base",
    "seat_back",
    "headrest",
)


@dataclass(frozen=True)
class Look:
    """Per-session appearance: the car's colours, scenery and noise settings."""

    interior: tuple[int, int, int]
    seat: tuple[int, int, int]
    appearance: str  # "None", "Hat", "Sunglasses"
    hat: tuple[int, int, int]
    noise: float  # pixel noise amplitude (grey levels)
    lighting: float  # std of the brightness changes
    occlusion_rate: float  # brief occlusions per minute, per view
    camera_jitter: float  # session-level camera pose change (metres)
    shake_px: float  # frame-level camera shake (pixels)


def make_look(rng: np.random.Generator, appearance: str, difficulty: dict[str, float]) -> Look:
    grey = int(rng.integers(60, 140))
    tint = rng.integers(-15, 16, size=3)
    return Look(
        interior=tuple(int(np.clip(grey + v, 0, 255)) for v in tint),  # type: ignore[arg-type]
        seat=tuple(int(v) for v in rng.integers(20, 120, size=3)),  # type: ignore[arg-type]
        appearance=appearance,
        hat=tuple(int(v) for v in rng.integers(0, 255, size=3)),  # type: ignore[arg-type]
        noise=difficulty["noise"],
        lighting=difficulty["lighting"],
        occlusion_rate=difficulty["occlusion_rate"],
        camera_jitter=difficulty["camera_jitter"],
        shake_px=difficulty["shake_px"],
    )


class Projector:
    """Pinhole camera: car-frame points -> pixel coordinates on the canvas, and depths."""

    def __init__(self, cam: Camera, width: int, height: int, offset: np.ndarray) -> None:
        pos = np.array(cam.position) + offset[:3]
        look = np.array(cam.look_at) + offset[3:]
        fwd = look - pos
        fwd /= np.linalg.norm(fwd)
        right = np.cross([0.0, 1.0, 0.0], fwd)
        right /= np.linalg.norm(right)
        up = np.cross(fwd, right)
        self.pos = pos
        self.basis = np.stack([right, up, fwd])  # (3, 3)
        self.focal = (width / 2) / np.tan(np.radians(cam.hfov_deg) / 2)
        self.cx = width / 2 + MARGIN
        self.cy = height / 2 + MARGIN

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) -> pixels (..., 2), depth (...,) (depth clipped to stay in front of the lens)."""
        cam = (pts - self.pos) @ self.basis.T
        depth = np.maximum(cam[..., 2], 0.05)
        u = self.cx + self.focal * cam[..., 0] / depth
        v = self.cy - self.focal * cam[..., 1] / depth
        return np.stack([u, v], -1), depth


COLOUR_ROLES = {"floor": 0.55, "trim": 0.8, "dash": 0.45, "seat": 1.0, "panel": 1.0}


def to_ycc(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Full-range YCbCr of an RGB colour (PIL's formula): frames are drawn directly in YCbCr."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(int(np.clip(round(v), 0, 255)) for v in (y, cb, cr))  # type: ignore[return-value]


def _static_colour(role: str, look: Look) -> tuple[int, int, int]:
    if role == "seat":
        return look.seat
    if role == "panel":
        return (40, 170, 220)
    k = COLOUR_ROLES[role]
    return tuple(int(c * k) for c in look.interior)  # type: ignore[return-value]


def _quad_pixels(proj: Projector, corners) -> list[tuple[float, float]] | None:
    pts = np.array(corners, dtype=np.float64)
    cam_z = (pts - proj.pos) @ proj.basis[2]
    if np.any(cam_z < 0.05):
        return None  # crosses the camera plane: not visible in this view
    uv, _ = proj.project(pts)
    return [tuple(p) for p in uv.tolist()]


def make_scenery(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A horizontally periodic strip (2 x period wide): sky, trees, houses, poles."""
    period = width * 3
    strip = Image.new("RGB", (period, height), tuple(int(v) for v in rng.integers(150, 230, size=3)))
    draw = ImageDraw.Draw(strip)
    x = 0
    while x < period:
        w = int(rng.integers(4, 18))
        top = int(rng.integers(height // 4, height * 3 // 4))
        colour = tuple(int(v) for v in rng.integers(20, 200, size=3))
        draw.rectangle([x, top, x + w, height], fill=colour)
        x += w + int(rng.integers(0, 10))
    full = Image.new("RGB", (period * 2, height))
    full.paste(strip, (0, 0))
    full.paste(strip, (period, 0))
    return full


@dataclass
class Primitive:
    kind: str  # "line", "ellipse", "mouth", "poly", "wheel"
    points: tuple[str, ...]
    colour: tuple[int, int, int]
    size: float = 0.0  # metres: line width or ellipse radius
    visible: np.ndarray | None = None  # (T,) bool


def body_primitives(driver: Driver, look: Look, pose: Pose) -> list[Primitive]:
    dark = (25, 20, 20)
    prims = [
        Primitive("line", ("thigh_l", "knee_l"), driver.pants, 0.16),
        Primitive("line", ("thigh_r", "knee_r"), driver.pants, 0.16),
        Primitive("poly", ("hip_l", "hip_r", "shoulder_r", "shoulder_l"), driver.shirt),
        Primitive("line", ("neck", "head"), driver.skin, 0.08),
        Primitive("ellipse", ("hair",), driver.hair, 0.105),
        Primitive("ellipse", ("head",), driver.skin, 0.1),
        Primitive("ellipse", ("eye_l",), dark, 0.014),
        Primitive("ellipse", ("eye_r",), dark, 0.014),
        Primitive("mouth", ("mouth",), (120, 30, 40), 0.024),
        Primitive(
            "wheel", tuple(f"rim{k}" for k in range(12)) + ("wheel", "spoke0", "spoke1", "spoke2"), dark, 0.03
        ),
    ]
    for side in "lr":
        prims += [
            Primitive("line", (f"shoulder_{side}", f"elbow_{side}"), driver.shirt, 0.1),
            Primitive("line", (f"elbow_{side}", f"hand_{side}"), driver.skin, 0.075),
            Primitive("ellipse", (f"hand_{side}",), driver.skin, 0.045),
            Primitive(
                "line", (f"hand_{side}", f"cup_{side}"), (235, 235, 225), 0.07, pose.props[f"cup_{side}"]
            ),
            Primitive(
                "line", (f"hand_{side}", f"phone_{side}"), (15, 15, 30), 0.04, pose.props[f"phone_{side}"]
            ),
            Primitive(
                "line",
                (f"hand_{side}", f"phone_flat_{side}"),
                (15, 15, 30),
                0.055,
                pose.props[f"phone_flat_{side}"],
            ),
            Primitive("ellipse", (f"food_{side}",), (170, 110, 40), 0.04, pose.props[f"food_{side}"]),
        ]
    if look.appearance == "Hat":
        prims += [
            Primitive("ellipse", ("hat",), look.hat, 0.11),
            Primitive("line", ("hat", "brim"), look.hat, 0.05),
        ]
    elif look.appearance == "Sunglasses":
        prims.append(Primitive("line", ("eye_l", "eye_r"), (5, 5, 5), 0.035))
    return prims


def render_view(
    rng: np.random.Generator,
    view: str,
    driver: Driver,
    look: Look,
    pose: Pose,
    fps: float,
    width: int,
    height: int,
) -> Iterator[Image.Image]:
    """Yield the frames of one view (PIL RGB images of width x height)."""
    n = len(pose.mouth)
    offset = rng.normal(0.0, look.camera_jitter, size=6)
    proj = Projector(CAMERAS[view], width, height, offset)
    canvas_size = (width + 2 * MARGIN, height + 2 * MARGIN)
    background, window_mask = _background(rng, proj, look, view, canvas_size)
    scenery = make_scenery(rng, canvas_size[0], canvas_size[1]).convert("YCbCr")
    period = scenery.width // 2
    speed = np.clip(1.5 + smooth_noise(rng, n, fps, 4.0, 1.0), 0.0, None) * (width / 160) * (15.0 / fps)
    scroll = (np.cumsum(speed) % period).astype(int).tolist()

    names = list(pose.points)
    index = {name: i for i, name in enumerate(names)}
    pts = np.stack([pose.points[name] for name in names], 1)  # (T, K, 3)
    uv, depth = proj.project(pts)  # (T, K, 2), (T, K)
    prims = body_primitives(driver, look, pose)
    for prim in prims:
        prim.colour = to_ycc(prim.colour)
    prim_depth = np.stack([depth[:, [index[p] for p in prim.points]].mean(1) for prim in prims], 1)  # (T, P)
    order = np.argsort(-prim_depth, axis=1, kind="stable").tolist()
    sizes = np.stack([proj.focal * prim.size / depth[:, index[prim.points[0]]] for prim in prims], 1).tolist()
    uv_list = uv.tolist()
    mouth = pose.mouth.tolist()
    visible = [None if p.visible is None else p.visible.tolist() for p in prims]
    point_ids = [[index[name] for name in prim.points] for prim in prims]
    dash_colour = to_ycc(_static_colour("dash", look))
    foreground = [
        ([(MARGIN + fx * width, MARGIN + fy * height) for fx, fy in shape], dash_colour)
        for shape in FOREGROUND[view]
    ]

    shake = np.stack([smooth_noise(rng, n, fps, 0.15, look.shake_px) for _ in range(2)], 1)
    shake = (np.clip(np.round(shake), -MARGIN, MARGIN).astype(int) + MARGIN).tolist()
    noise_amp = max(0, int(round(look.noise)))
    luma_tables = _lighting(rng, n, fps, look.lighting, noise_amp)
    noise_bank = _noise_bank(rng, (height, width), noise_amp)
    noise_pick = rng.integers(0, len(noise_bank), size=n).tolist()
    occlusions = _occlusions(rng, n, fps, look.occlusion_rate, width, height)
    chroma_table = np.round(16 + np.arange(256) * (224 / 255)).astype(np.uint8)

    for f in range(n):
        frame = background.copy()
        crop = scenery.crop((scroll[f], 0, scroll[f] + canvas_size[0], canvas_size[1]))
        frame.paste(crop, (0, 0), window_mask)
        draw = ImageDraw.Draw(frame)
        coords = uv_list[f]
        for p in order[f]:
            vis = visible[p]
            if vis is not None and not vis[f]:
                continue
            _draw(draw, prims[p], [coords[i] for i in point_ids[p]], sizes[f][p], mouth[f])
        for shape, colour in foreground:
            draw.polygon(shape, fill=colour)
        if occlusions[f] is not None:
            box, colour = occlusions[f]
            draw.ellipse(box, fill=colour)
        yield _to_yuv420p(
            np.asarray(frame),
            shake[f],
            width,
            height,
            luma_tables[f],
            noise_bank[noise_pick[f]],
            chroma_table,
        )


def _to_yuv420p(
    canvas: np.ndarray,
    offset: list[int],
    width: int,
    height: int,
    luma_table: np.ndarray,
    noise: np.ndarray,
    chroma_table: np.ndarray,
) -> np.ndarray:
    """(H * 3 // 2, W) uint8 planar yuv420p (limited range) from the full-range YCbCr canvas.

    The crop at `offset` is the camera shake; `noise` (int16, shifted to 0..2a) is the pixel noise;
    the luma table (indexed by luma + noise) applies the lighting, the shift and the clipping. Chroma is subsampled by taking every second pixel (cheap, and the renders
    are flat-shaded so nothing is lost that matters).
    """
    dx, dy = offset
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    luma = canvas[dy : dy + height, dx : dx + width, 0].astype(np.int16)
    luma += noise  # noise is pre-shifted to be >= 0; the table undoes the shift
    np.take(luma_table, luma, out=out[:height])
    quarter = (height // 2) * (width // 2)
    chroma = out[height:].reshape(-1)
    chroma[:quarter] = chroma_table[canvas[dy : dy + height : 2, dx : dx + width : 2, 1]].reshape(-1)
    chroma[quarter:] = chroma_table[canvas[dy : dy + height : 2, dx : dx + width : 2, 2]].reshape(-1)
    return out


def _draw(draw: ImageDraw.ImageDraw, prim: Primitive, pts: list, size: float, mouth: float) -> None:
    if prim.kind == "line":
        draw.line([tuple(pts[0]), tuple(pts[1])], fill=prim.colour, width=max(1, int(size + 0.5)))
    elif prim.kind == "ellipse":
        u, v = pts[0]
        r = max(0.6, size)
        draw.ellipse((u - r, v - r, u + r, v + r), fill=prim.colour)
    elif prim.kind == "mouth":
        u, v = pts[0]
        r = max(0.6, size)
        h = max(0.5, r * (0.25 + 1.4 * mouth))
        draw.ellipse((u - r, v - h, u + r, v + h), fill=prim.colour)
    elif prim.kind == "poly":
        draw.polygon([tuple(p) for p in pts], fill=prim.colour)
    elif prim.kind == "wheel":
        rim = [tuple(p) for p in pts[:12]]
        w = max(1, int(size + 0.5))
        draw.line(rim + [rim[0]], fill=prim.colour, width=w)
        centre = tuple(pts[12])
        for spoke in pts[13:]:
            draw.line([centre, tuple(spoke)], fill=prim.colour, width=max(1, w - 1))


def _background(
    rng: np.random.Generator, proj: Projector, look: Look, view: str, size: tuple[int, int]
) -> tuple[Image.Image, Image.Image]:
    """The static car interior of one view, and the mask of its windows (for the scenery)."""
    image = Image.new("RGB", size, look.interior)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    mask_draw = ImageDraw.Draw(mask)
    roof = tuple(int(c * 1.15) for c in look.interior)
    draw.rectangle([0, 0, size[0], size[1] // 5], fill=roof)
    for name in BACKGROUND_ORDER:
        corners, role = STATIC_QUADS[name]
        quad = _quad_pixels(proj, corners)
        if quad is None:
            continue
        if role == "window":
            mask_draw.polygon(quad, fill=255)
            draw.polygon(quad, fill=(0, 0, 0))
        else:
            draw.polygon(quad, fill=_static_colour(role, look))
            mask_draw.polygon(quad, fill=0)
    return image.convert("YCbCr"), mask


def _lighting(rng: np.random.Generator, n: int, fps: float, amount: float, noise: int) -> list[np.ndarray]:
    """Per-frame luma tables: index (full-range luma + noise + `noise` shift) -> limited-range uint8.

    Brightness drifts slowly, with brief sun flashes or shadows now and then.
    """
    level = 1.0 + smooth_noise(rng, n, fps, 3.0, amount)
    for start in np.flatnonzero(rng.random(n) < (0.02 / fps)):
        level[start : start + int(fps * rng.uniform(0.3, 1.5))] *= rng.uniform(0.6, 1.4)
    quantised = np.round(np.clip(level, 0.4, 1.6) * 64).astype(int).tolist()
    ramp = np.arange(256 + 2 * noise, dtype=np.float64) - noise
    cache: dict[int, np.ndarray] = {}
    for q in set(quantised):
        cache[q] = np.clip(np.round(16 + ramp * (219 / 255) * (q / 64)), 16, 235).astype(np.uint8)
    return [cache[q] for q in quantised]


def _noise_bank(
    rng: np.random.Generator, shape: tuple[int, int], amp: int, count: int = 16
) -> list[np.ndarray]:
    """Pre-drawn luma noise images (int16, uniform in 0..2*amp, i.e. +-amp shifted), picked per frame."""
    return [rng.integers(0, 2 * amp + 1, size=shape, dtype=np.int16) for _ in range(count)]


def _occlusions(rng: np.random.Generator, n: int, fps: float, rate_per_min: float, width: int, height: int):
    """Per frame None or (ellipse box, colour): a hand, a sleeve or glare briefly over the lens."""
    out: list = [None] * n
    count = rng.poisson(rate_per_min * n / fps / 60.0)
    for _ in range(count):
        start = int(rng.integers(0, n))
        length = int(fps * rng.uniform(0.2, 0.8))
        u = rng.uniform(0, width) + MARGIN
        v = rng.uniform(0, height) + MARGIN
        r = rng.uniform(0.2, 0.45) * width
        colour = tuple(
            int(c)
            for c in (rng.integers(0, 60, size=3) if rng.random() < 0.7 else rng.integers(200, 256, size=3))
        )
        for f in range(start, min(n, start + length)):
            out[f] = ((u - r, v - r * 0.8, u + r, v + r * 0.8), to_ycc(colour))
    return out
