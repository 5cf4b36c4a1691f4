"""Times the tiers API is asked about: RFC 3339 with an offset, now by default; and the
tenant's local day of a moment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar.params import Parameter

from services.runtime.db import Db
from services.runtime.tenants import tenant_time_zone
from services.runtime.times import with_offset

At = Annotated[datetime | None, Parameter(description="RFC 3339 time; default now")]


def as_of(at: datetime | None, now: datetime) -> datetime:
    """The moment a read is about: ``at`` if given (with an offset), else ``now``."""
    return now if at is None else with_offset(at, "at")


def local_day(at: datetime, time_zone: str) -> date:
    """The tenant's calendar day holding ``at`` (as ``tiers.local_day`` in SQL)."""
    return at.astimezone(ZoneInfo(time_zone)).date()


async def tenant_day(db: Db, tenant_id: str, at: datetime) -> date:
    """The local day holding ``at`` in the tenant's time zone."""
    return local_day(at, await tenant_time_zone(db, tenant_id))
