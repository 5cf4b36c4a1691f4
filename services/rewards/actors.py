"""Background work of the rewards service, every actor and periodic job in one list: finishing
redemptions and draws a crash left half-way, keeping the Redis stock mirror and team-buy
leaderboards in step, red packets' and team-buy settlement, team-buy scores, and members' tiers
from the tiers service. The features' own actors are in their ``actors`` modules."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

from services.rewards import store, team_buy, team_store
from services.rewards.app import RewardsComponents
from services.rewards.boxes.actors import recover_draws
from services.rewards.catalog.actors import apply_tier_changed, recover_redemptions, sync_stock
from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.errors import FuliError
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.rewards.actors")

QUEUE = "rewards"
STUCK_AFTER_S = 20
GRACE_S = 5  # late grabs and opens of a just-ended pool or packet land first
BATCH = 200


async def components() -> RewardsComponents:
    return await WorkerContext.components("rewards", RewardsComponents)


async def settle_red_packets() -> None:
    """Finish opens left half-way, return ended pools' remainders to the issuance account and
    expired packets' remainders to their makers."""
    resources = await WorkerContext.resources()
    red = (await components()).red_packets
    now = datetime.now(UTC)
    for row in await store.reserved_opens(resources.pool,
                                          now - timedelta(seconds=STUCK_AFTER_S), BATCH):
        await _quietly(red.finish_open(row["tenant_id"], row["open_id"]), row["open_id"])
    for row in await store.ended_pools(resources.pool, now - timedelta(seconds=GRACE_S),
                                       BATCH):
        await _quietly(red.settle_pool(row["tenant_id"], row["pool_id"]), row["pool_id"])
    for row in await store.expired_packets(resources.pool, now - timedelta(seconds=GRACE_S),
                                           BATCH):
        await _quietly(red.expire_packet(row["tenant_id"], row["packet_id"]),
                       row["packet_id"])


async def _quietly(step: Awaitable[object], what: str) -> None:
    try:
        await step
    except FuliError as exc:
        log.warning("%s not settled yet: %s", what, exc)


async def apply_team_purchases(bodies: str | list[str]) -> None:
    """Purchases and refunds into team-buy scores, then onto the leaderboards."""
    resources = await WorkerContext.resources()
    changes = team_buy.ScoreChanges()
    try:
        await consume(resources.pool, "rewards.apply_team_purchases", bodies, changes.apply)
    finally:
        await changes.publish((await components()).boards)


async def settle_campaigns() -> None:
    """Settle team-buy campaigns past their end and grace, and finish interrupted ones."""
    resources = await WorkerContext.resources()
    points = (await components()).points
    now = datetime.now(UTC)
    for row in await team_store.due_campaigns(resources.pool, now):
        await _quietly(team_buy.settle(resources.pool, points, row["tenant_id"],
                                       row["campaign_id"], now),
                       f"campaign {row['campaign_id']}")


async def sync_leaderboards() -> None:
    """Republish open campaigns' boards from PostgreSQL (after a flush, or missed writes)."""
    resources = await WorkerContext.resources()
    boards = (await components()).boards
    for row in await team_store.open_campaigns(resources.pool):
        await boards.rebuild(resources.pool, row["tenant_id"], row["campaign_id"])


ACTORS: list[ActorSpec] = [
    ActorSpec("rewards.recover_redemptions", QUEUE, recover_redemptions, max_retries=3),
    ActorSpec("rewards.recover_draws", QUEUE, recover_draws, max_retries=3),
    ActorSpec("rewards.settle_red_packets", QUEUE, settle_red_packets, max_retries=3),
    ActorSpec("rewards.sync_stock", QUEUE, sync_stock, max_retries=3),
    ActorSpec("rewards.apply_tier_changed", QUEUE, apply_tier_changed),
    ActorSpec("rewards.apply_team_purchases", QUEUE, apply_team_purchases),
    ActorSpec("rewards.settle_campaigns", QUEUE, settle_campaigns, max_retries=3),
    ActorSpec("rewards.sync_leaderboards", QUEUE, sync_leaderboards, max_retries=3),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("rewards.recover_redemptions", QUEUE, every_s=10),
    PeriodicJob("rewards.recover_draws", QUEUE, every_s=10),
    PeriodicJob("rewards.settle_red_packets", QUEUE, every_s=10),
    PeriodicJob("rewards.sync_stock", QUEUE, every_s=30),
    PeriodicJob("rewards.settle_campaigns", QUEUE, every_s=30),
    PeriodicJob("rewards.sync_leaderboards", QUEUE, every_s=60),
]
