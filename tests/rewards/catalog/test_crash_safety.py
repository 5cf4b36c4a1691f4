"""Redemptions end completed or with no charge and no stock taken, whatever fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from proto.rewards import RedemptionIn
from services.rewards.catalog import actors, store
from services.rewards.catalog.redemptions import Redemptions
from services.rewards.catalog.stock import StockMirror, stock_key
from services.rewards.points_client import PointsUnavailable
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.rewards.helpers import points_client_with
from tests.support.api import Rewards, uid
from tests.support.bus import worker_context


def redemptions_with(stack: Stack, fails: Callable[[str], bool]) -> Redemptions:
    """Redemptions whose calls to the points service fail when ``fails`` says so."""
    resources = stack.host.resources
    return Redemptions(resources.pool, points_client_with(stack, fails),
                       StockMirror(resources.redis))


async def run_recovery(settings: Settings) -> None:
    async with worker_context(settings):
        await actors.recover_redemptions()


async def test_capture_unreachable_then_hold_voided_leaves_no_charge(
        rewards: Rewards, resources: Resources, settings: Settings, stack: Stack) -> None:
    member = uid("m")
    await rewards.points.give(member, 40)
    sku = await rewards.perk(cost_points=25, stock=2)
    broken = redemptions_with(stack, lambda path: path.endswith("/capture"))
    body = RedemptionIn(redemption_id=uid("rd"), member_id=member, sku=sku)
    try:
        await broken.redeem(rewards.tenant.name, body, datetime.now(UTC))
        raise AssertionError("capture should have failed")
    except PointsUnavailable:
        pass
    row = await store.redemption(resources.pool, rewards.tenant.name, body.redemption_id)
    assert row is not None and row.status == "reserved"
    assert await rewards.stock(sku) == 1
    assert (await rewards.points.member(member))["held"] == 25
    # Meanwhile the hold is voided (operations, or its time-out); then the worker runs.
    assert (await rewards.points.void(row.hold_id)).status_code == 200
    await resources.pool.execute(
        "UPDATE rewards.redemptions SET updated_at = now() - interval '1 hour'"
        " WHERE tenant_id = $1 AND redemption_id = $2", rewards.tenant.name, body.redemption_id)
    await run_recovery(settings)
    row = await store.redemption(resources.pool, rewards.tenant.name, body.redemption_id)
    assert row is not None and row.status == "failed"
    info = await rewards.points.member(member)
    assert (info["available"], info["held"], info["spent"]) == (40, 0, 0)
    assert await rewards.stock(sku) == 2
    replay = await rewards.client.post("/rewards/v1/redemptions", headers=rewards.ingest,
                                       json={"redemption_id": body.redemption_id,
                                             "member_id": member, "sku": sku, "quantity": 1})
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "redemption_failed"
    await rewards.points.assert_ledger_ok()


async def test_a_crash_after_reserving_is_finished_by_the_worker(
        rewards: Rewards, resources: Resources, settings: Settings, stack: Stack) -> None:
    member = uid("m")
    await rewards.points.give(member, 40)
    sku = await rewards.perk(cost_points=25, stock=2)
    broken = redemptions_with(stack, lambda path: path.endswith("/capture"))
    body = RedemptionIn(redemption_id=uid("rd"), member_id=member, sku=sku)
    try:
        await broken.redeem(rewards.tenant.name, body, datetime.now(UTC))
    except PointsUnavailable:
        pass
    await resources.pool.execute(
        "UPDATE rewards.redemptions SET updated_at = now() - interval '1 hour'"
        " WHERE tenant_id = $1 AND redemption_id = $2", rewards.tenant.name, body.redemption_id)
    await run_recovery(settings)
    replay = await rewards.client.post("/rewards/v1/redemptions", headers=rewards.ingest,
                                       json={"redemption_id": body.redemption_id,
                                             "member_id": member, "sku": sku, "quantity": 1})
    assert replay.status_code == 201 and replay.json()["status"] == "pending_fulfilment"
    info = await rewards.points.member(member)
    assert (info["available"], info["held"], info["spent"]) == (15, 0, 25)
    assert await rewards.stock(sku) == 1
    await rewards.points.assert_ledger_ok()


async def test_redis_flushed_mid_burst_never_oversells(
        rewards: Rewards, resources: Resources, settings: Settings, stack: Stack) -> None:
    sku = await rewards.perk(cost_points=1, stock=60)
    members = [uid("m") for _ in range(150)]
    await rewards.points.grant([{"member_id": m, "points": 1} for m in members])

    async def flush_soon() -> None:
        await asyncio.sleep(0.05)
        await resources.redis.delete(stock_key(rewards.tenant.name, sku))
        await resources.redis.flushdb()

    results = await asyncio.gather(flush_soon(), *[rewards.redeem(m, sku) for m in members])
    responses = results[1:]
    assert sum(1 for r in responses if r.status_code == 201) == 60
    assert all(r.status_code in (201, 409) for r in responses)
    async with worker_context(settings):
        await actors.sync_stock()
    mirrored = await resources.redis.hget(stock_key(rewards.tenant.name, sku), "left")
    assert await rewards.stock(sku) == 0 and mirrored is not None and int(mirrored) == 0
    await rewards.points.assert_ledger_ok()


async def test_a_cancel_interrupted_before_the_refund_is_finished_by_the_worker(
        rewards: Rewards, resources: Resources, settings: Settings, stack: Stack) -> None:
    member = uid("m")
    await rewards.points.give(member, 30)
    sku = await rewards.perk(cost_points=30, stock=1)
    rid = (await rewards.redeem(member, sku)).json()["redemption_id"]
    broken = redemptions_with(stack, lambda path: path.endswith("/refund"))
    try:
        await broken.cancel(rewards.tenant.name, rid)
        raise AssertionError("the refund should have failed")
    except PointsUnavailable:
        pass
    assert (await rewards.points.member(member))["available"] == 0
    await resources.pool.execute(
        "UPDATE rewards.redemptions SET updated_at = now() - interval '1 hour'"
        " WHERE tenant_id = $1 AND redemption_id = $2", rewards.tenant.name, rid)
    await run_recovery(settings)
    row = await store.redemption(resources.pool, rewards.tenant.name, rid)
    assert row is not None and row.status == "cancelled"
    assert (await rewards.points.member(member))["available"] == 30
    assert await rewards.stock(sku) == 1
    await rewards.points.assert_ledger_ok()
