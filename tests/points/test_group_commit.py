from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from proto.points import EventIn
from services.points.group_commit import EventCommitter
from services.runtime.idempotency import fingerprint
from services.runtime.resources import Resources
from tests.support.api import Points, uid


async def test_events_arriving_together_share_transactions(points: Points,
                                                           resources: Resources) -> None:
    members = [uid("m") for _ in range(20)]
    responses = await asyncio.gather(*[points.event(members[i % 20], "purchase",
                                                    amount_cents=100 + i)
                                       for i in range(300)])
    assert {r.status_code for r in responses} == {201}
    transactions = await resources.pool.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM points.events WHERE tenant_id = $1",
        points.tenant.name)
    assert transactions < 300, "concurrent events were not grouped"
    states = await asyncio.gather(*[points.member(m) for m in members])
    assert sum(s["spend_cents"] for s in states) == sum(100 + i for i in range(300))
    await points.assert_ledger_ok()


async def test_a_failing_event_does_not_fail_its_group(points: Points,
                                                       resources: Resources) -> None:
    committer = EventCommitter(resources.pool, max_in_flight=1)
    now = datetime.now(UTC)
    member = uid("m")
    events = [EventIn(event_id=uid("e"), member_id=member, action="speak") for _ in range(5)]
    # Bypassing request validation: PostgreSQL refuses NUL characters in jsonb.
    poisoned = EventIn(event_id=uid("bad"), member_id=member, action="speak",
                       attributes={"k": "\x00"})
    calls = [committer.record(points.tenant.name, e, fingerprint("points.events", e.event_id, e),
                              now, now) for e in [*events[:2], poisoned, *events[2:]]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[2], asyncpg.PostgresError)
    good = [r for i, r in enumerate(results) if i != 2]
    assert all(not isinstance(r, BaseException) and r.refused is None and r.body for r in good)
    assert (await points.member(member))["available"] == 5
    await points.assert_ledger_ok()


@pytest.mark.parametrize("in_flight", [1, 4])
async def test_grouped_caps_stay_exact(points: Points, resources: Resources,
                                       in_flight: int) -> None:
    await points.put_rule("like", points=2, limits=[{"period": "day", "max_events": 7}])
    committer = EventCommitter(resources.pool, max_in_flight=in_flight)
    now = datetime.now(UTC)
    member = uid("m")
    events = [EventIn(event_id=uid("e"), member_id=member, action="like") for _ in range(60)]
    rows = await asyncio.gather(*[
        committer.record(points.tenant.name, e, fingerprint("points.events", e.event_id, e),
                         now, now) for e in events])
    assert sum(b'"status":"awarded"' in (r.body or b"") for r in rows) == 7
    assert (await points.member(member))["available"] == 14


async def test_refusals_in_a_group_resolve_with_their_code(points: Points,
                                                           resources: Resources) -> None:
    committer = EventCommitter(resources.pool, max_in_flight=1)
    now = datetime.now(UTC)
    member = uid("m")
    known = EventIn(event_id=uid("e"), member_id=member, action="speak")
    unknown = EventIn(event_id=uid("e"), member_id=member, action="teleport")
    reused = EventIn(event_id=known.event_id, member_id=member, action="bind")
    events = [known, unknown, reused, known]
    results = await asyncio.gather(*[
        committer.record(points.tenant.name, e, fingerprint("points.events", e.event_id, e),
                         now, now) for e in events])
    assert [(r.refused, r.replayed) for r in results] == [
        (None, False), ("unknown_action", False), ("idempotency_conflict", True), (None, True)]
    assert results[1].body is None and results[2].body is None
    assert results[3].body == results[0].body
    assert (await points.member(member))["available"] == 1
    await points.assert_ledger_ok()
