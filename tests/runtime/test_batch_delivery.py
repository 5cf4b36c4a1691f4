"""Batch subscribers: the relay groups their events per message, and a consumer applies a batch
in one transaction, falling back to one event at a time when the batch fails."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from proto.events import Envelope, Subscriber
from services.runtime.bus import Handler, consume
from services.runtime.outbox import messages_for, routed
from services.runtime.resources import Resources


def row(event_type: str, n: int) -> dict[str, object]:
    return {"id": n, "event_id": uuid.uuid4(), "service": "points", "tenant_id": "t",
            "event_type": event_type, "payload": b'{"n": %d}' % n,
            "created_at": datetime.now(UTC)}


def test_batch_subscribers_get_their_events_together_in_order() -> None:
    single = Subscriber("q", "one_by_one")
    batched = Subscriber("q", "batched", batch=True)
    subscriptions = {"A": (single, batched), "B": (batched,), "C": ()}
    rows = [row("A" if n % 2 else "B", n) for n in range(7)] + [row("C", 7)]
    messages = messages_for(routed(rows, subscriptions), max_batch=3)  # type: ignore[arg-type]
    singles = [m for m in messages if m.actor_name == "one_by_one"]
    batches = [m for m in messages if m.actor_name == "batched"]
    assert [msgspec.json.decode(m.args[0])["data"]["n"] for m in singles] == [1, 3, 5]
    assert [len(m.args[0]) for m in batches] == [3, 3, 1]
    numbers = [msgspec.json.decode(body)["data"]["n"] for m in batches for body in m.args[0]]
    assert numbers == list(range(7))


def test_a_batch_message_holds_at_most_so_many_bytes_of_events() -> None:
    batched = Subscriber("q", "batched", batch=True)
    rows = [row("A", n) for n in range(10)]
    size = len(messages_for(routed(rows[:1], {"A": (batched,)}))[0].args[0][0])
    messages = messages_for(routed(rows, {"A": (batched,)}),  # type: ignore[arg-type]
                            max_batch=4, max_bytes=3 * size)
    assert [len(m.args[0]) for m in messages] == [3, 3, 3, 1]
    alone = messages_for(routed(rows[:3], {"A": (batched,)}),  # type: ignore[arg-type]
                         max_bytes=size - 1)
    assert [len(m.args[0]) for m in alone] == [1, 1, 1], "a larger body goes alone"
    assert [msgspec.json.decode(body)["data"]["n"] for m in messages for body in m.args[0]] \
        == list(range(10))


def envelope(n: int) -> str:
    return msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()), tenant_id="t", service="test", type="Probe",
        emitted_at=datetime.now(UTC), data=msgspec.Raw(b'{"n": %d}' % n))).decode()


@pytest.fixture
async def applied(resources: Resources) -> str:
    """A consumer name whose applied events land in a probe table."""
    await resources.pool.execute(
        "CREATE TABLE IF NOT EXISTS public.consume_probe (consumer text, n int,"
        " PRIMARY KEY (consumer, n))")
    return f"test.{uuid.uuid4().hex[:8]}"


def recorder(consumer: str, poison: int | None = None,
             attempts: list[int] | None = None) -> Handler:
    async def handle(conn: asyncpg.Connection, event: Envelope) -> None:
        n = msgspec.json.decode(event.data)["n"]
        if attempts is not None:
            attempts.append(n)
        if n == poison:
            raise RuntimeError("poison")
        await conn.execute("INSERT INTO public.consume_probe (consumer, n) VALUES ($1, $2)",
                           consumer, n)
    return handle


async def recorded(resources: Resources, consumer: str) -> list[int]:
    rows = await resources.pool.fetch(
        "SELECT n FROM public.consume_probe WHERE consumer = $1 ORDER BY n", consumer)
    return [r["n"] for r in rows]


async def test_a_failing_event_does_not_hold_back_its_batch(resources: Resources,
                                                            applied: str) -> None:
    attempts: list[int] = []
    bodies = [envelope(n) for n in range(6)]
    with pytest.raises(RuntimeError, match="poison"):
        await consume(resources.pool, applied, bodies, recorder(applied, 3, attempts))
    assert await recorded(resources, applied) == [0, 1, 2, 4, 5]
    # The broker's retry applies nothing twice (the inbox remembers the applied events) and
    # tries the poison event again.
    attempts.clear()
    with pytest.raises(RuntimeError):
        await consume(resources.pool, applied, bodies, recorder(applied, 3, attempts))
    assert 3 in attempts
    assert await recorded(resources, applied) == [0, 1, 2, 4, 5]
    inbox = await resources.pool.fetchval(
        "SELECT count(*) FROM fuli.inbox WHERE consumer = $1", applied)
    assert inbox == 5


async def test_a_batch_is_applied_once(resources: Resources, applied: str) -> None:
    bodies = [envelope(n) for n in range(50)]
    await consume(resources.pool, applied, bodies, recorder(applied))
    await consume(resources.pool, applied, bodies, recorder(applied))
    await consume(resources.pool, applied, bodies[7], recorder(applied))  # one body, again
    assert await recorded(resources, applied) == list(range(50))


def member_envelope(member_id: str) -> str:
    return msgspec.json.encode(Envelope(
        event_id=str(uuid.uuid4()), tenant_id="t", service="test", type="Probe",
        emitted_at=datetime.now(UTC), data=msgspec.Raw(b'{"member_id": "%s"}' % member_id.encode())
    )).decode()


async def test_consumers_of_one_service_take_turns_on_a_member_others_do_not(
        resources: Resources) -> None:
    """A tiers consumer holding a member keeps the other tiers consumers off that member, not
    the webhooks consumer: the consumers of one earning event apply it side by side."""
    member = f"m-{uuid.uuid4().hex[:8]}"
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(conn: asyncpg.Connection, event: Envelope) -> None:
        holding.set()
        await release.wait()

    async def nothing(conn: asyncpg.Connection, event: Envelope) -> None:
        return None

    held = asyncio.create_task(consume(resources.pool, "tiers.probe_hold",
                                       member_envelope(member), hold))
    same_service: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(holding.wait(), 10)
        # Another service's consumer gets through while the member is held.
        await asyncio.wait_for(consume(resources.pool, "webhooks.probe",
                                       member_envelope(member), nothing), 10)
        same_service = asyncio.create_task(consume(resources.pool, "tiers.probe_other",
                                                   member_envelope(member), nothing))
        await asyncio.sleep(0.5)
        assert not same_service.done(), "a consumer of the same service did not wait its turn"
    finally:
        # Whatever failed, the held transaction ends, so that the session's pool can close.
        release.set()
        await asyncio.wait_for(asyncio.gather(held, *([same_service] if same_service else [])),
                               10)
