"""Times clients send: RFC 3339 with an offset, and not later than now (give or take a clock's
skew) where they say when something happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from proto.common import PATTERN_END
from services.runtime.errors import ValidationFailed

MAX_FUTURE_SKEW = timedelta(minutes=5)

# Times a client sends run from 1900 to 8999, both as written and in UTC: far enough for any
# "never", and clear of the ends of Python's and PostgreSQL's ranges, where converting to another
# zone overflows. fuli answers a sent time in UTC (a box's definition, say), so the UTC bound keeps
# the answer within the years its request schema states.
EARLIEST_YEAR, LATEST_YEAR = 1900, 8999
EARLIEST = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
END = datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)

# RFC 3339 as patterns for the OpenAPI contract and for query parameters: months have their
# lengths, 29 February only in leap years, a time has its offset. What clients send keeps to the
# years above; what fuli answers may be written in another zone, so its years are only four
# digits.
# Digits are [0-9]: Python's \d also takes other scripts' digits, which JSON Schema's does not.
_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
        r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_TIME = (r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
         r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])" + PATTERN_END)
_SENT_YEAR = r"(?:19[0-9]{2}|[2-8][0-9]{3})"
_ANY_YEAR = r"[0-9]{4}"
# Leap years: divisible by 4, centuries only when divisible by 400.
_SENT_LEAP_YEAR = (r"(?:(?:19|[2-8][0-9])(?:0[48]|[2468][048]|[13579][26])"
                   r"|(?:[2468][048]|[357][26])00)")
_ANY_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_SENT_DATE = rf"(?:{_SENT_YEAR}-{_DAY}|{_SENT_LEAP_YEAR}-02-29)"
_ANY_DATE = rf"(?:{_ANY_YEAR}-{_DAY}|{_ANY_LEAP_YEAR}-02-29)"
DATE_PATTERN = rf"^{_ANY_DATE}{PATTERN_END}"
DATE_TIME_PATTERN = rf"^{_SENT_DATE}{_TIME}"
ANSWERED_DATE_TIME_PATTERN = rf"^{_ANY_DATE}{_TIME}"


def sent_time(value: datetime, field: str) -> datetime:
    """A time a client sent: with an offset, and within the years fuli takes."""
    with_offset(value, field)
    if not (EARLIEST_YEAR <= value.year <= LATEST_YEAR and EARLIEST <= value < END):
        raise ValidationFailed(
            f"{field}: times run from {EARLIEST_YEAR} to {LATEST_YEAR}, in UTC as well",
            field=field)
    return value


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
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{field} is not an RFC 3339 time", field=field) from None
    return sent_time(parsed, field)


def happened(value: datetime | None, now: datetime, field: str) -> datetime:
    """When something happened: ``now`` if not given; with an offset and not in the future."""
    if value is None:
        return now
    if with_offset(value, field) > now + MAX_FUTURE_SKEW:
        raise ValidationFailed(f"{field} is in the future", field=field)
    return value
