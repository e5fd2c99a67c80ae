"""TIM (Time Interval Machine) head: interval queries over sliding windows of two feature streams.

Importing this package registers the head as "tim" in `ndar.heads.base.HEADS` (the runner imports it
on demand through `get_head("tim")`).
"""

from ndar.heads.tim.config import TimConfig
from ndar.heads.tim.head import TimHead
from ndar.heads.tim.official import from_official

__all__ = ["TimConfig", "TimHead", "from_official"]
