"""A request refused by a business rule moved nothing, so its id stays free: the same id and
body is evaluated again (and answers the truth of the moment); what moved value replays
exactly, and concurrent retries of one id still move value once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.runtime.resources import Resources
from tests.support.api import Points, error_code, uid


async def idempotency_rows(resources: Resources, tenant: str) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.idempotency WHERE tenant_id = $1", tenant))


async def test_each_refusal_then_a_success_with_the_same_id(
        points: Points, resources: Resources) -> None:
    c, h = points.client, points.ingest
    member, other = uid("m"), uid("m")
    await points.give(member, 25)
    await points.give(other, 1)

    def post(path: str, body: dict[str, Any],
             headers: dict[str, str] = h) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: c.post(path, headers=headers, json=body)

    debit = post("/points/v1/debits", {"debit_id": uid("d"), "member_id": member,
                                       "points": 200, "reason": "spa"})
    hold = post("/points/v1/holds", {"hold_id": uid("h"), "member_id": member, "points": 200,
                                     "reason": "perk"})
    move = post("/points/v1/moves", {"move_id": uid("mv"), "from_member_id": member,
                                     "to_member_id": other, "points": 200, "reason": "gift"})
    retire = post("/points/v1/retirements", {"retirement_id": uid("rt"), "member_id": member,
                                             "points": 200, "reason": "closed"},
                  points.operator)
    sends = [debit, hold, move, retire]
    before = await idempotency_rows(resources, points.tenant.name)
    for send in sends:
        refused = await send()
        assert refused.status_code == 409 and error_code(refused) == "insufficient_points"
        assert refused.json()["error"]["details"]["available"] == 25, refused.text
    assert await idempotency_rows(resources, points.tenant.name) == before

    await points.give(member, 115)  # 140 now: the same requests answer the current truth
    again = await debit()
    assert again.status_code == 409 and again.json()["error"]["details"]["available"] == 140
    await points.give(member, 4 * 200 - 140)  # enough for each of the four
    for send in sends:
        done = await send()
        assert done.status_code == 201, done.text
        assert "idempotent-replayed" not in done.headers
        replay = await send()  # what moved value replays byte for byte
        assert (replay.status_code, replay.content) == (201, done.content)
        assert replay.headers["idempotent-replayed"] == "true"
    assert (await points.member(member))["available"] == 0
    await points.assert_ledger_ok()


async def test_a_refused_capture_then_the_same_capture_after_the_state_changed(
        points: Points) -> None:
    member = uid("m")
    await points.give(member, 50)
    hold = await points.hold(member, 30)
    hold_id = hold.json()["hold_id"]
    voided = await points.void(hold_id)
    assert voided.status_code == 200, voided.text
    refused = await points.capture(hold_id)
    assert refused.status_code == 409, refused.text
    again = await points.capture(hold_id)  # still refused: evaluated again, same truth
    assert (again.status_code, error_code(again)) == (409, error_code(refused))
    assert "idempotent-replayed" not in again.headers


async def test_concurrent_retries_of_one_id_move_value_once(points: Points) -> None:
    member = uid("m")
    await points.give(member, 10)
    body = {"debit_id": uid("d"), "member_id": member, "points": 30, "reason": "spa"}

    async def burst() -> list[httpx.Response]:
        return list(await asyncio.gather(*[
            points.client.post("/points/v1/debits", headers=points.ingest, json=body)
            for _ in range(40)]))

    refused = await burst()
    assert {(r.status_code, error_code(r)) for r in refused} == {(409, "insufficient_points")}
    await points.give(member, 50)
    answered = await burst()
    assert {r.status_code for r in answered} == {201}
    assert len({r.content for r in answered}) == 1
    assert sum(r.headers.get("idempotent-replayed") != "true" for r in answered) == 1
    assert (await points.member(member))["available"] == 30
    conflict = await points.client.post("/points/v1/debits", headers=points.ingest,
                                        json={**body, "points": 31})
    assert conflict.status_code == 409 and error_code(conflict) == "idempotency_conflict"
    await points.assert_ledger_ok()
