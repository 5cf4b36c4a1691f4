"""PostgreSQL keeps every event until each consumer has applied it: messages the broker loses
are sent again, only to the consumers still waiting, and batches never deadlock each other."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import dramatiq
import msgspec
import pytest
from dramatiq.asyncio import get_event_loop_thread

from proto.events import ActionRecorded, Envelope, Event, PointsAwarded, Subscriber
from services.runtime.bus import ActorSpec, consume
from services.runtime.db import Conn
from services.runtime.outbox import (
    PARKED_AFTER_SENDS,
    UNKNOWN_TYPE_GRACE_S,
    OutboxRelay,
    emit,
    outbox_backlog,
)
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import WorkerContext, create_broker, declare_actors

PROBE_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS probe;
CREATE TABLE IF NOT EXISTS probe.applied (
    consumer text NOT NULL, event_id uuid NOT NULL, n int NOT NULL, times int NOT NULL DEFAULT 1,
    PRIMARY KEY (consumer, event_id));
CREATE TABLE IF NOT EXISTS probe.counters (
    tenant_id text NOT NULL, key text NOT NULL, n int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, key));
"""


class Noted(Event, frozen=True):
    n: int
    member_id: str = ""


def recorder(consumer: str) -> Any:
    async def apply(conn: Conn, envelope: Envelope) -> None:
        noted = msgspec.json.decode(envelope.data, type=Noted)
        await conn.execute(
            "INSERT INTO probe.applied (consumer, event_id, n) VALUES ($1, $2::uuid, $3)"
            " ON CONFLICT (consumer, event_id) DO UPDATE SET times = probe.applied.times + 1",
            consumer, envelope.event_id, noted.n)
    return apply


def actor(consumer: str) -> Any:
    async def consume_noted(bodies: str | list[str]) -> None:
        resources = await WorkerContext.resources()
        await consume(resources.pool, consumer, bodies, recorder(consumer))
    return consume_noted


async def applied(resources: Resources, consumer: str) -> Counter[int]:
    rows = await resources.pool.fetch(
        "SELECT n, times FROM probe.applied WHERE consumer = $1", consumer)
    return Counter({r["n"]: r["times"] for r in rows})


async def wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def kept(resources: Resources, tenant: str) -> int:
    return int(await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1", tenant))


async def test_events_the_broker_lost_are_sent_again_to_the_consumers_still_waiting(
        settings: Settings, resources: Resources) -> None:
    await resources.pool.execute(PROBE_SCHEMA)
    tag = uuid.uuid4().hex[:8]
    tenant, queue_a, queue_b = f"t-{tag}", f"durable-a-{tag}", f"durable-b-{tag}"
    first, second = f"probe.first_{tag}", f"probe.second_{tag}"
    WorkerContext.configure(settings, ())
    broker = create_broker(settings)
    declare_actors(broker, [ActorSpec(first, queue_a, actor(first)),
                            ActorSpec(second, queue_b, actor(second))])
    broker.emit_after("process_boot")
    sent: list[dramatiq.Message[Any]] = []

    def enqueue(messages: list[dramatiq.Message[Any]]) -> None:
        for message in messages:
            sent.append(message)
            broker.enqueue(message)

    # The relay claims the whole outbox, so that this test's rows go out in one call.
    relay = OutboxRelay(
        resources.pool, enqueue, resend_after_s=60.0, batch_size=100_000,
        subscriptions={"Noted": (Subscriber(queue_a, first), Subscriber(queue_b, second,
                                                                         batch=True))})
    async with resources.pool.acquire() as conn, conn.transaction():
        await emit(conn, service="probe", tenant_id=tenant, events=[Noted(n=n) for n in range(30)])
    while await relay.send_new():
        pass
    assert Counter(m.actor_name for m in sent) == {first: 30, second: 1}
    # The first consumer got its messages and applied them; then the broker lost everything.
    for message in sent:
        if message.actor_name == first:
            await consume(resources.pool, first, message.args[0], recorder(first))
    sent.clear()
    for queue in (queue_a, queue_b):
        await asyncio.to_thread(broker.flush, queue)
    await settle_all(relay)
    assert await kept(resources, tenant) == 30  # the second consumer has applied nothing

    assert await relay.resend_due() == 0  # not yet due
    await resources.pool.execute(  # a minute later
        "UPDATE fuli.outbox SET resend_at = resend_at - interval '60 s' WHERE tenant_id = $1",
        tenant)
    await relay.resend_due()
    # One batch of the 30 to the second consumer; nothing again to the first.
    assert [(m.actor_name, len(m.args[0])) for m in sent] == [(second, 30)]
    worker = dramatiq.Worker(broker, worker_threads=2)
    worker.start()
    try:
        await wait_for(lambda: _applied_all(resources, second, 30))
        assert await applied(resources, first) == Counter({n: 1 for n in range(30)})
        assert await applied(resources, second) == Counter({n: 1 for n in range(30)})
        await settle_all(relay)
        assert await kept(resources, tenant) == 0
    finally:
        loop_thread = get_event_loop_thread()  # the worker's resources live on its loop
        if loop_thread is not None:
            await asyncio.to_thread(loop_thread.run_coroutine, WorkerContext.close())
        worker.stop()
        broker.close()


async def settle_all(relay: OutboxRelay) -> None:
    """Settle every chunk of the (shared) outbox once."""
    for _ in range(100):
        await relay.settle()
        if relay.settled_up_to == 0:
            return


async def _applied_all(resources: Resources, consumer: str, count: int) -> bool:
    return len(await applied(resources, consumer)) >= count


async def test_an_event_a_consumer_keeps_failing_is_kept_and_parked(
        resources: Resources) -> None:
    tag = uuid.uuid4().hex[:8]
    tenant, consumer = f"t-{tag}", f"probe.failing_{tag}"
    sent: list[str] = []
    relay = OutboxRelay(resources.pool, lambda ms: sent.extend(m.actor_name for m in ms),
                        resend_after_s=1.0, resend_max_s=4.0, batch_size=100_000,
                        subscriptions={"Noted": (Subscriber("q", consumer),)})
    async with resources.pool.acquire() as conn, conn.transaction():
        await emit(conn, service="probe", tenant_id=tenant, events=[Noted(n=1)])
    await relay.send_new()
    waits = []
    for _ in range(PARKED_AFTER_SENDS - 1):  # nobody applies it: it is sent again and again
        waits.append(await resources.pool.fetchval(
            "SELECT round(extract(epoch FROM resend_at - now())) FROM fuli.outbox"
            " WHERE tenant_id = $1", tenant))
        await resources.pool.execute(
            "UPDATE fuli.outbox SET resend_at = now() WHERE tenant_id = $1", tenant)
        await relay.resend_due()
        await relay.settle()
        assert await kept(resources, tenant) == 1
    assert waits[:4] == [1, 2, 4, 4]  # doubling, up to resend_max_s
    assert sent == [consumer] * PARKED_AFTER_SENDS
    own = await resources.pool.fetchrow(
        "SELECT sends FROM fuli.outbox WHERE tenant_id = $1", tenant)
    assert own["sends"] == PARKED_AFTER_SENDS
    assert (await outbox_backlog(resources.pool)).parked >= 1
    pending_before = (await outbox_backlog(resources.pool)).pending
    # Once applied, the event is let go.
    await resources.pool.execute(
        "INSERT INTO fuli.inbox (tenant_id, consumer, event_id)"
        " SELECT tenant_id, $2, event_id FROM fuli.outbox WHERE tenant_id = $1", tenant, consumer)
    await settle_all(relay)
    assert await kept(resources, tenant) == 0
    pending_after = (await outbox_backlog(resources.pool)).pending
    assert pending_after <= pending_before


def noted(tenant: str, member: str, n: int) -> str:
    return msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()), tenant_id=tenant, service="probe", type="Noted",
        emitted_at=datetime.now(UTC),
        data=msgspec.Raw(msgspec.json.encode(Noted(n=n, member_id=member))))).decode()


def counting(keys: dict[str, str]) -> Any:
    """A handler that bumps the counter ``keys[member]`` and holds its lock a moment, so two
    transactions that lock the same rows in opposite orders meet."""
    async def apply(conn: Conn, envelope: Envelope) -> None:
        member = msgspec.json.decode(envelope.data, type=Noted).member_id
        await conn.execute(
            "INSERT INTO probe.counters (tenant_id, key, n) VALUES ($1, $2, 1)"
            " ON CONFLICT (tenant_id, key) DO UPDATE SET n = probe.counters.n + 1",
            envelope.tenant_id, keys[member])
        await conn.execute("SELECT pg_sleep(0.05)")
    return apply


async def counters(resources: Resources, tenant: str) -> dict[str, int]:
    rows = await resources.pool.fetch(
        "SELECT key, n FROM probe.counters WHERE tenant_id = $1", tenant)
    return {r["key"]: r["n"] for r in rows}


async def race(resources: Resources, consumer: str, batches: list[list[str]], handle: Any,
               serialized: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fuli.bus"):
        await asyncio.gather(*(consume(resources.pool, consumer, batch, handle,
                                       serialized=serialized) for batch in batches))
    assert not [r for r in caplog.records if "batch failed" in r.getMessage()]


async def test_batches_take_member_locks_in_one_order(
        resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    await resources.pool.execute(PROBE_SCHEMA)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    members = [f"m{i}" for i in range(6)]
    # Eight batches over the same members, in opposite orders: the deadlock the tiers
    # consumers met when each batch locked its members in delivery order.
    batches = [[noted(tenant, m, i) for i, m in enumerate(members[::1 if b % 2 else -1])]
               for b in range(8)]
    await race(resources, f"probe.members_{tenant}", batches,
               counting({m: m for m in members}), False, caplog)
    assert await counters(resources, tenant) == {m: 8 for m in members}


async def test_a_serialized_consumer_never_deadlocks_on_shared_rows(
        resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    await resources.pool.execute(PROBE_SCHEMA)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    # Rows shared between members (teams): member order says nothing about their lock order.
    team_of = {"a1": "team-y", "a2": "team-x", "b1": "team-x", "b2": "team-y"}
    batches = [[noted(tenant, "a1", 1), noted(tenant, "a2", 2)] if b % 2 else
               [noted(tenant, "b1", 3), noted(tenant, "b2", 4)] for b in range(6)]
    await race(resources, f"probe.teams_{tenant}", batches, counting(team_of), True, caplog)
    assert await counters(resources, tenant) == {"team-x": 6, "team-y": 6}


async def test_a_redelivered_event_applied_alone_does_not_deadlock_its_batch(
        resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    await resources.pool.execute(PROBE_SCHEMA)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    consumer = f"probe.redelivered_{tenant}"
    members = [f"m{i}" for i in range(4)]
    handle = counting({m: m for m in members})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fuli.bus"):
        for member in members:
            # The batch locks the member's row for its first event; meanwhile the second event,
            # delivered again on its own (a worker restart, a resend), is applied alone.
            first, second = noted(tenant, member, 1), noted(tenant, member, 2)
            await asyncio.gather(consume(resources.pool, consumer, [first, second], handle),
                                 consume(resources.pool, consumer, second, handle))
    assert not [r for r in caplog.records if "batch failed" in r.getMessage()]
    assert await counters(resources, tenant) == {m: 2 for m in members}


async def test_batches_touching_a_members_rows_in_different_orders_do_not_deadlock(
        resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    await resources.pool.execute(PROBE_SCHEMA)
    tenant = f"t-{uuid.uuid4().hex[:8]}"

    async def day_then_member(conn: Conn, envelope: Envelope) -> None:
        # Like the tiers consumer: the event's day row, then the member's own row.
        noted_event = msgspec.json.decode(envelope.data, type=Noted)
        for key in (f"{noted_event.member_id}:day{noted_event.n}", noted_event.member_id):
            await conn.execute(
                "INSERT INTO probe.counters (tenant_id, key, n) VALUES ($1, $2, 1)"
                " ON CONFLICT (tenant_id, key) DO UPDATE SET n = probe.counters.n + 1",
                envelope.tenant_id, key)
            await conn.execute("SELECT pg_sleep(0.03)")

    batches = [[noted(tenant, "m1", day) for day in ((1, 2) if b % 2 else (2, 1))]
               for b in range(6)]
    await race(resources, f"probe.days_{tenant}", batches, day_then_member, False, caplog)
    assert await counters(resources, tenant) == {"m1": 12, "m1:day1": 6, "m1:day2": 6}


async def test_settle_deletes_a_row_only_once_every_consumer_it_went_to_applied_it(
        resources: Resources) -> None:
    """Rows sent to two consumers, to one, and to none; the inbox has some of them."""
    tag = uuid.uuid4().hex[:8]
    tenant, first, second = f"t-{tag}", f"probe.first_{tag}", f"probe.second_{tag}"
    relay = OutboxRelay(resources.pool, lambda ms: None, batch_size=100_000, subscriptions={
        "Noted": (Subscriber("q", first), Subscriber("q", second))})
    async with resources.pool.acquire() as conn, conn.transaction():
        await emit(conn, service="probe", tenant_id=tenant, events=[Noted(n=n) for n in range(4)])
    await relay.send_new()
    rows = await resources.pool.fetch(
        "SELECT id, event_id FROM fuli.outbox WHERE tenant_id = $1 ORDER BY id", tenant)
    await resources.pool.execute(  # the last row went to nobody (a consumer since removed)
        "UPDATE fuli.outbox SET consumers = '{}' WHERE id = $1", rows[3]["id"])
    applied_by = {0: [first, second], 1: [first], 2: [second], 3: []}
    await resources.pool.executemany(
        "INSERT INTO fuli.inbox (tenant_id, consumer, event_id) VALUES ($1, $2, $3)",
        [(tenant, consumer, rows[n]["event_id"])
         for n, consumers in applied_by.items() for consumer in consumers])
    await settle_all(relay)
    left = await resources.pool.fetch(
        "SELECT id FROM fuli.outbox WHERE tenant_id = $1 ORDER BY id", tenant)
    assert [r["id"] for r in left] == [rows[1]["id"], rows[2]["id"]]


async def test_a_relay_leaves_the_events_of_a_type_it_does_not_know_to_one_that_knows_it(
        resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    """As when a newer release writes a new type of event while an older relay still runs:
    the older one neither sends it nor deletes it, and the newer one sends it to its consumer.
    After a rollback no relay knows the type: once the grace period is over, the older relay
    settles such a row as consumed by no one, and says so, rather than keep it as lag."""
    tag = uuid.uuid4().hex[:8]
    tenant, consumer = f"t-{tag}", f"probe.newer_{tag}"
    sent: list[str] = []
    older = OutboxRelay(resources.pool, lambda ms: sent.extend(m.actor_name for m in ms),
                        batch_size=100_000)
    newer = OutboxRelay(resources.pool, lambda ms: sent.extend(m.actor_name for m in ms),
                        batch_size=100_000, subscriptions={"Noted": (Subscriber("q", consumer),)})

    async def outbox_row() -> Any:
        return await resources.pool.fetchrow(
            "SELECT resend_at, consumers FROM fuli.outbox WHERE tenant_id = $1", tenant)

    try:
        async with resources.pool.acquire() as conn, conn.transaction():
            await emit(conn, service="probe", tenant_id=tenant, events=[Noted(n=1)])
        await older.send_new()
        await older.resend_due()
        await settle_all(older)
        unsent = await outbox_row()
        assert unsent is not None and tuple(unsent) == (None, None)
        assert consumer not in sent
        await newer.send_new()
        await settle_all(newer)
        row = await outbox_row()
        assert row is not None and row["consumers"] == [consumer]
        assert row["resend_at"] is not None and sent.count(consumer) == 1

        await resources.pool.execute("DELETE FROM fuli.outbox WHERE tenant_id = $1", tenant)
        async with resources.pool.acquire() as conn, conn.transaction():
            await emit(conn, service="probe", tenant_id=tenant, events=[Noted(n=2)])
        await resources.pool.execute(  # written just inside the grace period
            "UPDATE fuli.outbox SET created_at = now() - make_interval(secs => $2 - 30)"
            " WHERE tenant_id = $1", tenant, UNKNOWN_TYPE_GRACE_S)
        await older.send_new()
        assert tuple(await outbox_row()) == (None, None)
        await resources.pool.execute(  # and just outside it
            "UPDATE fuli.outbox SET created_at = now() - make_interval(secs => $2 + 30)"
            " WHERE tenant_id = $1", tenant, UNKNOWN_TYPE_GRACE_S)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="fuli.outbox"):
            await older.send_new()
        await settle_all(older)
        assert await outbox_row() is None and sent.count(consumer) == 1
        assert [r.fields for r in caplog.records  # type: ignore[attr-defined]
                if r.message.startswith("settling events of types no running relay knows")
                ] == [{"events": {"Noted": 1}}]
    finally:
        await resources.pool.execute("DELETE FROM fuli.outbox WHERE tenant_id = $1", tenant)


async def test_the_relay_sends_tasks_and_webhooks_only_the_events_of_tenants_with_some(
        resources: Resources) -> None:
    """An earning event's action goes to the tiers activity consumer always, and to task
    progress once the tenant has an enabled task; its award goes to the tiers metrics always,
    and to webhooks once the tenant has an enabled endpoint: as each is when the event is
    sent."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(resources.pool, lambda ms: None, batch_size=100_000)

    async def sent_to() -> dict[str, list[str]]:
        now = datetime.now(UTC)
        async with resources.pool.acquire() as conn, conn.transaction():
            await emit(conn, service="points", tenant_id=tenant, events=[
                ActionRecorded(member_id="m1", event_id=uuid.uuid4().hex, action="speak",
                               occurred_at=now, points=1),
                PointsAwarded(member_id="m1", points=1, source="event", ref="e", action="speak",
                              occurred_at=now, expires_at=now)])
        await relay.send_new()
        rows = await resources.pool.fetch(
            "SELECT event_type, consumers FROM fuli.outbox WHERE tenant_id = $1"
            " ORDER BY id DESC LIMIT 2", tenant)
        await resources.pool.execute("DELETE FROM fuli.outbox WHERE tenant_id = $1", tenant)
        return {row["event_type"]: sorted(row["consumers"]) for row in rows}

    assert await sent_to() == {"ActionRecorded": ["tiers.record_activity"],
                               "PointsAwarded": ["tiers.apply_points_event"]}
    await resources.pool.execute(
        "INSERT INTO rewards.tasks (tenant_id, task_id, name, kind, action, target, reward,"
        " claim) VALUES ($1, 'speak-once', 'Speak', 'once', 'speak', 1, '{}', 'auto')", tenant)
    await resources.pool.execute(
        "INSERT INTO webhooks.endpoints (tenant_id, endpoint_id, url, event_types, secret_salt)"
        " VALUES ($1, 'e1', 'https://hooks.example.com/', '{PointsAwarded}', $2)",
        tenant, b"0123456789abcdef")
    assert await sent_to() == {
        "ActionRecorded": ["rewards.advance_tasks", "tiers.record_activity"],
        "PointsAwarded": ["tiers.apply_points_event", "webhooks.record_events"]}
    await resources.pool.execute(
        "UPDATE webhooks.endpoints SET enabled = false WHERE tenant_id = $1", tenant)
    await resources.pool.execute(
        "UPDATE rewards.tasks SET enabled = false WHERE tenant_id = $1", tenant)
    assert await sent_to() == {"ActionRecorded": ["tiers.record_activity"],
                               "PointsAwarded": ["tiers.apply_points_event"]}
