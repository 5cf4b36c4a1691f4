"""Figures of a tenant's ledger for the operators' console: issuance, spending, expiry, reversals
and the points members hold per local day, events per hour, members and the outbox's lag. Every
figure is read from the ledger by one statement of the store; nothing here writes."""

from __future__ import annotations

from datetime import datetime

from proto import points as p
from proto.common import ESCROW_MEMBER_PATTERN
from services.points import store
from services.runtime.db import Pool
from services.runtime.outbox import tenant_backlog
from services.runtime.tenants import tenant_time_zone
from services.runtime.times import MAX_FUTURE_SKEW

MAX_DAYS = 366
DEFAULT_DAYS = 30
MAX_HOURS = 168
DEFAULT_HOURS = 48


class Stats:
    """Read-only figures of one tenant at a time, on connections of the points pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def daily(self, tenant_id: str, days: int, now: datetime) -> p.DailyStats:
        """The last ``days`` local days of the tenant's time zone, today last."""
        async with self.pool.acquire() as conn:
            time_zone = await tenant_time_zone(conn, tenant_id)
            figures = await store.select_daily_figures(conn, tenant_id, time_zone, now, days,
                                                       ESCROW_MEMBER_PATTERN)
        return p.DailyStats(time_zone=time_zone, days=figures)

    async def hourly(self, tenant_id: str, hours: int, now: datetime) -> p.HourlyStats:
        """The last ``hours`` UTC hours, the current one last."""
        async with self.pool.acquire() as conn:
            time_zone = await tenant_time_zone(conn, tenant_id)
            figures = await store.select_hourly_figures(conn, tenant_id, now, hours)
        return p.HourlyStats(time_zone=time_zone, hours=figures)

    async def overview(self, tenant_id: str, now: datetime) -> p.StatsOverview:
        async with self.pool.acquire() as conn:
            activity = await store.select_member_activity(conn, tenant_id, now,
                                                          ESCROW_MEMBER_PATTERN, MAX_FUTURE_SKEW)
            backlog = await tenant_backlog(conn, tenant_id, now)
        return p.StatsOverview(
            members=activity.members, active_members_7d=activity.active_members_7d,
            active_members_30d=activity.active_members_30d,
            outbox=p.OutboxLag(pending=backlog.pending,
                               oldest_pending_age_s=backlog.oldest_age_s),
            at=now)
