from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.composition.registry import SERVICES
from services.points import actors
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext
from tests.support.api import Points, error_code, uid


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def run_actor(settings: Settings, fn) -> None:  # type: ignore[no-untyped-def]
    WorkerContext.configure(settings, SERVICES)
    try:
        await fn()
    finally:
        await WorkerContext.close()


async def test_expired_lot_is_not_spendable_before_the_sweep(
        points: Points, settings: Settings) -> None:
    member = uid("m")
    await points.grant([{"member_id": member, "points": 40, "expires_at": soon(3.0)},
                        {"member_id": member, "points": 5, "expires_at": soon(3600)}])
    before = await points.member(member)
    assert before["available"] == 45
    assert [e["points"] for e in before["expiring"]] == [40, 5]
    await asyncio.sleep(3.2)
    after = await points.member(member)
    assert after["available"] == 5, "an expired lot is not available, sweep or not"
    assert after["expiring"][0]["points"] == 5
    refused = await points.debit(member, 6)
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["available"] == 5
    assert (await points.hold(member, 6)).status_code == 409
    await points.assert_ledger_ok()

    await run_actor(settings, actors.sweep_expired_lots)
    swept = await points.member(member)
    assert swept["available"] == 5 and swept["expired"] == 40
    latest = (await points.entries(member))["items"][0]
    assert latest["kind"] == "expiry" and latest["points"] == -40 and latest["balance_after"] == 5
    await points.assert_ledger_ok()
    assert (await points.debit(member, 5)).status_code == 201


async def test_spends_take_the_first_expiring_lots_first(points: Points,
                                                         resources: Resources) -> None:
    member = uid("m")
    await points.grant([{"member_id": member, "points": 10, "expires_at": soon(9000)},
                        {"member_id": member, "points": 10, "expires_at": soon(3000)},
                        {"member_id": member, "points": 10, "expires_at": soon(6000)}])
    assert (await points.debit(member, 15)).status_code == 201
    rows = await resources.pool.fetch(
        "SELECT remaining FROM points.lots WHERE tenant_id = $1 AND member_id = $2"
        " ORDER BY expires_at", points.tenant.name, member)
    assert [r["remaining"] for r in rows] == [0, 5, 10]
    hold = await points.hold(member, 7)
    assert hold.status_code == 201
    rows = await resources.pool.fetch(
        "SELECT remaining, held FROM points.lots WHERE tenant_id = $1 AND member_id = $2"
        " ORDER BY expires_at", points.tenant.name, member)
    assert [(r["remaining"], r["held"]) for r in rows] == [(0, 0), (5, 5), (10, 2)]
    await points.assert_ledger_ok()


async def test_earned_points_wait_while_granted_points_expiring_sooner_are_spent(
        points: Points, resources: Resources) -> None:
    """An earned lot (a year by default) and a granted one expiring in an hour: every kind of
    spend takes the granted lot first, whatever the lots' sources."""
    member = uid("m")
    assert (await points.put_rule("first_order", points=20)).status_code == 200
    assert (await points.event(member, "first_order")).status_code == 201
    await points.grant([{"member_id": member, "points": 10, "expires_at": soon(3600)}])

    async def lots() -> list[tuple[str, int, int]]:
        rows = await resources.pool.fetch(
            "SELECT source, remaining, held FROM points.lots"
            " WHERE tenant_id = $1 AND member_id = $2 ORDER BY expires_at",
            points.tenant.name, member)
        return [(r["source"], r["remaining"], r["held"]) for r in rows]

    assert (await points.debit(member, 4)).status_code == 201
    assert await lots() == [("grant", 6, 0), ("event", 20, 0)]
    assert (await points.hold(member, 8)).status_code == 201
    assert await lots() == [("grant", 6, 6), ("event", 20, 2)]
    await points.assert_ledger_ok()


async def test_a_hold_times_out_to_void_and_cannot_be_captured(
        points: Points, settings: Settings) -> None:
    member = uid("m")
    await points.give(member, 50)
    first = await points.hold(member, 20, expires_in_s=1)
    second = await points.hold(member, 10, expires_in_s=1)
    assert first.status_code == second.status_code == 201
    assert (await points.member(member))["held"] == 30
    await asyncio.sleep(1.2)
    # Past its expiry, before the worker ran: still no capture.
    late = await points.capture(first.json()["hold_id"])
    assert late.status_code == 409 and error_code(late) == "hold_expired"
    await run_actor(settings, actors.expire_holds)
    info = await points.member(member)
    assert info["held"] == 0 and info["available"] == 50
    after_sweep = await points.capture(second.json()["hold_id"])
    assert after_sweep.status_code == 409 and error_code(after_sweep) == "hold_not_pending"
    assert after_sweep.json()["error"]["details"] == {"status": "expired"}
    await points.assert_ledger_ok()


async def test_capture_and_void_are_final(points: Points) -> None:
    member = uid("m")
    await points.give(member, 10)
    hold_id = (await points.hold(member, 10)).json()["hold_id"]
    captured = await points.capture(hold_id)
    assert captured.status_code == 200 and captured.json()["status"] == "captured"
    again = await points.capture(hold_id)
    assert again.status_code == 200 and again.content == captured.content
    voided = await points.void(hold_id)
    assert voided.status_code == 409 and error_code(voided) == "hold_not_pending"
    missing = await points.capture("no-such-hold")
    assert missing.status_code == 404 and error_code(missing) == "unknown_hold"
    info = await points.member(member)
    assert info["available"] == 0 and info["spent"] == 10


async def test_a_captured_hold_is_refunded_once_into_its_lots(points: Points) -> None:
    member = uid("m")
    await points.grant([{"member_id": member, "points": 30, "expires_at": soon(5000)},
                        {"member_id": member, "points": 30, "expires_at": soon(9000)}])
    hold_id = (await points.hold(member, 40)).json()["hold_id"]
    refund_url = f"/points/v1/holds/{hold_id}/refund"
    early = await points.client.post(refund_url, headers=points.ingest,
                                     json={"refund_id": uid("rf")})
    assert early.status_code == 409 and error_code(early) == "hold_not_captured"
    assert (await points.capture(hold_id)).status_code == 200
    same_id = uid("rf")
    replays = await asyncio.gather(*[
        points.client.post(refund_url, headers=points.ingest, json={"refund_id": same_id})
        for _ in range(5)])
    assert {r.status_code for r in replays} == {201} and len({r.content for r in replays}) == 1
    others = await asyncio.gather(*[
        points.client.post(refund_url, headers=points.ingest, json={"refund_id": uid("rf")})
        for _ in range(5)])
    assert {r.status_code for r in others} == {409}
    assert {error_code(r) for r in others} == {"already_refunded"}
    info = await points.member(member)
    assert info["available"] == 60 and info["spent"] == 0
    assert [e["points"] for e in info["expiring"]] == [30, 30]
    await points.assert_ledger_ok()


async def test_the_balance_shows_the_five_soonest_expiry_dates_with_held_points_left_out(
        points: Points) -> None:
    member = uid("m")
    # Seven dates, two grants on one of them, given out of order.
    dates = [soon(3600 * hours) for hours in (50, 10, 30, 70, 20, 60, 40)]
    await points.grant([{"member_id": member, "points": 10 + n, "expires_at": at}
                        for n, at in enumerate(dates)]
                       + [{"member_id": member, "points": 100, "expires_at": dates[1]}])
    assert (await points.hold(member, 105)).status_code == 201  # from the soonest lots first
    shown = (await points.member(member))["expiring"]
    by_date = sorted(zip(dates, range(10, 17), strict=True))
    expected = [[at, pts] for at, pts in by_date]
    expected[0][1] += 100 - 105  # the soonest date: 11 + 100 granted, 105 of them held
    assert [e["points"] for e in shown] == [pts for _, pts in expected[:5]]
    assert [datetime.fromisoformat(e["expires_at"]) for e in shown] == [
        datetime.fromisoformat(at) for at, _ in expected[:5]]
