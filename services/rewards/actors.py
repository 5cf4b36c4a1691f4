"""Background work of the rewards service: finishing redemptions a crash left half-way, keeping
the Redis stock mirror and team-buy leaderboards in step, team-buy scores and settlement, and
members' tiers from the tiers service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import msgspec

from proto.events import Envelope, TierChanged
from services.rewards import store
from services.rewards.app import RewardsComponents
from services.rewards.boxes import HOLD_EXPIRES_S as DRAW_HOLD_EXPIRES_S
from services.rewards.points_client import PointsUnavailable
from services.rewards.red_packets.actors import settle_red_packets
from services.rewards.redemptions import HOLD_EXPIRES_S
from services.rewards.team_buy.actors import (
    apply_team_purchases,
    settle_campaigns,
    sync_leaderboards,
)
from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.db import Conn
from services.runtime.errors import FuliError
from services.runtime.worker import WorkerContext

log = logging.getLogger("fuli.rewards.actors")

QUEUE = "rewards"
STUCK_AFTER_S = 20
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
