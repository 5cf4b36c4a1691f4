"""When something with an optional start and end is open: perks, boxes, pools, campaigns,
tasks."""

from __future__ import annotations

from datetime import datetime

from services.runtime.errors import ValidationFailed


def open_at(now: datetime, starts_at: datetime | None, ends_at: datetime | None) -> bool:
    """Whether ``now`` is in [``starts_at``, ``ends_at``); a missing bound does not close."""
    return (starts_at is None or now >= starts_at) and (ends_at is None or now < ends_at)


def check_window(starts_at: datetime | None, ends_at: datetime | None) -> None:
    """A window that ends must end after it starts (422 on ``ends_at``)."""
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValidationFailed("ends_at must be after starts_at", field="ends_at")
