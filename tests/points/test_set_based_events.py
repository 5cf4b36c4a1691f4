"""points.record_events writes a group of events as sets; what it answers and every row it
writes must be what points.record_event answers and writes, one event at a time in
(member_id, position) order. Two tenants with the same rules and history get the same random
group, one through each path, and everything they end with is compared."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.runtime.resources import Resources
from tests.support.api import make_tenant

RULES = [
    # action, points, points_per_unit, unit_cents, limits, expires_after_days, enabled
    ("plain", 3, 0, None, [], 30, True),
    ("unit", 1, 2, 100, [], 365, True),
    ("capped", 5, 0, None, [{"period": "day", "max_events": 2},
                            {"period": "week", "max_points": 12}], 365, True),
    ("short", 4, 0, None, [], 1, True),
    ("off", 9, 0, None, [], 365, False),
]
MEMBERS = [f"m{i:02d}" for i in range(12)]


@dataclass(frozen=True)
class Item:
    event_id: str
    member_id: str
    action: str
    occurred_at: datetime
    amount: int | None
    attributes: dict[str, str] | None

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(repr((self.event_id, self.member_id, self.action, self.amount,
                                    self.attributes)).encode()).digest()


async def prepare(conn: asyncpg.Connection, tenant: str, now: datetime) -> list[Item]:
    """Rules, a multiplier, a hold and an expired lot not yet swept; returns the events
    recorded before the group (their ids are stored)."""
    for action, points, per_unit, unit, limits, days, enabled in RULES:
        await conn.execute(
            "INSERT INTO points.rules (tenant_id, action, points, points_per_unit, unit_cents,"
            " limits, expires_after_days, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            tenant, action, points, per_unit, unit, limits, days, enabled)
    history = [
        Item("h-1", "m00", "plain", now - timedelta(hours=1), None, None),
        Item("h-2", "m01", "short", now - timedelta(days=3), None, None),
        Item("h-3", "m02", "unit", now - timedelta(hours=2), 950, {"channel": "wx"}),
        Item("h-4", "m03", "capped", now - timedelta(minutes=5), None, None),
        Item("h-5", "m04", "plain", now - timedelta(minutes=5), None, None),
    ]
    for item in history:
        await record_one(conn, tenant, item, now)
    await conn.execute("UPDATE points.members SET earn_multiplier = 1.5"
                       " WHERE tenant_id = $1 AND member_id = 'm04'", tenant)
    await conn.execute("SELECT points.place_hold($1, 'hold-1', 'm00', 2, 'test', 600, $2)",
                       tenant, now)
    return history


def random_group(rng: random.Random, history: list[Item], now: datetime) -> list[Item]:
    items: list[Item] = []
    for n in range(160):
        member = rng.choice([*MEMBERS, f"new{rng.randrange(4)}"])
        at = now - timedelta(minutes=rng.randrange(600))
        attributes = rng.choice([None, {"channel": "app"}])
        kind = rng.choices(
            ["plain", "unit", "unit_no_amount", "capped", "short_old", "unknown", "off",
             "stored", "stored_other", "repeat", "repeat_other"],
            [30, 12, 3, 10, 6, 4, 3, 4, 3, 5, 4])[0]
        if kind in ("repeat", "repeat_other") and items:
            earlier = rng.choice(items)
            items.append(earlier if kind == "repeat" else Item(
                earlier.event_id, member, "plain", at, None, attributes))
            continue
        if kind in ("stored", "stored_other"):
            before = rng.choice(history)
            items.append(before if kind == "stored" else Item(
                before.event_id, member, "plain", at, None, None))
            continue
        action = {"unit_no_amount": "unit", "short_old": "short", "unknown": "teleport"}.get(
            kind, kind)
        if kind == "repeat" or kind == "repeat_other":  # nothing earlier to repeat
            action = "plain"
        amount = rng.choice([None, 0, 199, 1_250, 40_000]) if kind == "plain" else (
            rng.choice([0, 99, 100, 3_333]) if kind == "unit" else None)
        if kind == "short_old":
            at = now - timedelta(days=2, minutes=n)
        elif kind == "capped":
            at = now  # one cap period, whatever the time of day: members reach their caps
        items.append(Item(f"e-{n}", member, action, at, amount, attributes))
    return items


async def record_one(conn: asyncpg.Connection, tenant: str, item: Item,
                     now: datetime) -> tuple[Any, ...]:
    row = await conn.fetchrow(
        "SELECT refused, body, replayed FROM points.record_event($1, $2, $3, $4, $5, $6, $7,"
        " $8, $9)", tenant, item.event_id, item.fingerprint, item.member_id, item.action,
        item.occurred_at, item.amount, item.attributes, now)
    assert row is not None
    return tuple(row)


async def record_group(conn: asyncpg.Connection, tenant: str, items: list[Item],
                       now: datetime) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT ord, refused, body, replayed FROM points.record_events($1, $2, $3, $4, $5, $6,"
        " $7, $8, $9) ORDER BY ord", tenant, [i.event_id for i in items],
        [i.fingerprint for i in items], [i.member_id for i in items], [i.action for i in items],
        [i.occurred_at for i in items], [i.amount for i in items],
        [i.attributes for i in items], now)
    assert [r["ord"] for r in rows] == list(range(1, len(items) + 1))
    return [(r["refused"], r["body"], r["replayed"]) for r in rows]


SNAPSHOT = {
    "members": "SELECT member_id, available, held, lifetime_earned, spent, expired, reversed,"
               " spend_cents, earn_multiplier FROM points.members WHERE tenant_id = $1"
               " ORDER BY member_id",
    "lots": "SELECT member_id, points, remaining, held, expires_at, source, ref"
            " FROM points.lots WHERE tenant_id = $1 ORDER BY member_id, lot_id",
    "transfers": "SELECT member_id, kind, from_account, to_account, amount, available_after,"
                 " held_after, ref, at FROM points.transfers WHERE tenant_id = $1"
                 " ORDER BY member_id, transfer_id",
    "events": "SELECT event_id, member_id, action, occurred_at, amount_cents, attributes,"
              " points, capped_points, recorded_at FROM points.events WHERE tenant_id = $1"
              " ORDER BY event_id",
    "cap_usage": "SELECT member_id, action, period, period_start, events, points"
                 " FROM points.cap_usage WHERE tenant_id = $1"
                 " ORDER BY member_id, action, period, period_start",
    "idempotency": "SELECT key, fingerprint, status_code, body FROM fuli.idempotency"
                   " WHERE tenant_id = $1 AND scope = 'points.events' ORDER BY key",
}


async def snapshot(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    state: dict[str, Any] = {name: [tuple(r) for r in await conn.fetch(sql, tenant)]
                             for name, sql in SNAPSHOT.items()}
    # Each member's outbox rows in the order they were written.
    outbox: dict[str, list[tuple[str, Any]]] = {}
    for row in await conn.fetch("SELECT event_type, payload FROM fuli.outbox"
                                " WHERE tenant_id = $1 AND service = 'points' ORDER BY id",
                                tenant):
        payload = json.loads(row["payload"])
        outbox.setdefault(payload.get("member_id", ""), []).append((row["event_type"], payload))
    state["outbox"] = outbox
    return state


@pytest.mark.parametrize("seed", range(6))
async def test_a_group_writes_what_one_event_at_a_time_writes(resources: Resources,
                                                               seed: int) -> None:
    grouped, single = (await make_tenant(resources.pool)).name, (
        await make_tenant(resources.pool)).name
    now = datetime.now(UTC).replace(microsecond=0)
    async with resources.pool.acquire() as conn:
        history = await prepare(conn, grouped, now)
        await prepare(conn, single, now)
        items = random_group(random.Random(seed), history, now)

        async with conn.transaction():
            answers = await record_group(conn, grouped, items, now)
        expected: dict[int, tuple[Any, ...]] = {}
        async with conn.transaction():
            for position in sorted(range(len(items)),
                                   key=lambda i: (items[i].member_id, i)):
                expected[position] = await record_one(conn, single, items[position], now)

        assert answers == [expected[i] for i in range(len(items))]
        assert {a[0] for a in answers} >= {None, "unknown_action", "amount_required",
                                           "idempotency_conflict"}, "the group lacks a case"
        assert any(b'"status":"capped"' in (a[1] or b"") for a in answers)
        mine, theirs = await snapshot(conn, grouped), await snapshot(conn, single)
        for table in mine:
            assert mine[table] == theirs[table], table
        problems = await conn.fetch("SELECT * FROM points.ledger_problems($1)", grouped)
        assert not problems


async def test_a_group_never_reads_a_whole_table_even_with_a_plan_made_on_empty_tables(
        empty_database: str) -> None:
    """The plans of points.record_events are cached per connection; one made while the tables
    were empty was kept as they grew, and joined the rows it had claimed and locked to a
    sequential scan of fuli.idempotency and points.members on every group. Here every plan is
    generic and made on empty tables; auto_explain hands each one to the session."""
    from services.composition.registry import MIGRATIONS
    from services.runtime import tenants
    from services.runtime.migrations import migrate

    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn, MIGRATIONS)
        await tenants.create_tenant(conn, "plans", "Asia/Shanghai")
        plans: list[str] = []
        conn.add_log_listener(lambda _conn, message: plans.append(str(message)))
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on",
                        "plan_cache_mode = force_generic_plan", "client_min_messages = log"):
            await conn.execute(f"SET {setting}")
        await conn.execute("LOAD 'auto_explain'")
        now = datetime.now(UTC)
        for group in range(3):
            events = [f"plan-{group}-{i}" for i in range(8)]
            rows = await conn.fetch(
                "SELECT refused FROM points.record_events('plans', $1, $2, $3, $4, $5, $6, $7,"
                " $8)", events, [b"\x00"] * 8, [f"m{i % 5}" for i in range(8)],
                ["purchase"] * 8, [now] * 8, [500] * 8, [None] * 8, now)
            assert [r["refused"] for r in rows] == [None] * 8
        await conn.execute("SET client_min_messages = warning")
        group_plans = [p for p in plans if "Insert on lots" in p]
        assert group_plans, plans[:3]
        for plan in plans:
            for table in ("idempotency", "members", "lots", "transfers", "outbox"):
                assert f"Seq Scan on {table} " not in plan, plan
    finally:
        await conn.close()
