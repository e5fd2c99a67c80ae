"""ActionFormer (Zhang et al. 2022) on our feature streams: local-attention pyramid + anchor-free heads.

Importing this package registers the head as "actionformer" in `ndar.heads.base.HEADS`.
"""

from ndar.heads.actionformer.config import ActionFormerConfig
from ndar.heads.actionformer.head import ActionFormerHead
from ndar.heads.actionformer.official import from_official

__all__ = ["ActionFormerConfig", "ActionFormerHead", "from_official"]
