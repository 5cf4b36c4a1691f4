"""Members' tiers as the tiers service announces them (``TierChanged``, and ``TierChanges`` for
many members), mirrored in ``rewards.member_tiers``: who may redeem a perk, who may take a
task."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.runtime.db import Conn, Db


async def member_tier(db: Db, tenant_id: str, member_id: str) -> str | None:
    tier = await db.fetchval(
        "SELECT tier FROM rewards.member_tiers WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id)
    return None if tier is None else str(tier)


async def set_member_tiers(conn: Conn, tenant_id: str, member_ids: Sequence[str], tier: str,
                           at: datetime) -> None:
    """The members' tier as of ``at``; an older announcement never overwrites a newer one.
    Rows are taken in member order, so two of these never wait on each other crosswise."""
    await conn.execute(
        "INSERT INTO rewards.member_tiers (tenant_id, member_id, tier, updated_at)"
        " SELECT $1, m.member_id, $3, $4 FROM unnest($2::text[]) AS m(member_id)"
        " ORDER BY m.member_id ON CONFLICT (tenant_id, member_id) DO UPDATE"
        " SET tier = EXCLUDED.tier, updated_at = EXCLUDED.updated_at"
        " WHERE rewards.member_tiers.updated_at <= EXCLUDED.updated_at",
        tenant_id, list(member_ids), tier, at)
