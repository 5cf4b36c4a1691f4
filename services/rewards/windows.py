"""When something with an optional start and end is open: perks, boxes, pools, campaigns."""

from __future__ import annotations

from datetime import datetime


def open_at(now: datetime, starts_at: datetime | None, ends_at: datetime | None) -> bool:
    """Whether ``now`` is in [``starts_at``, ``ends_at``); a missing bound does not close."""
    return (starts_at is None or now >= starts_at) and (ends_at is None or now < ends_at)
