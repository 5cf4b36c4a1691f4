"""Background work of the rewards service: finishing redemptions a crash left half-way, keeping
the Redis stock mirror and team-buy leaderboards in step, team-buy scores and settlement, and
members' tiers from the tiers service."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import msgspec

from proto.events import Envelope, TierChanged
from services.rewards import store
from services.rewards.app import RewardsComponents
from services.rewards.boxes import HOLD_EXPIRES_S as DRAW_HOLD_EXPIRES_S
from services.rewards.points_client import PointsUnavailable
from services.rewards.red_packets import store as red_store
from services.rewards.redemptions import HOLD_EXPIRES_S
from services.rewards.team_buy import store as team_store
from services.rewards.team_buy import team_buy
from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.db import Conn
from services.runtime.errors import FuliError
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.rewards.actors")

QUEUE = "rewards"
STUCK_AFTER_S = 20
GRACE_S = 5  # late grabs and opens of a just-ended pool or packet land first
BATCH = 200


async def components() -> RewardsComponents:
    return await WorkerContext.components("rewards", RewardsComponents)


async def recover_redemptions() -> None:
    """Drive redemptions untouched for a while to their end. One still waiting for its hold
    after the hold's own lifetime is given up (and its hold voided if it exists)."""
    resources = await WorkerContext.resources()
    redeemer = (await components()).redeemer
    now = datetime.now(UTC)
    rows = await store.unfinished_redemptions(resources.pool,
                                              now - timedelta(seconds=STUCK_AFTER_S), BATCH)
    for row in rows:
        full = await store.redemption(resources.pool, row["tenant_id"], row["redemption_id"])
        assert full is not None
        abandon = (now - full["created_at"]).total_seconds() > HOLD_EXPIRES_S
        try:
            if full["status"] == "cancelling":
                await redeemer.cancel(row["tenant_id"], row["redemption_id"])
            else:
                await redeemer.drive(row["tenant_id"], row["redemption_id"],
                                     abandon_pending=abandon)
        except (PointsUnavailable, FuliError) as exc:
            log.warning("redemption %s not finished yet: %s", row["redemption_id"], exc)


async def recover_draws() -> None:
    """Finish draws a crash or an unreachable points service left half-way."""
    resources = await WorkerContext.resources()
    drawer = (await components()).drawer
    now = datetime.now(UTC)
    for row in await store.unfinished_draws(resources.pool,
                                            now - timedelta(seconds=STUCK_AFTER_S), BATCH):
        abandon = (now - row["created_at"]).total_seconds() > DRAW_HOLD_EXPIRES_S
        try:
            await drawer.drive(row["tenant_id"], row["draw_id"], abandon_pending=abandon)
        except FuliError as exc:
            log.warning("draw %s not finished yet: %s", row["draw_id"], exc)


async def settle_red_packets() -> None:
    """Finish opens left half-way, return ended pools' remainders to the issuance account and
    expired packets' remainders to their makers."""
    resources = await WorkerContext.resources()
    red = (await components()).red_packets
    now = datetime.now(UTC)
    for row in await red_store.reserved_opens(resources.pool,
                                          now - timedelta(seconds=STUCK_AFTER_S), BATCH):
        await _quietly(red.finish_open(row["tenant_id"], row["open_id"]), row["open_id"])
    for row in await red_store.ended_pools(resources.pool, now - timedelta(seconds=GRACE_S),
                                       BATCH):
        await _quietly(red.settle_pool(row["tenant_id"], row["pool_id"]), row["pool_id"])
    for row in await red_store.expired_packets(resources.pool, now - timedelta(seconds=GRACE_S),
                                           BATCH):
        await _quietly(red.expire_packet(row["tenant_id"], row["packet_id"]),
                       row["packet_id"])


async def _quietly(step: Awaitable[object], what: str) -> None:
    try:
        await step
    except FuliError as exc:
        log.warning("%s not settled yet: %s", what, exc)


async def sync_stock() -> None:
    """Republish every perk's stock to Redis (after a flush, or missed writes)."""
    resources = await WorkerContext.resources()
    await (await components()).redeemer.stock.sync_all(resources.pool)


async def apply_tier_changed(bodies: str | list[str]) -> None:
    """Members' tiers, as the tiers service announces them, for perk eligibility."""
    resources = await WorkerContext.resources()
    await consume(resources.pool, "rewards.apply_tier_changed", bodies, _record_tier)


async def _record_tier(conn: Conn, envelope: Envelope) -> None:
    changed = msgspec.json.decode(envelope.data, type=TierChanged)
    await store.set_member_tier(conn, envelope.tenant_id, changed.member_id, changed.tier,
                                changed.changed_at)


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
