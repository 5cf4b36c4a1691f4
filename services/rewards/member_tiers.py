"""Members' tiers as the tiers service announces them (``TierChanged``), mirrored in
``rewards.member_tiers``: who may redeem a perk, who may take a task."""

from __future__ import annotations

from datetime import datetime

from services.runtime.db import Conn, Db


async def member_tier(db: Db, tenant_id: str, member_id: str) -> str | None:
    tier = await db.fetchval(
        "SELECT tier FROM rewards.member_tiers WHERE tenant_id = $1 AND member_id = $2",
        tenant_id, member_id)
    return None if tier is None else str(tier)


async def set_member_tier(conn: Conn, tenant_id: str, member_id: str, tier: str,
                          at: datetime) -> None:
    """The tier as of ``at``; an older announcement never overwrites a newer one."""
    await conn.execute(
        "INSERT INTO rewards.member_tiers (tenant_id, member_id, tier, updated_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, member_id) DO UPDATE"
        " SET tier = EXCLUDED.tier, updated_at = EXCLUDED.updated_at"
        " WHERE rewards.member_tiers.updated_at <= EXCLUDED.updated_at",
        tenant_id, member_id, tier, at)
