"""Money-grade properties under many concurrent requests."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.support.api import Points, error_code, uid


async def test_200_concurrent_debits_against_a_balance_that_covers_one(points: Points) -> None:
    member = uid("m")
    await points.give(member, 10)
    responses = await asyncio.gather(*[points.debit(member, 10) for _ in range(200)])
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 199}
    refused = [r for r in responses if r.status_code == 409]
    assert {error_code(r) for r in refused} == {"insufficient_points"}
    assert {r.json()["error"]["details"]["available"] for r in refused} == {0}
    info = await points.member(member)
    assert info["available"] == 0 and info["spent"] == 10
    await points.assert_ledger_ok()


async def test_100_concurrent_events_with_a_daily_cap_of_5(points: Points) -> None:
    rule = await points.put_rule("speak", points=3, limits=[{"period": "day", "max_events": 5}])
    assert rule.status_code == 200, rule.text
    member = uid("m")
    responses = await asyncio.gather(*[points.event(member, "speak") for _ in range(100)])
    assert {r.status_code for r in responses} == {201}
    bodies = [r.json() for r in responses]
    awarded = [b for b in bodies if b["status"] == "awarded"]
    assert len(awarded) == 5
    assert all(b["points"] == 3 for b in awarded)
    assert all(b["status"] == "capped" and b["points"] == 0 and b["capped_points"] == 3
               for b in bodies if b["status"] != "awarded")
    assert (await points.member(member))["available"] == 15
    await points.assert_ledger_ok()


async def test_point_cap_awards_the_remainder_under_concurrency(points: Points) -> None:
    await points.put_rule("review", points=7, limits=[{"period": "day", "max_points": 30}])
    member = uid("m")
    responses = await asyncio.gather(*[points.event(member, "review") for _ in range(20)])
    awarded = sorted(r.json()["points"] for r in responses)
    assert sum(awarded) == 30
    assert awarded.count(7) == 4 and awarded.count(2) == 1
    partial = next(r.json() for r in responses if r.json()["points"] == 2)
    assert partial["status"] == "capped" and partial["capped_points"] == 5
    await points.assert_ledger_ok()


async def test_concurrent_holds_never_overdraw(points: Points) -> None:
    member = uid("m")
    await points.give(member, 100)
    responses = await asyncio.gather(*[points.hold(member, 30) for _ in range(20)])
    assert Counter(r.status_code for r in responses) == {201: 3, 409: 17}
    info = await points.member(member)
    assert info["available"] == 10 and info["held"] == 90
    holds = [r.json()["hold_id"] for r in responses if r.status_code == 201]
    settled = await asyncio.gather(points.capture(holds[0]), points.void(holds[1]),
                                   points.capture(holds[2]), points.void(holds[2]))
    assert [r.status_code for r in settled[:2]] == [200, 200]
    assert sorted(r.status_code for r in settled[2:]) == [200, 409]
    info = await points.member(member)
    assert info["held"] == 0
    assert info["available"] + info["spent"] == 100
    await points.assert_ledger_ok()


async def test_mixed_concurrent_traffic_on_many_members_keeps_the_ledger_sound(
        points: Points) -> None:
    members = [uid("m") for _ in range(10)]
    await points.grant([{"member_id": m, "points": 50} for m in members])
    calls = []
    for i in range(300):
        member = members[i % len(members)]
        kind = i % 5
        if kind == 0:
            calls.append(points.event(member, "purchase", amount_cents=1000 + i))
        elif kind == 1:
            calls.append(points.debit(member, 7))
        elif kind == 2:
            calls.append(points.hold(member, 5))
        elif kind == 3:
            calls.append(points.grant([{"member_id": member, "points": 3},
                                       {"member_id": members[(i + 1) % 10], "points": 2}]))
        else:
            calls.append(points.event(member, "speak"))
    responses = await asyncio.gather(*calls)
    assert all(r.status_code in (201, 409) for r in responses), \
        [r.text for r in responses if r.status_code not in (201, 409)]
    await points.assert_ledger_ok()


async def test_moves_between_members_never_overdraw(points: Points) -> None:
    maker, friends = uid("maker"), [uid("f") for _ in range(30)]
    await points.give(maker, 100)
    responses = await asyncio.gather(*[points.client.post(
        "/points/v1/moves", headers=points.ingest,
        json={"move_id": uid("mv"), "from_member_id": maker, "to_member_id": f, "points": 7,
              "reason": "red packet"}) for f in friends])
    assert Counter(r.status_code for r in responses) == {201: 14, 409: 16}
    assert (await points.member(maker))["available"] == 2
    received = await asyncio.gather(*[points.member(f) for f in friends])
    assert sum(r["available"] for r in received) == 98
    retire = await points.client.post("/points/v1/retirements", headers=points.operator, json={
        "retirement_id": uid("rt"), "member_id": maker, "points": 2, "reason": "pool ended"})
    assert retire.status_code == 201 and retire.json()["available"] == 0
    await points.assert_ledger_ok()
