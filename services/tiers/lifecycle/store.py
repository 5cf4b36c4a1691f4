"""SQL of the AIPL lifecycle: the tenant's model, evaluations through
``tiers.compute_lifecycle``, members' stages, figures and history, the funnel, and the tenants
the daily evaluation is due for."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from proto.tiers import LifecycleModel
from services.runtime.db import Conn, Db, as_struct, as_struct_or_none, as_structs, refusals


class StoredModel(msgspec.Struct, frozen=True):
    model: LifecycleModel
    updated_at: datetime


class Computed(msgspec.Struct, frozen=True):
    day: date
    members: int
    changed: int
    stages: dict[str, int]
    moves: list[dict[str, Any]]


class LastEvaluation(msgspec.Struct, frozen=True):
    at: datetime
    day: date
    model: LifecycleModel


class MemberStage(msgspec.Struct, frozen=True):
    known: bool
    stage: str | None
    since: datetime | None


class FigureRow(msgspec.Struct, frozen=True):
    engagement_actions: int
    purchases: int
    repurchase_gap_days: int | None
    last_purchase_day: date | None


class ChangeRow(msgspec.Struct, frozen=True):
    change_id: int
    from_stage: str | None
    to_stage: str
    at: datetime


class FunnelRow(msgspec.Struct, frozen=True):
    from_stage: str | None
    to_stage: str
    members: int


async def model(db: Db, tenant_id: str) -> StoredModel | None:
    return as_struct_or_none(StoredModel, await db.fetchrow(
        "SELECT model, updated_at FROM tiers.lifecycle_models WHERE tenant_id = $1", tenant_id))


async def put_model(conn: Conn, tenant_id: str, lifecycle_model: LifecycleModel) -> datetime:
    updated_at: datetime = await conn.fetchval(
        "INSERT INTO tiers.lifecycle_models (tenant_id, model) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, updated_at = now()"
        " RETURNING updated_at", tenant_id, lifecycle_model)
    return updated_at


async def compute(conn: Conn, tenant_id: str, lifecycle_model: LifecycleModel,
                  at: datetime) -> Computed:
    """Every known member to their stage as of ``at`` (``evaluation_out_of_order`` if the
    tenant's last evaluation is later)."""
    with refusals():
        row = await conn.fetchrow("SELECT * FROM tiers.compute_lifecycle($1, $2, $3)",
                                  tenant_id, lifecycle_model, at)
    assert row is not None
    return as_struct(Computed, row)


async def last_evaluation(db: Db, tenant_id: str) -> LastEvaluation | None:
    return as_struct_or_none(LastEvaluation, await db.fetchrow(
        "SELECT at, day, model FROM tiers.lifecycle_evaluations WHERE tenant_id = $1"
        " ORDER BY at DESC, evaluation_id DESC LIMIT 1", tenant_id))


async def member_stage(db: Db, tenant_id: str, member_id: str) -> MemberStage:
    """Whether the member is known (has a tiers.members row) and their current stage."""
    row = await db.fetchrow(
        "SELECT true AS known, s.stage, s.since FROM tiers.members m"
        " LEFT JOIN tiers.member_stages s USING (tenant_id, member_id)"
        " WHERE m.tenant_id = $1 AND m.member_id = $2", tenant_id, member_id)
    return MemberStage(known=False, stage=None, since=None) if row is None \
        else as_struct(MemberStage, row)


async def figures(db: Db, tenant_id: str, lifecycle_model: LifecycleModel, last_day: date,
                  member_id: str) -> FigureRow:
    row = await db.fetchrow(
        "SELECT engagement_actions, purchases, repurchase_gap_days, last_purchase_day"
        " FROM tiers.lifecycle_stages($1, $2, $3, ARRAY[$4])",
        tenant_id, lifecycle_model, last_day, member_id)
    return FigureRow(0, 0, None, None) if row is None else as_struct(FigureRow, row)


async def history(db: Db, tenant_id: str, member_id: str, before: int | None,
                  limit: int) -> list[ChangeRow]:
    """The member's changes, newest first, below change ``before`` if given."""
    return as_structs(ChangeRow, await db.fetch(
        "SELECT change_id, from_stage, to_stage, at FROM tiers.stage_history"
        " WHERE tenant_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR change_id < $3)"
        " ORDER BY change_id DESC LIMIT $4", tenant_id, member_id, before, limit))


async def funnel(db: Db, tenant_id: str, start: datetime, end: datetime) -> list[FunnelRow]:
    return as_structs(FunnelRow, await db.fetch(
        "SELECT from_stage, to_stage, members FROM tiers.lifecycle_funnel($1, $2, $3)",
        tenant_id, start, end))


async def due_tenants(db: Db, now: datetime) -> list[str]:
    """Tenants with a model whose last evaluation was on a local day before ``now``'s, or
    before their model last changed (or who have none yet)."""
    rows = await db.fetch(
        "SELECT m.tenant_id FROM tiers.lifecycle_models m"
        " LEFT JOIN LATERAL (SELECT max(e.day) AS day, max(e.created_at) AS created_at"
        "   FROM tiers.lifecycle_evaluations e WHERE e.tenant_id = m.tenant_id) last ON true"
        " WHERE last.day IS NULL OR last.day < tiers.local_day(m.tenant_id, $1)"
        "    OR last.created_at < m.updated_at"
        " ORDER BY m.tenant_id", now)
    return [str(row["tenant_id"]) for row in rows]
