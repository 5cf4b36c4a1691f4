"""Background work of team-buy: purchases and refunds into scores and onto the boards,
settlement of ended campaigns, and boards republished from PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.app import components


async def apply_team_purchases(bodies: str | list[str]) -> None:
    """Purchases and refunds into team-buy scores, then onto the leaderboards."""
    await (await components()).team_buy.apply_purchases(bodies)


async def settle_campaigns() -> None:
    """Settle team-buy campaigns past their end and grace, and finish interrupted ones."""
    await (await components()).team_buy.settle_due(datetime.now(UTC))


async def sync_leaderboards() -> None:
    """Republish open campaigns' boards from PostgreSQL (after a flush, or missed writes)."""
    await (await components()).team_buy.sync_boards()
