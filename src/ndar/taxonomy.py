"""Classes and camera views of AI City Challenge Track 3.

The 2023/2024 editions use 16 classes (0 = normal driving, never scored). The 2022 edition used 18:
its class 7 was "Hair / makeup" (no 2023 equivalent), its 8..15 are the 2023 7..14, and its 16/17
("Singing with music", "Shaking or dancing with music") both became the 2023 class 15.
"""

from __future__ import annotations

import re

from ndar.config import ConfigError

CLASSES: tuple[str, ...] = (
    "Normal Forward Driving",
    "Drinking",
    "Phone Call (right)",
    "Phone Call (left)",
    "Eating",
    "Text (Right)",
    "Text (Left)",
    "Reaching behind",
    "Adjust control panel",
    "Pick up from floor (Driver)",
    "Pick up from floor (Passenger)",
    "Talk to passenger at the right",
    "Talk to passenger at backseat",
    "Yawning",
    "Hand on head",
    "Singing or dancing with music",
)
NUM_CLASSES = len(CLASSES)  # 16, class 0 included
BACKGROUND = 0
SCORED_CLASSES: tuple[int, ...] = tuple(range(1, NUM_CLASSES))  # 1..15

# Horizontal flip swaps these (phone call right/left, text right/left).
FLIP_PAIRS: dict[int, int] = {2: 3, 3: 2, 5: 6, 6: 5}

CLASSES_2022: tuple[str, ...] = (
    "Normal Forward Driving",
    "Drinking",
    "Phone Call (right)",
    "Phone Call (left)",
    "Eating",
    "Text (Right)",
    "Text (Left)",
    "Hair / makeup",
    "Reaching behind",
    "Adjust control panel",
    "Pick up from floor (Driver)",
    "Pick up from floor (Passenger)",
    "Talk to passenger at the right",
    "Talk to passenger at backseat",
    "Yawning",
    "Hand on head",
    "Singing with music",
    "Shaking or dancing with music",
)

# 2022 id -> 2023 id; None means the class has no 2023 equivalent (hair/makeup).
MAP_2022_TO_2023: dict[int, int | None] = {
    **{i: i for i in range(7)},
    7: None,
    **{i: i - 1 for i in range(8, 16)},
    16: 15,
    17: 15,
}

# Canonical view names used everywhere inside ndar.
VIEWS: tuple[str, ...] = ("dashboard", "rear", "right")

# Every spelling seen in official file names and CSVs, lower-cased, mapped to the canonical name.
VIEW_SPELLINGS: dict[str, str] = {
    "dashboard": "dashboard",
    "dash": "dashboard",
    "rear_view": "rear",
    "rearview": "rear",
    "rearview_mirror": "rear",
    "rear_view_mirror": "rear",
    "rear": "rear",
    "right_side_window": "right",
    "rightside_window": "right",
    "right_window": "right",
    "right_side": "right",
    "right": "right",
}

# The spelling the synthetic generator writes (the 2023/2024 release's).
VIEW_FILE_PREFIX: dict[str, str] = {
    "dashboard": "Dashboard",
    "rear": "Rear_view",
    "right": "Right_side_window",
}


def canonical_view(name: str) -> str:
    """Return 'dashboard', 'rear' or 'right' for any known spelling (case, spaces and dashes ignored)."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if key in VIEW_SPELLINGS:
        return VIEW_SPELLINGS[key]
    raise ConfigError(f"unknown camera view {name!r}; known spellings: {sorted(VIEW_SPELLINGS)}")


def view_from_filename(filename: str) -> str:
    """Find the view at the start of a video or label file name such as 'Rear_view_user_id_1_NoAudio_3'."""
    stem = filename.strip().strip("'\"")
    match = re.match(r"(?i)(.*?)_user_id", stem)
    if not match:
        raise ValueError(f"cannot find the view in file name {filename!r}: expected '<View>_user_id_<id>...'")
    return canonical_view(match.group(1))
