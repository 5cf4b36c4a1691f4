"""Value scores under the tenant's value model, and the KOC list."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import asyncpg

from proto import tiers as t
from services.runtime.errors import Conflict
from services.tiers import store

MAX_KOCS = 10_000
CATEGORIES = ("consumption", "content", "interaction", "social")


async def require_model(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str) -> Any:
    model = await store.value_model(conn, tenant_id)
    if model is None:
        raise Conflict("set a value model first (PUT /tiers/v1/value-model)",
                       code="no_value_model")
    return model


def _scores(row: asyncpg.Record | None) -> dict[str, float]:
    scores = {c: round(float(row[c]), 4) if row else 0.0 for c in CATEGORIES}
    scores["total"] = round(float(row["total"]), 4) if row else 0.0
    return scores


async def member_value(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                       member_id: str, at: datetime) -> t.MemberValue:
    model = await require_model(conn, tenant_id)
    last_day = await store.local_day(conn, tenant_id, at)
    scores = _scores(await store.member_value(conn, tenant_id, model, last_day, member_id))
    return t.MemberValue(member_id=member_id, **scores,
                         high_value=scores["total"] >= float(model["high_value_line"]),
                         window_days=int(model["window_days"]), last_day=last_day)


async def kocs(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, share: float,
               at: datetime) -> t.KocList:
    """The top ``share`` of the tenant's members by total value (at least one when there are
    members; only members with a value above 0), ties by member id."""
    model = await require_model(conn, tenant_id)
    last_day = await store.local_day(conn, tenant_id, at)
    population = await store.population(conn, tenant_id)
    count = min(math.ceil(share * population - 1e-9), MAX_KOCS)
    rows = await store.top_values(conn, tenant_id, model, last_day, count) if count else []
    return t.KocList(share=share, population=population, count=len(rows), last_day=last_day,
                     items=[t.Koc(rank=rank, member_id=r["member_id"], **_scores(r))
                            for rank, r in enumerate(rows, 1)])
