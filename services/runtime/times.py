"""Times clients send: RFC 3339 with an offset, and not later than now (give or take a clock's
skew) where they say when something happened."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.runtime.errors import ValidationFailed

MAX_FUTURE_SKEW = timedelta(minutes=5)

# RFC 3339 as patterns for the OpenAPI contract and for query parameters: months have their
# lengths (29 February aside), years run from 0001, a time has its offset.
_YEAR = r"(?:000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})"
_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
        r"|02-(?:0[1-9]|1\d|2[0-8]))")
DATE_PATTERN = rf"^{_YEAR}-{_DAY}$"
DATE_TIME_PATTERN = (rf"^{_YEAR}-{_DAY}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{{1,6}})?"
                     r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")


def with_offset(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field=field)
    return value


def parse_rfc3339(value: str | None, field: str) -> datetime | None:
    """A query parameter's RFC 3339 time (its pattern checked by the route): a 422 naming
    ``field`` if it is still not a time (29 February of a common year)."""
    if value is None:
        return None
    try:
        return with_offset(datetime.fromisoformat(value), field)
    except ValueError:
        raise ValidationFailed(f"{field} is not an RFC 3339 time", field=field) from None


def happened(value: datetime | None, now: datetime, field: str) -> datetime:
    """When something happened: ``now`` if not given; with an offset and not in the future."""
    if value is None:
        return now
    if with_offset(value, field) > now + MAX_FUTURE_SKEW:
        raise ValidationFailed(f"{field} is in the future", field=field)
    return value
