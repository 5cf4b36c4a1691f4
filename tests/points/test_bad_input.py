"""Bad input gets a 4xx in the error envelope and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from proto.points import EventIn
from services.points.group_commit import EventCommitter
from services.runtime.idempotency import fingerprint
from services.runtime.resources import Resources
from tests.support.api import Points, error_code, uid

M = "member-1"
EVENT = {"event_id": "e-2", "member_id": M, "action": "speak"}
DEBIT = {"debit_id": "d-1", "member_id": M, "points": 5, "reason": "x"}
HOLD = {"hold_id": "h-1", "member_id": M, "points": 5, "reason": "x"}
GRANT = {"grant_id": "g-1", "reason": "x", "items": [{"member_id": M, "points": 5}]}

CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("events", "/points/v1/events", {**EVENT, "action": "teleport"}, 422, "unknown_action"),
    ("events", "/points/v1/events", {**EVENT, "action": "purchase"}, 422, "amount_required"),
    ("events", "/points/v1/events", {**EVENT, "event_id": "e-1", "action": "purchase"}, 409,
     "idempotency_conflict"),
    ("events", "/points/v1/events", {**EVENT, "action": "Bad Action"}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "event_id": "x" * 129}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "member_id": "a/b"}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "amount_cents": -1}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "amount_cents": "100"}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "occurred_at": "yesterday"}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "occurred_at": "2999-01-01T00:00:00Z"}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "occurred_at": "2026-01-01T00:00:00"}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "points": 1000}, 422, "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "attributes": {"k": "v" * 300}}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "attributes": {"nested": {"a": 1}}}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "attributes": {"k": "nul\u0000"}}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "attributes": {"nul\u0000": 1}}, 422,
     "validation_failed"),
    ("events", "/points/v1/events", {**EVENT, "attributes": {"k": 2**60}}, 422,
     "validation_failed"),
    ("batch", "/points/v1/events/batch", {"events": []}, 422, "validation_failed"),
    ("batch", "/points/v1/events/batch",
     {"events": [{**EVENT, "event_id": f"b{i}"} for i in range(1001)]}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "points": 0}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "points": -5}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "points": 10**12}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "points": 2.5}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "member_id": "nobody-ever"}, 404,
     "unknown_member"),
    ("debits", "/points/v1/debits", {**DEBIT, "reason": ""}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "reason": "a\u0000b"}, 422, "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "debit_id": "has space"}, 422,
     "validation_failed"),
    ("debits", "/points/v1/debits", {**DEBIT, "extra": True}, 422, "validation_failed"),
    ("holds", "/points/v1/holds", {**HOLD, "expires_in_s": 0}, 422, "validation_failed"),
    ("holds", "/points/v1/holds", {**HOLD, "member_id": "nobody-ever"}, 404, "unknown_member"),
    ("grants", "/points/v1/grants", {**GRANT, "items": []}, 422, "validation_failed"),
    ("grants", "/points/v1/grants",
     {**GRANT, "items": [{"member_id": M, "points": 1}] * 10_001}, 422, "validation_failed"),
    ("grants", "/points/v1/grants",
     {**GRANT, "items": [{"member_id": M, "points": 5}, {"member_id": M, "points": 0}]}, 422,
     "validation_failed"),
    ("grants", "/points/v1/grants",
     {**GRANT, "items": [{"member_id": M, "points": 5, "expires_at": "2020-01-01T00:00:00Z"}]},
     422, "validation_failed"),
    ("reversal", "/points/v1/events/e-unknown/reversal", {"reversal_id": "r-1"}, 404,
     "unknown_event"),
    ("reversal", "/points/v1/events/e-1/reversal", {"reversal_id": "r-1", "amount_cents": 0},
     422, "validation_failed"),
]


async def ledger_state(resources: Resources, tenant: str) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM points.transfers WHERE tenant_id = $1),"
        " (SELECT count(*) FROM points.lots WHERE tenant_id = $1),"
        " (SELECT count(*) FROM points.members WHERE tenant_id = $1),"
        " (SELECT count(*) FROM points.events WHERE tenant_id = $1),"
        " (SELECT count(*) FROM fuli.idempotency WHERE tenant_id = $1),"
        " (SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1)", tenant)
    return tuple(row)


@pytest.mark.parametrize(("name", "path", "body", "status", "code"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_input_is_4xx_and_changes_nothing(
        points: Points, resources: Resources, name: str, path: str, body: dict[str, Any],
        status: int, code: str) -> None:
    seed = await points.event(M, "speak", event_id="e-1")
    assert seed.status_code == 201
    headers = points.operator if name == "grants" else points.ingest
    before = await ledger_state(resources, points.tenant.name)
    response = await points.client.post(path, headers=headers, json=body)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert await ledger_state(resources, points.tenant.name) == before


async def test_bad_rules_are_422(points: Points) -> None:
    for action, rule in [
        ("speak", {"points_per_unit": 1}),
        ("speak", {"unit_cents": 100}),
        ("speak", {"limits": [{"period": "day"}]}),
        ("speak", {"limits": [{"period": "day", "max_events": 1},
                              {"period": "day", "max_events": 2}]}),
        ("speak", {"limits": [{"period": "year", "max_events": 1}]}),
        ("speak", {"points": -1}),
        ("speak", {"expires_after_days": 0}),
        ("Speak", {"points": 1}),
    ]:
        response = await points.put_rule(action, **rule)
        assert response.status_code == 422, (action, rule, response.text)
    rules = await points.client.get("/points/v1/rules", headers=points.admin)
    speak = next(r for r in rules.json()["items"] if r["action"] == "speak")
    assert speak["builtin"] is True


async def test_bad_cursor_and_limit(points: Points) -> None:
    for params in ({"cursor": "!!!"}, {"cursor": "MA"}, {"limit": 0}, {"limit": 501},
                   {"limit": "many"}):
        response = await points.client.get(f"/points/v1/members/{M}/entries",
                                           headers=points.ingest, params=params)
        assert response.status_code in (400, 422), (params, response.text)
        error_code(response)


async def test_an_event_whose_rule_pays_per_amount_needs_the_amount(
        points: Points, resources: Resources) -> None:
    """A purchase without amount_cents is a 422 that stores nothing, alone, in a batch and in a
    commit group; the same id with the amount is then recorded. A rule with fixed points only
    needs no amount."""
    await points.put_rule("order", points=2, points_per_unit=3, unit_cents=100)
    await points.put_rule("checkin", points=2)
    member = uid("m")
    before = await ledger_state(resources, points.tenant.name)
    for action in ("purchase", "order"):
        alone = await points.event(member, action, event_id=f"{action}-1")
        assert alone.status_code == 422 and error_code(alone) == "amount_required", alone.text
        assert alone.json()["error"]["details"] == {"field": "amount_cents"}
    batch = await points.client.post("/points/v1/events/batch", headers=points.ingest, json={
        "events": [{"event_id": "order-2", "member_id": member, "action": "order"}]})
    assert batch.status_code == 200, batch.text
    item = batch.json()["items"][0]
    assert (item["status_code"], item["error"]["code"]) == (422, "amount_required")
    committer = EventCommitter(resources.pool, max_in_flight=1)
    now = datetime.now(UTC)
    grouped = [EventIn(event_id=f"order-{i}", member_id=member, action="order")
               for i in (3, 4)]
    results = await asyncio.gather(*[
        committer.record(points.tenant.name, e, fingerprint("points.events", e.event_id, e),
                         now, now) for e in grouped])
    assert [(r.refused, r.body) for r in results] == [("amount_required", None)] * 2
    assert await ledger_state(resources, points.tenant.name) == before

    paid = await points.event(member, "order", event_id="order-1", amount_cents=250)
    assert paid.status_code == 201, paid.text
    assert paid.json()["points"] == 2 + 2 * 3
    fixed = await points.event(member, "checkin")
    assert fixed.status_code == 201 and fixed.json()["points"] == 2, fixed.text
    await points.assert_ledger_ok()
