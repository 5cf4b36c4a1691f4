"""Background work of team-buy: purchases and refunds into scores and onto the boards,
settlement of ended campaigns, and boards republished from PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.app import RewardsComponents
from services.rewards.team_buy.team_buy import TeamBuy
from services.runtime.bus import consume
from services.runtime.worker import WorkerContext


async def _team_buy() -> TeamBuy:
    return (await WorkerContext.components("rewards", RewardsComponents)).team_buy


async def apply_team_purchases(bodies: str | list[str]) -> None:
    """Purchases and refunds into team-buy scores, then onto the leaderboards."""
    resources = await WorkerContext.resources()
    changes = (await _team_buy()).score_changes()
    try:
        await consume(resources.pool, "rewards.apply_team_purchases", bodies, changes.apply)
    finally:
        await changes.publish()


async def settle_campaigns() -> None:
    """Settle team-buy campaigns past their end and grace, and finish interrupted ones."""
    await (await _team_buy()).settle_due(datetime.now(UTC))


async def sync_leaderboards() -> None:
    """Republish open campaigns' boards from PostgreSQL (after a flush, or missed writes)."""
    await (await _team_buy()).sync_boards()
