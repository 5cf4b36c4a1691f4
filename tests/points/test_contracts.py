"""What the SQL functions write must be exactly what proto declares."""

from __future__ import annotations

import msgspec

from proto.events import EVENT_TYPES
from proto.points import EventResult
from services.runtime.resources import Resources
from tests.support.api import Points, uid


async def test_event_response_is_the_proto_struct_encoding(points: Points) -> None:
    response = await points.event(uid("m"), "purchase", amount_cents=4321,
                                  attributes={"group_id": "g-1", "channel": "wecom"})
    decoded = msgspec.json.decode(response.content, type=EventResult)
    assert msgspec.json.encode(decoded) == response.content


async def test_outbox_payloads_decode_into_the_event_structs(points: Points,
                                                              resources: Resources) -> None:
    member = uid("m")
    purchase = await points.event(member, "purchase", amount_cents=20_000,
                                  attributes={"group_id": "g-9"})
    await points.event(member, "speak", attributes={"group_id": "g-9", "n": 3, "ok": True})
    await points.give(member, 5)
    await points.debit(member, 3)
    hold_id = (await points.hold(member, 4)).json()["hold_id"]
    await points.capture(hold_id)
    await points.reverse(purchase.json()["event_id"], amount_cents=10_000)
    rows = await resources.pool.fetch(
        "SELECT event_type, payload FROM fuli.outbox WHERE tenant_id = $1 ORDER BY id",
        points.tenant.name)
    types = [r["event_type"] for r in rows]
    assert set(types) == {"ActionRecorded", "PointsAwarded", "PurchaseRecorded", "PointsSpent",
                          "PointsReversed", "PurchaseReversed"}
    for row in rows:
        event = msgspec.json.decode(row["payload"], type=EVENT_TYPES[row["event_type"]])
        assert event.member_id == member  # type: ignore[attr-defined]
    recorded = [msgspec.json.decode(r["payload"], type=EVENT_TYPES["PurchaseRecorded"])
                for r in rows if r["event_type"] == "PurchaseRecorded"]
    assert recorded[0].amount_cents == 20_000 and recorded[0].attributes == {"group_id": "g-9"}


async def test_the_stored_event_result_type_has_the_proto_fields_in_order(
        resources: Resources) -> None:
    rows = await resources.pool.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
        " WHERE attrelid = 'points.event_result'::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum")
    assert [r["attname"] for r in rows] == list(EventResult.__struct_fields__)
    numbers = {name for name, kind in EventResult.__annotations__.items() if kind == "int"}
    assert {r["attname"] for r in rows if r["type"] == "bigint"} == numbers


async def test_every_event_answer_is_the_stored_proto_struct_encoding(
        points: Points, resources: Resources) -> None:
    await points.put_rule("like", points=3, limits=[{"period": "day", "max_points": 4}])
    member = uid("m")
    answers = [await points.event(member, "like"), await points.event(member, "like"),
               await points.event(member, "purchase", amount_cents=199)]
    answers.append(await points.event(member, "like", event_id=answers[1].json()["event_id"]))
    assert [a.json()["status"] for a in answers] == ["awarded", "capped", "awarded", "capped"]
    assert answers[1].json()["capped_points"] == 2 and answers[3].content == answers[1].content
    for answer in answers:
        assert answer.status_code == 201, answer.text
        result = msgspec.json.decode(answer.content, type=EventResult)
        assert msgspec.json.encode(result) == answer.content
        stored = await resources.pool.fetchval(
            "SELECT body FROM fuli.idempotency WHERE tenant_id = $1 AND scope = 'points.events'"
            " AND key = $2", points.tenant.name, result.event_id)
        assert stored == answer.content
