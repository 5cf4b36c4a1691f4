"""Every value-moving POST replays its original answer; the same id with another body is 409."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from proto.points import EventIn
from services.runtime.idempotency import fingerprint
from services.runtime.resources import Resources
from tests.support.api import Points, error_code, uid


async def replay_and_conflict(send: Callable[[dict[str, Any]], Awaitable[httpx.Response]],
                              body: dict[str, Any], changed: dict[str, Any]) -> httpx.Response:
    first = await send(body)
    again = await send(dict(reversed(list(body.items()))))
    assert again.status_code == first.status_code, again.text
    assert again.content == first.content
    assert again.headers.get("idempotent-replayed") == "true" or first.status_code == 201
    conflict = await send({**body, **changed})
    assert conflict.status_code == 409, conflict.text
    assert error_code(conflict) == "idempotency_conflict"
    return first


async def test_every_post_replays(points: Points, resources: Resources) -> None:
    c, h = points.client, points.ingest
    member = uid("m")

    def post(path: str, headers: dict[str, str] = h) -> Callable[
            [dict[str, Any]], Awaitable[httpx.Response]]:
        return lambda body: c.post(path, headers=headers, json=body)

    grant = await replay_and_conflict(
        post("/points/v1/grants", points.operator),
        {"grant_id": uid("g"), "reason": "welcome",
         "items": [{"member_id": member, "points": 500}]},
        {"reason": "another"})
    assert grant.status_code == 201
    event = await replay_and_conflict(
        post("/points/v1/events"),
        {"event_id": uid("e"), "member_id": member, "action": "purchase", "amount_cents": 9900},
        {"amount_cents": 9901})
    assert event.json()["points"] == 99
    await replay_and_conflict(
        post("/points/v1/debits"),
        {"debit_id": uid("d"), "member_id": member, "points": 10, "reason": "coffee"},
        {"points": 11})
    hold = await replay_and_conflict(
        post("/points/v1/holds"),
        {"hold_id": uid("h"), "member_id": member, "points": 20, "reason": "perk"},
        {"points": 21})
    hold_id = hold.json()["hold_id"]
    captured = await c.post(f"/points/v1/holds/{hold_id}/capture", headers=h)
    assert captured.status_code == 200
    again = await c.post(f"/points/v1/holds/{hold_id}/capture", headers=h)
    assert again.content == captured.content and again.headers["idempotent-replayed"] == "true"
    noted = await c.post(f"/points/v1/holds/{hold_id}/capture", headers=h, json={"note": "x"})
    assert noted.status_code == 409 and error_code(noted) == "idempotency_conflict"
    await replay_and_conflict(
        post(f"/points/v1/events/{event.json()['event_id']}/reversal"),
        {"reversal_id": uid("r"), "amount_cents": 900}, {"amount_cents": 901})
    info = await points.member(member)
    assert info["available"] == 500 + 99 - 10 - 20 - 9
    await points.assert_ledger_ok()


async def test_batch_items_are_idempotent_one_by_one(points: Points) -> None:
    member = uid("m")
    first_id, second_id = uid("e"), uid("e")
    single = await points.event(member, "speak", event_id=first_id)
    batch = await points.client.post("/points/v1/events/batch", headers=points.ingest, json={
        "events": [
            {"event_id": first_id, "member_id": member, "action": "speak"},
            {"event_id": second_id, "member_id": member, "action": "speak"},
            {"event_id": second_id, "member_id": member, "action": "speak"},
            {"event_id": first_id, "member_id": member, "action": "bind"},
            {"event_id": uid("e"), "member_id": member, "action": "no_such_action"},
        ]})
    assert batch.status_code == 200, batch.text
    items = batch.json()["items"]
    assert [i["status_code"] for i in items] == [201, 201, 201, 409, 422]
    assert items[0]["result"] == single.json()
    assert items[1]["result"] == items[2]["result"]
    assert items[3]["error"]["code"] == "idempotency_conflict"
    assert items[4]["error"]["code"] == "unknown_action"
    assert (await points.member(member))["available"] == 2
    await points.assert_ledger_ok()


async def test_concurrent_identical_events_award_once(points: Points) -> None:
    member = uid("m")
    body = {"event_id": uid("e"), "member_id": member, "action": "purchase", "amount_cents": 500}
    responses = await asyncio.gather(*[
        points.client.post("/points/v1/events", headers=points.ingest, json=body)
        for _ in range(50)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert (await points.member(member))["available"] == 5
    await points.assert_ledger_ok()


async def test_event_answers_stored_before_the_redesign_replay_as_they_are(
        points: Points, resources: Resources) -> None:
    """Bodies written by the first points.record_event (format() in SQL) are replayed from the
    stored bytes, alone and in batches, never rebuilt."""
    member, event_id = uid("m"), uid("e")
    event = EventIn(event_id=event_id, member_id=member, action="speak")
    stored = (f'{{"event_id":"{event_id}","member_id":"{member}","status":"awarded",'
              '"points":7,"capped_points":0,"balance":7}').encode()
    await resources.pool.execute(
        "INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint, status_code, body)"
        " VALUES ($1, 'points.events', $2, $3, 201, $4)",
        points.tenant.name, event_id, fingerprint("points.events", event_id, event), stored)
    single = await points.event(member, "speak", event_id=event_id)
    assert single.status_code == 201 and single.content == stored
    assert single.headers["idempotent-replayed"] == "true"
    batch = await points.client.post("/points/v1/events/batch", headers=points.ingest, json={
        "events": [{"event_id": event_id, "member_id": member, "action": "speak"}]})
    assert batch.json()["items"] == [{"event_id": event_id, "status_code": 201,
                                      "result": msgspec.json.decode(stored), "error": None}]
    other = await points.event(member, "bind", event_id=event_id)
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    assert other.json()["error"]["details"] == {"id": event_id}


async def test_each_operation_runs_once_under_concurrent_repeats(points: Points) -> None:
    """Each operation's claim is made by the statement that calls its ledger function, which
    runs only when the id was free: twenty concurrent copies of a request place one hold, one
    debit, one move, and a copy sent after the member's points are gone still answers the
    original, where running the function again would be refused."""
    member, other = uid("m"), uid("m")
    await points.give(member, 100)
    hold_id, debit_id, move_id = uid("h"), uid("d"), uid("mv")
    for send in (lambda: points.hold(member, 30, hold_id),
                 lambda: points.capture(hold_id),
                 lambda: points.debit(member, 20, debit_id),
                 lambda: points.move(member, other, 50, move_id)):
        responses = await asyncio.gather(*[send() for _ in range(20)])
        assert {r.status_code for r in responses} <= {200, 201}, responses[0].text
        assert len({r.content for r in responses}) == 1
        assert sum(1 for r in responses if r.headers.get("idempotent-replayed") != "true") == 1
    info = await points.member(member)
    assert (info["available"], info["held"], info["spent"]) == (0, 0, 100)
    assert (await points.member(other))["available"] == 50
    for again in (await points.hold(member, 30, hold_id), await points.capture(hold_id),
                  await points.debit(member, 20, debit_id),
                  await points.move(member, other, 50, move_id)):
        assert again.status_code in (200, 201), again.text
        assert again.headers["idempotent-replayed"] == "true"
    assert len((await points.entries(member))["items"]) == 5  # grant, hold, capture, debit, move
    await points.assert_ledger_ok()
