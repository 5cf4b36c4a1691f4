"""POST /holds/batch, POST /holds/settlements and POST /grants/batch: each item answered as its
own request would be, in one transaction, against the real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from services.runtime.resources import Resources
from tests.support.api import Points, error_code, uid


def hold(member_id: str, points: int, hold_id: str | None = None,
         expires_in_s: int = 900) -> dict[str, Any]:
    return {"hold_id": hold_id or uid("hold"), "member_id": member_id, "points": points,
            "reason": "batch test", "expires_in_s": expires_in_s}


async def single_answer(points: Points, path: str, body: dict[str, Any] | None) -> Any:
    response = await points.client.post(f"/points/v1/holds{path}", headers=points.ingest,
                                        json=body)
    return response.status_code, msgspec.json.decode(response.content), response.headers


async def test_a_batch_answers_each_hold_as_its_own_request_would(points: Points) -> None:
    rich, poor, unknown = uid("m"), uid("m"), uid("m")
    await points.give(rich, 100)
    await points.give(poor, 5)
    items = [hold(rich, 30), hold(poor, 10), hold(rich, 50), hold(unknown, 1), hold(rich, 21)]
    response = await points.hold_batch(items)
    assert response.status_code == 200
    answered = response.json()["items"]
    assert [a["hold_id"] for a in answered] == [i["hold_id"] for i in items]
    assert [a["status_code"] for a in answered] == [201, 409, 201, 404, 409]
    # Placed in the order given: the third sees what the first took, the fifth both.
    assert answered[0]["result"]["available"] == 70 and answered[2]["result"]["available"] == 20
    assert answered[2]["result"]["held"] == 80
    assert answered[1]["error"] == {"code": "insufficient_points",
                                    "message": "not enough points available",
                                    "details": {"available": 5, "requested": 10}}
    assert answered[3]["error"]["code"] == "unknown_member"
    assert answered[4]["error"]["details"] == {"available": 20, "requested": 21}

    # A placed item is stored as POST /holds stores it: the single route replays it.
    for item, answer in ((items[0], answered[0]), (items[2], answered[2])):
        status, body, headers = await single_answer(points, "", item)
        assert (status, body) == (201, answer["result"])
        assert headers["Idempotent-Replayed"] == "true"
    # A refused one pinned nothing, and its error is what the single route answers.
    for item, answer in ((items[1], answered[1]), (items[3], answered[3])):
        status, body, _ = await single_answer(points, "", item)
        assert (status, body) == (answer["status_code"], {"error": answer["error"]})
    assert (await points.member(rich))["available"] == 20
    assert (await points.member(rich))["held"] == 80
    assert (await points.member(poor))["held"] == 0

    # The same batch again: the placed replay, the refused are evaluated again.
    await points.give(poor, 5)
    again = (await points.hold_batch(items)).json()["items"]
    assert not any(a["replayed"] for a in answered)
    assert again[0] == dict(answered[0], replayed=True)
    assert again[2] == dict(answered[2], replayed=True)
    assert not again[1]["replayed"]
    assert again[1]["status_code"] == 201 and again[1]["result"]["available"] == 0
    assert (await points.member(rich))["held"] == 80
    assert (await points.member(poor))["held"] == 10
    await points.assert_ledger_ok()


async def test_ids_are_claimed_item_by_item(points: Points) -> None:
    member = uid("m")
    await points.give(member, 100)
    placed_alone = hold(member, 10)
    assert (await points.client.post("/points/v1/holds", headers=points.ingest,
                                      json=placed_alone)).status_code == 201
    twice = hold(member, 20)
    reused = dict(placed_alone, points=11)
    answered = (await points.hold_batch([twice, placed_alone, twice, reused])).json()["items"]
    assert [a["status_code"] for a in answered] == [201, 201, 201, 409]
    assert answered[2] == dict(answered[0], replayed=True), \
        "the same id and body twice in a batch is held once"
    assert answered[1]["result"]["held"] == 10, "a hold placed alone is replayed as it was"
    assert answered[1]["replayed"]
    assert error_code_of(answered[3]) == "idempotency_conflict"
    member_now = await points.member(member)
    assert (member_now["available"], member_now["held"]) == (70, 30)
    # An id an earlier item of the batch was refused under is free for a later one.
    freed = uid("hold")
    answered = (await points.hold_batch([hold(member, 1000, freed), hold(member, 5, freed)])
                ).json()["items"]
    assert [a["status_code"] for a in answered] == [409, 201]
    assert (await points.member(member))["held"] == 35
    await points.assert_ledger_ok()


async def deadlocks(resources: Resources) -> int:
    return int(await resources.pool.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


async def test_the_same_holds_sent_alone_and_in_batches_at_once_are_placed_once(
        points: Points, resources: Resources) -> None:
    """Each id is sent by itself and in two batches (in opposite orders) at the same time: the
    batches claim their ids before they lock their members, as a request alone does, so none
    waits for another in a cycle (PostgreSQL counts no deadlock; one would be tried again and
    hide in the answers) and each hold is placed once."""
    before = await deadlocks(resources)
    members = [uid("m") for _ in range(5)]
    for member in members:
        await points.give(member, 100)
    holds = [hold(members[n % 5], 3) for n in range(40)]
    sent = [points.client.post("/points/v1/holds", headers=points.ingest, json=h) for h in holds]
    sent += [points.hold_batch(holds), points.hold_batch(holds[::-1])]
    responses = await asyncio.gather(*sent)
    assert [r.status_code for r in responses] == [201] * 40 + [200, 200]
    for r in responses[40:]:
        assert {item["status_code"] for item in r.json()["items"]} == {201}
    for member in members:
        assert (await points.member(member))["held"] == 24
    await asyncio.sleep(1.5)  # a session reports its counts a second after its last report
    assert await deadlocks(resources) == before
    await points.assert_ledger_ok()


def error_code_of(item: dict[str, Any]) -> str:
    assert item["result"] is None and set(item["error"]) == {"code", "message", "details"}
    return str(item["error"]["code"])


async def test_settlements_capture_and_void_each_alone(points: Points) -> None:
    member = uid("m")
    await points.give(member, 100)
    kept, given_back, expiring = hold(member, 30), hold(member, 20), hold(member, 5, None, 1)
    for item in (kept, given_back, expiring):
        assert (await points.client.post("/points/v1/holds", headers=points.ingest,
                                          json=item)).status_code == 201
    await asyncio.sleep(1.2)
    unknown = uid("hold")
    response = await points.settle_batch([
        {"hold_id": kept["hold_id"], "action": "capture"},
        {"hold_id": given_back["hold_id"], "action": "void", "note": "changed their mind"},
        {"hold_id": unknown, "action": "capture"},
        {"hold_id": expiring["hold_id"], "action": "capture"},
        {"hold_id": kept["hold_id"], "action": "capture"},
        {"hold_id": kept["hold_id"], "action": "void"},
    ])
    assert response.status_code == 200
    answered = response.json()["items"]
    assert [a["status_code"] for a in answered] == [200, 200, 404, 409, 200, 409]
    assert answered[0]["result"]["status"] == "captured"
    assert answered[1]["result"] == {
        "hold_id": given_back["hold_id"], "member_id": member, "points": 20,
        "status": "voided", "available": 65, "held": 5, "expires_at": None}
    assert [error_code_of(answered[i]) for i in (2, 3, 5)] == [
        "unknown_hold", "hold_expired", "hold_not_pending"]
    assert answered[4] == dict(answered[0], replayed=True), \
        "a capture repeated in the batch is replayed"

    status, body, headers = await single_answer(points, f"/{kept['hold_id']}/capture", None)
    assert (status, body, headers["Idempotent-Replayed"]) == (200, answered[0]["result"], "true")
    status, body, _ = await single_answer(
        points, f"/{given_back['hold_id']}/void", {"note": "another note"})
    assert (status, error_code_of({"result": None, **body})) == (409, "idempotency_conflict")
    member_now = await points.member(member)
    assert (member_now["available"], member_now["held"], member_now["spent"]) == (65, 5, 30)
    await points.assert_ledger_ok()


async def test_concurrent_batches_in_opposite_orders_hold_and_capture_exactly(
        points: Points) -> None:
    """Twenty batches at once, each holding 10 points of the same ten members (half of them in
    the reverse order), against 100 points a member: exactly ten holds a member go through,
    nothing waits for ever, and the captures that follow, each hold in two batches, spend
    each hold once."""
    members = [uid("m") for _ in range(10)]
    for member in members:
        await points.give(member, 100)
    batches = [[hold(member, 10) for member in (members if n % 2 else members[::-1])]
               for n in range(20)]
    responses = await asyncio.gather(*(points.hold_batch(batch) for batch in batches))
    assert {r.status_code for r in responses} == {200}
    placed = [item["hold_id"] for r in responses for item in r.json()["items"]
              if item["status_code"] == 201]
    refused = [error_code_of(item) for r in responses for item in r.json()["items"]
               if item["status_code"] != 201]
    assert len(placed) == 100 and refused == ["insufficient_points"] * 100
    for member in members:
        assert (await points.member(member))["held"] == 100

    halves = [placed[n::4] for n in range(4)]
    settlements = [[{"hold_id": h, "action": "capture"} for h in (half if n % 2 else half[::-1])]
                   for n, half in enumerate(halves + halves)]
    responses = await asyncio.gather(*(points.settle_batch(s) for s in settlements))
    assert {r.status_code for r in responses} == {200}
    answers: dict[str, list[Any]] = {}
    for r in responses:
        for item in r.json()["items"]:
            answers.setdefault(item["hold_id"], []).append(item)
    assert len(answers) == 100
    for first, second in answers.values():
        assert first["result"] == second["result"] and first["status_code"] == 200
        assert {first["replayed"], second["replayed"]} == {False, True}
    for member in members:
        member_now = await points.member(member)
        assert (member_now["available"], member_now["held"], member_now["spent"]) == (0, 0, 100)
    await points.assert_ledger_ok()


async def test_a_bad_batch_is_refused_whole_and_changes_nothing(points: Points) -> None:
    member = uid("m")
    await points.give(member, 100)
    good = hold(member, 10)
    for body in ({"holds": []}, {"holds": [good] * 1001}, {"holds": [good, hold(member, 0)]},
                 {"holds": [good], "extra": 1}, {"holds": [dict(good, color="red")]}):
        response = await points.client.post("/points/v1/holds/batch", headers=points.ingest,
                                             json=body)
        assert response.status_code == 422, body
        assert error_code(response) == "validation_failed"
    for body in ({"settlements": []},
                 {"settlements": [{"hold_id": good["hold_id"], "action": "refund"}]}):
        response = await points.client.post("/points/v1/holds/settlements",
                                             headers=points.ingest, json=body)
        assert response.status_code == 422, body
    assert (await points.member(member))["held"] == 0
    assert (await points.hold_batch([good])).json()["items"][0]["status_code"] == 201


def grant(grant_id: str, *items: tuple[str, int], **fields: Any) -> dict[str, Any]:
    return {"grant_id": grant_id, "reason": "batch test",
            "items": [{"member_id": m, "points": n, **fields} for m, n in items]}


async def test_a_batch_of_grants_makes_each_as_its_own_request_would(points: Points) -> None:
    a, b = uid("m"), uid("m")
    made_alone = grant(uid("g"), (a, 7))
    assert (await points.client.post("/points/v1/grants", headers=points.operator,
                                      json=made_alone)).status_code == 201
    first, second = grant(uid("g"), (a, 10), (b, 20)), grant(uid("g"), (b, 5))
    past = grant(uid("g"), (a, 1), expires_at="2020-01-01T00:00:00Z")
    reused = dict(made_alone, reason="another reason")
    body = {"grants": [first, made_alone, past, second, reused, first]}
    response = await points.client.post("/points/v1/grants/batch", headers=points.operator,
                                         json=body)
    assert response.status_code == 200, response.text
    answered = response.json()["items"]
    assert [a["status_code"] for a in answered] == [201, 201, 422, 201, 409, 201]
    assert answered[0]["result"] == {"grant_id": first["grant_id"], "item_count": 2,
                                     "total_points": 30}
    assert answered[5] == dict(answered[0], replayed=True), \
        "the same grant twice in a batch is made once"
    assert answered[1]["result"]["total_points"] == 7, "a grant made alone is replayed"
    assert error_code_of(answered[2]) == "validation_failed"
    assert answered[2]["error"]["details"] == {"field": "items[0].expires_at"}
    assert error_code_of(answered[4]) == "idempotency_conflict"
    assert (await points.member(a))["available"] == 17
    assert (await points.member(b))["available"] == 25
    replay = await points.client.post("/points/v1/grants", headers=points.operator, json=second)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == answered[3]["result"]
    await points.assert_ledger_ok()

    ingest = await points.client.post("/points/v1/grants/batch", headers=points.ingest,
                                      json={"grants": [grant(uid("g"), (a, 1))]})
    assert ingest.status_code == 403, "grants are an operator's, in a batch as alone"
    too_many = {"grants": [grant(uid("g"), *[(uid("m"), 1)] * 6000) for _ in range(2)]}
    refused = await points.client.post("/points/v1/grants/batch", headers=points.operator,
                                       json=too_many)
    assert refused.status_code == 422 and error_code(refused) == "validation_failed"
    segment = {"grants": [{"grant_id": uid("g"), "reason": "x", "segment_id": "s", "points": 1}]}
    alone = await points.client.post("/points/v1/grants/batch", headers=points.operator,
                                     json=segment)
    assert alone.status_code == 422, "a grant to a segment is made alone"
    assert (await points.member(a))["available"] == 17
