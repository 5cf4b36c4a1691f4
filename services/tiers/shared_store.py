"""SQL the tiers features share: the tenant's tier policy and value model (each written by its
own feature, read by several), member rows, and member activity folded from the bus (written
here only; read by the SQL functions behind value scores and group reports)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec

from proto.tiers import Policy, ValueModel
from services.runtime.db import Conn, Db


async def policy(db: Db, tenant_id: str) -> Policy | None:
    raw = await db.fetchval("SELECT policy FROM tiers.policies WHERE tenant_id = $1", tenant_id)
    return None if raw is None else msgspec.convert(raw, Policy)


async def value_model(db: Db, tenant_id: str) -> ValueModel | None:
    raw = await db.fetchval("SELECT model FROM tiers.value_models WHERE tenant_id = $1",
                            tenant_id)
    return None if raw is None else msgspec.convert(raw, ValueModel)


async def ensure_member(conn: Conn, tenant_id: str, member_id: str) -> None:
    """Every member the service has heard of has a row: the population of KOC shares."""
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        tenant_id, member_id)


class ActionDay(NamedTuple):
    tenant_id: str
    member_id: str
    action: str
    group_id: str
    at: datetime


async def ensure_members(conn: Conn, tenant_ids: list[str], member_ids: list[str]) -> None:
    """``ensure_member`` for many, in (tenant, member) order."""
    await conn.execute(
        "INSERT INTO tiers.members (tenant_id, member_id)"
        " SELECT DISTINCT t.tenant_id, t.member_id FROM unnest($1::text[], $2::text[])"
        " AS t(tenant_id, member_id) ORDER BY 1, 2 ON CONFLICT DO NOTHING",
        tenant_ids, member_ids)


async def add_actions(conn: Conn, actions: list[ActionDay]) -> None:
    """Counts each action on its tenant's local day, the actions of one row counted together
    (a statement may change a row once)."""
    if not actions:
        return
    await conn.execute(
        "INSERT INTO tiers.action_days AS d (tenant_id, member_id, day, action, group_id, actions)"
        " SELECT t.tenant_id, t.member_id, tiers.local_day(t.tenant_id, t.at), t.action,"
        " t.group_id, count(*)"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])"
        " AS t(tenant_id, member_id, action, group_id, at) GROUP BY 1, 2, 3, 4, 5"
        " ORDER BY 1, 2, 3, 4, 5 ON CONFLICT (tenant_id, member_id, day, action, group_id)"
        " DO UPDATE SET actions = d.actions + EXCLUDED.actions",
        *map(list, zip(*actions, strict=True)))


async def add_purchase(conn: Conn, tenant_id: str, event_id: str, member_id: str,
                       action: str, group_id: str | None, at: datetime,
                       amount_cents: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.purchases AS p (tenant_id, event_id, member_id, action, group_id,"
        " occurred_at, day, amount_cents) VALUES ($1, $2, $3, $4, $5, $6,"
        " tiers.local_day($1, $6), $7) ON CONFLICT (tenant_id, event_id) DO UPDATE"
        " SET action = EXCLUDED.action, group_id = EXCLUDED.group_id,"
        " occurred_at = EXCLUDED.occurred_at, day = EXCLUDED.day,"
        " amount_cents = EXCLUDED.amount_cents",
        tenant_id, event_id, member_id, action, group_id, at, amount_cents)


async def add_refund(conn: Conn, tenant_id: str, event_id: str, member_id: str,
                     occurred_at: datetime, amount_cents: int) -> None:
    await conn.execute(
        "INSERT INTO tiers.purchases AS p (tenant_id, event_id, member_id, occurred_at, day,"
        " refunded_cents) VALUES ($1, $2, $3, $4, tiers.local_day($1, $4), $5)"
        " ON CONFLICT (tenant_id, event_id)"
        " DO UPDATE SET refunded_cents = p.refunded_cents + EXCLUDED.refunded_cents",
        tenant_id, event_id, member_id, occurred_at, amount_cents)


async def add_source(conn: Conn, tenant_id: str, member_id: str, channel: str, event_id: str,
                     at: datetime) -> None:
    """Keeps the channel of the member's earliest event naming one (ties by event id)."""
    await conn.execute(
        "INSERT INTO tiers.member_sources AS s (tenant_id, member_id, channel, event_id,"
        " occurred_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, member_id)"
        " DO UPDATE SET channel = EXCLUDED.channel, event_id = EXCLUDED.event_id,"
        " occurred_at = EXCLUDED.occurred_at"
        " WHERE (EXCLUDED.occurred_at, EXCLUDED.event_id) < (s.occurred_at, s.event_id)",
        tenant_id, member_id, channel, event_id, at)
