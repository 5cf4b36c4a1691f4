"""Times the tiers API is asked about: RFC 3339 with an offset, now by default; and the
tenant's local day of a moment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar.params import Parameter

from services.runtime.errors import ValidationFailed

At = Annotated[datetime | None, Parameter(description="RFC 3339 time; default now")]


def as_of(at: datetime | None, now: datetime) -> datetime:
    """The moment a read is about: ``at`` if given (with an offset), else ``now``."""
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field="at")
    return at or now


def local_day(at: datetime, time_zone: str) -> date:
    """The tenant's calendar day holding ``at`` (as ``tiers.local_day`` in SQL)."""
    return at.astimezone(ZoneInfo(time_zone)).date()
