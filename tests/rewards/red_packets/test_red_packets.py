from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from services.rewards.red_packets.actors import settle_red_packets
from services.rewards.red_packets.rules import escrow_of
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Rewards, error_code, uid
from tests.support.bus import worker_context


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def make_pool(rewards: Rewards, **fields: Any) -> str:
    pool_id = uid("pool")
    response = await rewards.client.post("/rewards/v1/pools", headers=rewards.operator, json={
        "pool_id": pool_id, "name": "Spring pool", "total_points": 1000, "packets": 100,
        "ends_at": later(3600), **fields})
    assert response.status_code == 201, response.text
    return pool_id


async def open_pool(rewards: Rewards, pool_id: str, member: str) -> Any:
    return await rewards.client.post(f"/rewards/v1/pools/{pool_id}/opens",
                                     headers=rewards.ingest,
                                     json={"open_id": uid("o"), "member_id": member})


async def run(settings: Settings, step: Any, times: int = 1) -> None:
    """Runs a worker step, ``times`` copies of it concurrently, on one worker context (closing
    the context after each copy would pull the pool from under the others)."""
    async with worker_context(settings):
        await asyncio.gather(*(step() for _ in range(times)))


async def test_1000_members_open_a_pool_of_100(rewards: Rewards, settings: Settings) -> None:
    pool_id = await make_pool(rewards, per_member_opens=1)
    members = [uid("m") for _ in range(1000)]
    responses = await asyncio.gather(*[open_pool(rewards, pool_id, m) for m in members])
    assert Counter(r.status_code for r in responses) == {201: 100, 409: 900}
    assert {error_code(r) for r in responses if r.status_code == 409} == {"out_of_stock"}, \
        Counter(r.text[:300] for r in responses if r.status_code == 409 and
                error_code(r) != "out_of_stock")
    paid = [r.json() for r in responses if r.status_code == 201]
    assert sum(p["points"] for p in paid) == 1000 and min(p["points"] for p in paid) >= 1
    states = await asyncio.gather(*[rewards.points.member(p["member_id"]) for p in paid])
    assert sum(s["available"] for s in states) == 1000
    view = (await rewards.client.get(f"/rewards/v1/pools/{pool_id}",
                                     headers=rewards.ingest)).json()
    assert (view["remaining_packets"], view["remaining_points"]) == (0, 0)
    escrow = await rewards.points.member(escrow_of("pool", pool_id))
    assert escrow["available"] == 0
    await rewards.points.assert_ledger_ok()


async def test_per_member_opens_and_open_cost(rewards: Rewards) -> None:
    pool_id = await make_pool(rewards, per_member_opens=2, open_cost_points=3)
    member, poor = uid("m"), uid("poor")
    await rewards.points.give(member, 10)
    results = await asyncio.gather(*[open_pool(rewards, pool_id, member) for _ in range(6)])
    assert Counter(r.status_code for r in results) == {201: 2, 409: 4}
    assert {error_code(r) for r in results if r.status_code == 409} == {"limit_reached"}
    got = sum(r.json()["points"] for r in results if r.status_code == 201)
    assert (await rewards.points.member(member))["available"] == 10 - 6 + got
    refused = await open_pool(rewards, pool_id, poor)
    assert refused.status_code == 409 and error_code(refused) == "insufficient_points"
    view = (await rewards.client.get(f"/rewards/v1/pools/{pool_id}",
                                     headers=rewards.ingest)).json()
    assert view["remaining_packets"] == 98, "a refused open gives its packet back"
    await rewards.points.assert_ledger_ok()


async def test_refused_opens_are_evaluated_again_and_paid_ones_replay(
        rewards: Rewards) -> None:
    """A refused open moved nothing and stores nothing: the same open again is evaluated again
    (and succeeds once the member can pay); a paid open replays byte for byte. The messages
    speak of the pool, not of a perk."""
    pool_id = await make_pool(rewards, total_points=3, packets=3, per_member_opens=1,
                              open_cost_points=1)
    rich, poor = uid("rich"), uid("poor")
    await rewards.points.give(rich, 5)
    expected = {
        "insufficient_points": b'{"error":{"code":"insufficient_points","message":"not enough'
                               b' points to open a packet of this pool","details":'
                               b'{"available":0,"requested":1}}}',
        "limit_reached": b'{"error":{"code":"limit_reached","message":"the member opened this'
                         b' pool as many times as it allows","details":{"per_member_opens":1}}}',
        "out_of_stock": b'{"error":{"code":"out_of_stock","message":"every packet of this pool'
                        b' was opened","details":{"packets":3}}}',
    }
    url = f"/rewards/v1/pools/{pool_id}/opens"

    async def refused_twice(code: str, member: str) -> dict[str, str]:
        body = {"open_id": uid("o"), "member_id": member}
        for _ in range(2):
            answer = await rewards.client.post(url, headers=rewards.ingest, json=body)
            assert (answer.status_code, answer.content) == (409, expected[code]), answer.text
            assert "idempotent-replayed" not in answer.headers
        return body

    first = await open_pool(rewards, pool_id, rich)
    assert first.status_code == 201, first.text
    waiting = await refused_twice("insufficient_points", poor)
    await refused_twice("limit_reached", rich)
    await rewards.points.give(poor, 1)
    opened = await rewards.client.post(url, headers=rewards.ingest, json=waiting)
    assert opened.status_code == 201, opened.text
    replay = await rewards.client.post(url, headers=rewards.ingest, json=waiting)
    assert (replay.status_code, replay.content) == (201, opened.content)
    assert replay.headers["idempotent-replayed"] == "true"
    other = uid("m")
    await rewards.points.give(other, 5)
    assert (await open_pool(rewards, pool_id, other)).status_code == 201
    late = uid("late")
    await rewards.points.give(late, 5)
    await refused_twice("out_of_stock", late)
    ended = await make_pool(rewards, starts_at=later(3000), ends_at=later(3600))
    closed = await open_pool(rewards, ended, rich)
    assert closed.content == (b'{"error":{"code":"not_available","message":"the pool is not'
                              b' open now","details":{}}}')
    await rewards.points.assert_ledger_ok()


async def test_redis_flushed_mid_pool_pays_no_packet_twice(
        rewards: Rewards, resources: Resources) -> None:
    pool_id = await make_pool(rewards, total_points=500, packets=50)
    members = [uid("m") for _ in range(200)]

    async def flush_soon() -> None:
        await asyncio.sleep(0.05)
        await resources.redis.flushdb()

    results = await asyncio.gather(flush_soon(), *[open_pool(rewards, pool_id, m)
                                                   for m in members])
    responses = results[1:]
    assert all(r.status_code in (201, 409) for r in responses), \
        [r.text for r in responses if r.status_code not in (201, 409)]
    paid = [r.json() for r in responses if r.status_code == 201]
    assert len(paid) == 50 and sum(p["points"] for p in paid) == 500
    indexes = await resources.pool.fetch(
        "SELECT share_index FROM rewards.pool_opens WHERE tenant_id = $1 AND status = 'paid'",
        rewards.tenant.name)
    assert len({r["share_index"] for r in indexes}) == 50
    await rewards.points.assert_ledger_ok()


async def test_an_ended_pool_returns_its_remainder_to_issuance(
        rewards: Rewards, settings: Settings) -> None:
    pool_id = await make_pool(rewards, ends_at=later(3))
    opened = [await open_pool(rewards, pool_id, uid("m")) for _ in range(3)]
    handed = sum(r.json()["points"] for r in opened)
    await asyncio.sleep(8.5)  # past the end and the settling grace
    late = await open_pool(rewards, pool_id, uid("m"))
    assert late.status_code == 409 and error_code(late) == "not_available"
    await run(settings, settle_red_packets)
    await run(settings, settle_red_packets)
    view = (await rewards.client.get(f"/rewards/v1/pools/{pool_id}",
                                     headers=rewards.ingest)).json()
    assert view["status"] == "settled"
    escrow = await rewards.points.member(escrow_of("pool", pool_id))
    assert escrow["available"] == 0 and escrow["reversed"] == 1000 - handed
    await rewards.points.assert_ledger_ok()


async def make_packet(rewards: Rewards, *, funds: int, total_points: int, shares: int,
                      expires_in_s: int, split: str = "equal",
                      **extra: Any) -> tuple[str, str]:
    """A member packet made by a new member given ``funds`` points: (maker, packet_id)."""
    maker, packet_id = uid("maker"), uid("pk")
    await rewards.points.give(maker, funds)
    made = await rewards.client.post("/rewards/v1/packets", headers=rewards.ingest, json={
        "packet_id": packet_id, "member_id": maker, "total_points": total_points,
        "shares": shares, "split": split, "expires_in_s": expires_in_s, **extra})
    assert made.status_code == 201, made.text
    return maker, packet_id


async def test_a_member_packet_of_100_in_7_shares_grabbed_by_20(
        rewards: Rewards, settings: Settings) -> None:
    maker, packet_id = await make_packet(rewards, funds=150, total_points=100, shares=7,
                                         expires_in_s=60, split="lucky", group_id="g-1")
    assert (await rewards.points.member(maker))["available"] == 50
    grabbers = [uid("g") for _ in range(20)]
    grabs = await asyncio.gather(*[
        rewards.client.post(f"/rewards/v1/packets/{packet_id}/grabs", headers=rewards.ingest,
                            json={"member_id": g}) for g in grabbers])
    ok = [g.json() for g in grabs if g.status_code == 201]
    assert len(ok) == 7 and sum(g["points"] for g in ok) == 100
    assert min(g["points"] for g in ok) >= 1
    assert {error_code(g) for g in grabs if g.status_code != 201} == {"out_of_stock"}
    again = await rewards.client.post(f"/rewards/v1/packets/{packet_id}/grabs",
                                      headers=rewards.ingest,
                                      json={"member_id": ok[0]["member_id"]})
    assert again.status_code == 201 and again.json() == ok[0]
    await rewards.points.assert_ledger_ok()


async def test_grabs_with_an_id_replay_refuse_the_maker_and_a_second_grab(
        rewards: Rewards) -> None:
    maker, packet_id = await make_packet(rewards, funds=100, total_points=30, shares=3,
                                         expires_in_s=60)
    url = f"/rewards/v1/packets/{packet_id}/grabs"

    async def grab(body: dict[str, Any]) -> Any:
        return await rewards.client.post(url, headers=rewards.ingest, json=body)

    own = await grab({"grab_id": uid("gr"), "member_id": maker})
    assert (own.status_code, error_code(own)) == (409, "own_packet"), own.text
    member = uid("g")
    body = {"grab_id": uid("gr"), "member_id": member}
    # Concurrent retries of one grab id: one share, one payment, the same bytes.
    first = await asyncio.gather(*[grab(body) for _ in range(20)])
    assert {r.status_code for r in first} == {201}, {r.text for r in first}
    assert len({r.content for r in first}) == 1
    assert sum(r.headers.get("idempotent-replayed") != "true" for r in first) == 1
    assert first[0].json() == {"packet_id": packet_id, "member_id": member, "points": 10,
                               "grab_id": body["grab_id"]}
    replay = await grab(dict(reversed(list(body.items()))))
    assert (replay.status_code, replay.content) == (201, first[0].content)
    assert replay.headers["idempotent-replayed"] == "true"
    conflict = await grab({**body, "member_id": uid("g")})
    assert (conflict.status_code, error_code(conflict)) == (409, "idempotency_conflict")
    second = await grab({"grab_id": uid("gr"), "member_id": member})
    assert (second.status_code, error_code(second)) == (409, "limit_reached"), second.text
    assert second.json()["error"]["message"] == \
        "the member grabbed a share of this packet already"
    old_client = await grab({"member_id": member})  # no id: the member's first grab
    assert old_client.status_code == 201 and old_client.json()["points"] == 10
    for _ in range(2):
        assert (await grab({"grab_id": uid("gr"), "member_id": uid("g")})).status_code == 201
    late_id = uid("gr")
    empty = await grab({"grab_id": late_id, "member_id": uid("g")})
    assert (empty.status_code, error_code(empty)) == (409, "out_of_stock")
    assert empty.json()["error"]["message"] == "every share was grabbed"
    assert (await rewards.points.member(member))["available"] == 10
    assert (await rewards.points.member(maker))["available"] == 70
    await rewards.points.assert_ledger_ok()


async def test_an_expired_packet_returns_the_remainder_to_its_maker_once(
        rewards: Rewards, resources: Resources, settings: Settings) -> None:
    maker, packet_id = await make_packet(rewards, funds=100, total_points=90, shares=9,
                                         expires_in_s=60)
    for _ in range(4):
        grab = await rewards.client.post(f"/rewards/v1/packets/{packet_id}/grabs",
                                         headers=rewards.ingest, json={"member_id": uid("g")})
        assert grab.json()["points"] == 10
    await resources.pool.execute(
        "UPDATE rewards.packets SET expires_at = now() - interval '1 minute'"
        " WHERE tenant_id = $1 AND packet_id = $2", rewards.tenant.name, packet_id)
    await run(settings, settle_red_packets, times=2)
    await run(settings, settle_red_packets)
    assert (await rewards.points.member(maker))["available"] == 10 + 50
    view = (await rewards.client.get(f"/rewards/v1/packets/{packet_id}",
                                     headers=rewards.ingest)).json()
    assert view["status"] == "expired" and view["refunded_points"] == 50
    late = await rewards.client.post(f"/rewards/v1/packets/{packet_id}/grabs",
                                     headers=rewards.ingest, json={"member_id": uid("g")})
    assert late.status_code == 409
    await rewards.points.assert_ledger_ok()


async def test_bad_red_packets_are_4xx_and_change_nothing(rewards: Rewards) -> None:
    maker = uid("maker")
    await rewards.points.give(maker, 10)
    for body in [{"total_points": 5, "packets": 6}, {"total_points": 0, "packets": 1},
                 {"packets": 0}, {"surprise": 1}, {"ends_at": "2020-01-01T00:00:00Z"},
                 {"split": "random"}]:
        response = await rewards.client.post("/rewards/v1/pools", headers=rewards.operator,
                                             json={"pool_id": uid("p"), "name": "x",
                                                   "total_points": 100, "packets": 10,
                                                   "ends_at": later(60), **body})
        assert response.status_code == 422, (body, response.text)
    for body in [{"total_points": 5, "shares": 6}, {"total_points": 11, "shares": 2}]:
        response = await rewards.client.post("/rewards/v1/packets", headers=rewards.ingest,
                                             json={"packet_id": uid("pk"), "member_id": maker,
                                                   "split": "equal", **body})
        assert response.status_code in (409, 422), (body, response.text)
    assert (await rewards.points.member(maker))["available"] == 10
    unknown = await open_pool(rewards, "no-such-pool", maker)
    assert unknown.status_code == 404


async def test_making_and_sharing_packets_earn_through_rules(
        rewards: Rewards, resources: Resources, settings: Settings) -> None:
    from proto.events import SUBSCRIPTIONS
    from services.points import actors as points_actors
    from services.runtime.outbox import envelope_json

    await rewards.points.put_rule("make_packet", points=5, limits=[{"period": "day",
                                                                    "max_events": 3}])
    await rewards.points.put_rule("share_packet", points=2)
    maker = uid("maker")
    await rewards.points.give(maker, 30)
    packet_id = uid("pk")
    await rewards.client.post("/rewards/v1/packets", headers=rewards.ingest, json={
        "packet_id": packet_id, "member_id": maker, "total_points": 20, "shares": 2,
        "group_id": "g-7"})
    for _ in range(2):
        await rewards.client.post(f"/rewards/v1/packets/{packet_id}/grabs",
                                  headers=rewards.ingest, json={"member_id": uid("g")})
    rows = await resources.pool.fetch(
        "SELECT id, event_id, service, tenant_id, event_type, payload, created_at"
        " FROM fuli.outbox WHERE tenant_id = $1 AND event_type LIKE 'Packet%' ORDER BY id",
        rewards.tenant.name)
    assert [r["event_type"] for r in rows] == ["PacketMade", "PacketGrabbed", "PacketGrabbed"]
    assert all("points.earn_for_red_packets" in {s.actor for s in SUBSCRIPTIONS[r["event_type"]]}
               for r in rows)
    async with worker_context(settings):
        for row in [*rows, rows[0]]:  # a redelivered event earns nothing more
            await points_actors.earn_for_red_packets(envelope_json(row))
    assert (await rewards.points.member(maker))["available"] == 30 - 20 + 5 + 2 * 2
    await rewards.points.assert_ledger_ok()
