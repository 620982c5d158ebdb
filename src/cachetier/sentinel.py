"""The miss sentinel, so a cached `None` is never mistaken for a miss."""

from __future__ import annotations

import enum
from typing import Final


class Missing(enum.Enum):
    """Type of `MISS`; an enum so that `value is MISS` narrows for type checkers."""

    MISS = enum.auto()

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Missing.MISS
