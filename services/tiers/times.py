"""Times the tiers API is asked about: RFC 3339 with an offset, now by default; and the
tenant's local day of a moment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar.params import Parameter

from services.runtime.db import Db
from services.runtime.tenants import tenant_time_zone
from services.runtime.times import DATE_TIME_PATTERN, parse_rfc3339, with_offset

# A string with a pattern, not a datetime: Litestar would read ``?at=0.5`` as a Unix time.
At = Annotated[str | None, Parameter(pattern=DATE_TIME_PATTERN,
                                     description="RFC 3339 time with an offset; default now")]


def moment(at: str | None) -> datetime | None:
    """The ``at`` query parameter as a time."""
    return parse_rfc3339(at, "at")


def as_of(at: datetime | None, now: datetime) -> datetime:
    """The moment a read is about: ``at`` if given (with an offset), else ``now``."""
    return now if at is None else with_offset(at, "at")


def local_day(at: datetime, time_zone: str) -> date:
    """The tenant's calendar day holding ``at`` (as ``tiers.local_day`` in SQL)."""
    return at.astimezone(ZoneInfo(time_zone)).date()


async def tenant_day(db: Db, tenant_id: str, at: datetime) -> date:
    """The local day holding ``at`` in the tenant's time zone."""
    return local_day(at, await tenant_time_zone(db, tenant_id))
