"""Background work of the catalog: finishing redemptions a crash left half-way, the Redis stock
mirror, and members' tiers from the tiers service."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.app import components


async def recover_redemptions() -> None:
    """Drive redemptions a crash or an unreachable points service left half-way to their end."""
    await (await components()).redemptions.recover(datetime.now(UTC))


async def sync_stock() -> None:
    """Republish every perk's stock to Redis (after a flush, or missed writes)."""
    await (await components()).catalog.sync_stock()


async def apply_tier_changed(bodies: str | list[str]) -> None:
    """Members' tiers, as the tiers service announces them, for perk eligibility."""
    await (await components()).catalog.apply_tier_changes(bodies)
