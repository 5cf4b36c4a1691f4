"""Times clients send: RFC 3339 with an offset, and not later than now (give or take a clock's
skew) where they say when something happened."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.runtime.errors import ValidationFailed

MAX_FUTURE_SKEW = timedelta(minutes=5)


def with_offset(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field=field)
    return value


def happened(value: datetime | None, now: datetime, field: str) -> datetime:
    """When something happened: ``now`` if not given; with an offset and not in the future."""
    if value is None:
        return now
    if with_offset(value, field) > now + MAX_FUTURE_SKEW:
        raise ValidationFailed(f"{field} is in the future", field=field)
    return value
