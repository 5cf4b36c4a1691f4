"""A pool's opening cost: an open refused because its member cannot pay gives its share back and
leaves nothing tied to the share, so members who can pay open it afterwards; a paid open is
charged once however often it is sent."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from services.rewards.red_packets.rules import escrow_of
from tests.rewards.red_packets.test_red_packets import make_pool
from tests.support.api import Rewards, error_code, uid

COST = 5


async def open_with(rewards: Rewards, pool_id: str, member: str, open_id: str) -> Any:
    return await rewards.client.post(f"/rewards/v1/pools/{pool_id}/opens",
                                     headers=rewards.ingest,
                                     json={"open_id": open_id, "member_id": member})


async def pool_view(rewards: Rewards, pool_id: str) -> dict[str, Any]:
    response = await rewards.client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_refused_open_leaves_the_packet_to_a_member_who_can_pay(
        rewards: Rewards) -> None:
    pool_id = await make_pool(rewards, total_points=10, packets=1, open_cost_points=COST)
    poor, rich, richer = uid("poor"), uid("rich"), uid("richer")
    await rewards.points.give(poor, 1)
    await rewards.points.give(rich, 500)
    await rewards.points.give(richer, 500)

    refused = await open_with(rewards, pool_id, poor, uid("o"))
    assert refused.status_code == 409 and error_code(refused) == "insufficient_points"
    assert refused.json()["error"]["details"] == {"available": 1, "requested": COST}
    assert (await pool_view(rewards, pool_id))["remaining_packets"] == 1

    open_id = uid("o")
    opened = await open_with(rewards, pool_id, rich, open_id)
    assert opened.status_code == 201, opened.text
    assert opened.json() == {"open_id": open_id, "member_id": rich, "points": 10}
    again = await open_with(rewards, pool_id, rich, open_id)
    assert (again.status_code, again.content) == (201, opened.content)
    assert again.headers["idempotent-replayed"] == "true"

    late = await open_with(rewards, pool_id, richer, uid("o"))
    assert late.status_code == 409 and error_code(late) == "out_of_stock"
    view = await pool_view(rewards, pool_id)
    assert (view["remaining_packets"], view["remaining_points"]) == (0, 0)
    assert (await rewards.points.member(poor))["available"] == 1
    assert (await rewards.points.member(rich))["available"] == 500 - COST + 10
    assert (await rewards.points.member(richer))["available"] == 500
    assert (await rewards.points.member(escrow_of("pool", pool_id)))["available"] == 0
    await rewards.points.assert_ledger_ok()


async def test_a_member_refused_for_want_of_points_can_open_once_they_have_them(
        rewards: Rewards) -> None:
    pool_id = await make_pool(rewards, total_points=10, packets=1, open_cost_points=COST)
    member = uid("m")
    await rewards.points.give(member, 1)
    first = await open_with(rewards, pool_id, member, uid("o"))
    assert first.status_code == 409 and error_code(first) == "insufficient_points"
    await rewards.points.give(member, 100)
    second = await open_with(rewards, pool_id, member, uid("o"))
    assert second.status_code == 201, second.text
    assert (await rewards.points.member(member))["available"] == 101 - COST + 10
    await rewards.points.assert_ledger_ok()


async def test_poor_and_rich_members_racing_for_few_packets(rewards: Rewards) -> None:
    packets = 8
    pool_id = await make_pool(rewards, total_points=packets * 20, packets=packets,
                              open_cost_points=COST, per_member_opens=1)
    rich = [uid("rich") for _ in range(12)]
    poor = [uid("poor") for _ in range(60)]
    poor_points = {m: 1 + n % (COST - 1) for n, m in enumerate(poor)}
    granted = await rewards.points.grant(
        [{"member_id": m, "points": 500} for m in rich]
        + [{"member_id": m, "points": p} for m, p in poor_points.items()])
    assert granted.status_code == 201, granted.text

    async def open_twice(member: str) -> tuple[str, Any]:
        """The same open sent twice at once, as a client retrying would."""
        open_id = uid("o")
        first, second = await asyncio.gather(open_with(rewards, pool_id, member, open_id),
                                             open_with(rewards, pool_id, member, open_id))
        assert (first.status_code, first.content) == (second.status_code, second.content)
        return member, first

    answers: list[tuple[str, Any]] = []
    waiting = list(rich)
    wave = poor  # the poor start first; the rich join the race
    for _ in range(30):
        answers += await asyncio.gather(*(open_twice(m) for m in [*wave, *waiting]))
        opened_by = {m for m, a in answers if a.status_code == 201}
        waiting = [m for m in rich if m not in opened_by]
        wave = []
        if (await pool_view(rewards, pool_id))["remaining_packets"] == 0:
            break

    paid = [(m, a.json()) for m, a in answers if a.status_code == 201]
    assert len(paid) == packets, Counter(error_code(a) for _, a in answers
                                         if a.status_code != 201)
    assert {m for m, _ in paid} <= set(rich)
    assert sum(p["points"] for _, p in paid) == packets * 20
    refusals = Counter((m in rich, error_code(a)) for m, a in answers if a.status_code != 201)
    assert set(refusals) <= {(False, "insufficient_points"), (False, "out_of_stock"),
                             (True, "out_of_stock")}, refusals
    view = await pool_view(rewards, pool_id)
    assert (view["remaining_packets"], view["remaining_points"]) == (0, 0)

    states = await asyncio.gather(*(rewards.points.member(m) for m in [*rich, *poor]))
    available = {s["member_id"]: s["available"] for s in states}
    share_of = {m: p["points"] for m, p in paid}
    assert {m: available[m] for m in rich} == {
        m: 500 - COST + share_of[m] if m in share_of else 500 for m in rich}
    assert {m: available[m] for m in poor} == poor_points
    assert (await rewards.points.member(escrow_of("pool", pool_id)))["available"] == 0
    await rewards.points.assert_ledger_ok()
