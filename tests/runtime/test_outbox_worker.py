"""The real worker path: outbox row -> relay -> broker on the real Redis -> Dramatiq worker ->
idempotent consumer."""

from __future__ import annotations

import asyncio
import threading
import uuid

import dramatiq
import msgspec
import pytest

from proto.events import Envelope, Event, Subscriber
from services.runtime.bus import ActorSpec, PeriodicJob, consume
from services.runtime.db import Conn
from services.runtime.outbox import OutboxRelay, emit
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.worker import Scheduler, WorkerContext, create_broker, declare_actors

CONSUMED_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS probe;
CREATE TABLE IF NOT EXISTS probe.pings (
    tenant_id text NOT NULL, event_id uuid NOT NULL, n int NOT NULL, seen int NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, event_id));
"""


class Pinged(Event, frozen=True):
    n: int


async def record_ping(body: str) -> None:
    resources = await WorkerContext.resources()
    await consume(resources.pool, "probe.record_ping", body, apply_ping)


async def apply_ping(conn: Conn, envelope: Envelope) -> None:
    ping = msgspec.json.decode(envelope.data, type=Pinged)
    await conn.execute(
        "INSERT INTO probe.pings (tenant_id, event_id, n) VALUES ($1, $2::uuid, $3)"
        " ON CONFLICT (tenant_id, event_id) DO UPDATE SET seen = probe.pings.seen + 1",
        envelope.tenant_id, envelope.event_id, ping.n)


@pytest.fixture
def queue() -> str:
    return f"probe-{uuid.uuid4().hex[:8]}"


async def test_events_flow_through_the_real_broker_once(
        settings: Settings, resources: Resources, queue: str) -> None:
    await resources.pool.execute(CONSUMED_SCHEMA)
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    WorkerContext.configure(settings, ())
    broker = create_broker(settings)
    declare_actors(broker, [ActorSpec("probe.record_ping", queue, record_ping)])
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=2)
    worker.start()
    try:
        async with resources.pool.acquire() as conn, conn.transaction():
            await emit(conn, service="probe", tenant_id=tenant_id,
                       events=[Pinged(n=n) for n in range(25)])
        # An event emitted in a rolled-back transaction never leaves.
        with pytest.raises(RuntimeError):
            async with resources.pool.acquire() as conn, conn.transaction():
                await emit(conn, service="probe", tenant_id=tenant_id, events=[Pinged(n=999)])
                raise RuntimeError("rolled back")

        sent: list[dramatiq.Message] = []

        def enqueue_twice(messages: list[dramatiq.Message]) -> None:
            for message in messages:  # at-least-once delivery: every message arrives twice
                broker.enqueue(message)
                broker.enqueue(message.copy(message_id=str(uuid.uuid4())))
                sent.append(message)

        relay = OutboxRelay(resources.pool, enqueue_twice,
                            subscriptions={"Pinged": (Subscriber(queue, "probe.record_ping"),)})
        while await relay.send_new():
            pass
        assert len(sent) == 25
        for _ in range(200):
            count = await resources.pool.fetchval(
                "SELECT count(*) FROM probe.pings WHERE tenant_id = $1", tenant_id)
            if count >= 25:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the duplicates arrive too

        async def kept() -> int:
            return int(await resources.pool.fetchval(
                "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1", tenant_id))

        # Applied by their consumer: no longer kept. (The database is the session's: earlier
        # tests may have left applied rows of their own, which settle deletes too.)
        assert await kept() == 25
        deleted = 0
        for _ in range(10):
            deleted += await relay.settle()
            if await kept() == 0:
                break
        assert await kept() == 0 and deleted >= 25
        rows = await resources.pool.fetch(
            "SELECT n, seen FROM probe.pings WHERE tenant_id = $1 ORDER BY n", tenant_id)
        assert [r["n"] for r in rows] == list(range(25))
        assert {r["seen"] for r in rows} == {1}
        assert await resources.pool.fetchval(
            "SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1", tenant_id) == 0
    finally:
        worker.stop()
        broker.close()


def test_periodic_jobs_are_enqueued_once_per_slot_across_replicas(settings: Settings) -> None:
    from dramatiq.brokers.stub import StubBroker

    assert settings.redis_url is not None
    broker = StubBroker()
    queue = f"sched-{uuid.uuid4().hex[:8]}"
    broker.declare_queue(queue)
    job = PeriodicJob(actor=f"{queue}.tick", queue=queue, every_s=3600)
    stop = threading.Event()
    replicas = [Scheduler(broker, settings.redis_url, [job], stop) for _ in range(3)]
    now = 1_000_000_000.0 + uuid.uuid4().int % 10_000 * 3600
    enqueued = [r.tick(now) for r in replicas] + [r.tick(now + 10) for r in replicas]
    assert sum(len(e) for e in enqueued) == 1
    assert sum(len(r.tick(now + 3600)) for r in replicas) == 1
    assert broker.queues[queue].qsize() == 2
