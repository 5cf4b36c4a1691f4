"""SQL of value scores: the value model (read through the shared store), scores under it from
``tiers.member_values`` and the population KOC shares are taken of."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import msgspec

from proto.tiers import ValueModel
from services.runtime.db import Db, as_struct_or_none, as_structs


class MemberScores(msgspec.Struct, frozen=True):
    member_id: str
    consumption: Decimal
    content: Decimal
    interaction: Decimal
    social: Decimal
    total: Decimal


async def put_value_model(db: Db, tenant_id: str, model: ValueModel) -> None:
    await db.execute(
        "INSERT INTO tiers.value_models (tenant_id, model) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, updated_at = now()",
        tenant_id, model)


async def member_scores(db: Db, tenant_id: str, model: ValueModel, last_day: date,
                        member_id: str) -> MemberScores | None:
    return as_struct_or_none(MemberScores, await db.fetchrow(
        "SELECT * FROM tiers.member_values($1, $2, $3, ARRAY[$4])",
        tenant_id, model, last_day, member_id))


async def population(db: Db, tenant_id: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM tiers.members WHERE tenant_id = $1",
                                 tenant_id))


async def top_scores(db: Db, tenant_id: str, model: ValueModel, last_day: date,
                     limit: int) -> list[MemberScores]:
    return as_structs(MemberScores, await db.fetch(
        "SELECT * FROM tiers.member_values($1, $2, $3, NULL) WHERE total > 0"
        " ORDER BY total DESC, member_id LIMIT $4", tenant_id, model,
        last_day, limit))
