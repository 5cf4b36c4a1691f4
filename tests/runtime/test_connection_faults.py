"""PostgreSQL connections killed under load: every answer is a definite one or a 503 with
Retry-After, never a 500; retried with the same ids, every request ends with a definite answer,
each effect lands exactly once, and the ledger check holds, without restarting anything.

The app under test is a Stack of its own with its own connection pool (its own
``application_name``), so terminating its backends leaves the session's pool alone."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.support.api import Rewards, Tenant, make_tenant, uid

MEMBERS = 30
START_POINTS = 1000
ROUNDS = 4
REQUESTS_PER_ROUND = 160
DEBIT, HOLD, OPEN_COST, PERK_COST = 3, 2, 2, 5
PACKETS, PERK_STOCK = 80, 40
MAX_RETRIES = 40
KILL_PAUSES_S = (0.02, 0.06)  # terminations per round, while its requests are in flight


@dataclass
class FaultyApp:
    name: str  # the application_name of its PostgreSQL connections
    client: httpx.AsyncClient
    resources: Resources


@pytest.fixture
async def faulty(settings: Settings) -> AsyncIterator[FaultyApp]:
    name = f"fuli-faults-{secrets.token_hex(4)}"
    resources = await Resources.open(settings, application_name=name)
    stack = Stack(settings, SERVICES)
    await stack.open(resources)
    transport = httpx.ASGITransport(app=stack)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://fuli",
                                     timeout=60) as client:
            yield FaultyApp(name, client, resources)
    finally:
        await stack.close()
        await resources.close()


async def terminate_backends(resources: Resources, application_name: str) -> int:
    """Kills every server process of the app's pool, busy or idle, as an operator would."""
    return int(await resources.pool.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = $1", application_name))


@dataclass
class Call:
    """One request, sent again with the same body (and id) until its answer is definite."""

    kind: str
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    member: str
    answers: list[httpx.Response] = field(default_factory=list)

    @property
    def final(self) -> httpx.Response:
        return self.answers[-1]

    async def send(self, client: httpx.AsyncClient) -> httpx.Response:
        answer = await client.request(self.method, self.url, headers=self.headers,
                                      json=self.body)
        self.answers.append(answer)
        return answer


DEFINITE = {
    "event": {201}, "debit": {201}, "hold": {201}, "open": {201, 409}, "redeem": {201, 409},
    "read": {200},
}


def not_yet(answer: httpx.Response) -> bool:
    """A 503, or the services' other "not yet, retry": 409 in_progress (a pool open whose
    shares' state was being rebuilt from PostgreSQL, while its connections were terminated,
    for longer than the open waits)."""
    return answer.status_code == 503 or (
        answer.status_code == 409 and answer.json()["error"]["code"] == "in_progress")


def check_answer(call: Call, answer: httpx.Response) -> None:
    """A definite answer the call may get, or one that says to come back."""
    if answer.status_code == 503:
        assert answer.headers.get("retry-after", "").isdigit(), answer.headers
        error = answer.json()["error"]
        assert error["code"] in ("service_unavailable", "points_unavailable"), answer.text
        return
    if not_yet(answer):
        return
    assert answer.status_code in DEFINITE[call.kind], (call.kind, answer.status_code,
                                                       answer.text)
    if answer.status_code == 409:
        code = answer.json()["error"]["code"]
        allowed = {"open": {"out_of_stock", "limit_reached"},
                   "redeem": {"out_of_stock"}}[call.kind]
        assert code in allowed, (call.kind, answer.text)


def make_calls(tenant: Tenant, members: list[str], pool_id: str, sku: str,
               count: int) -> list[Call]:
    ingest = tenant.headers(tenant.ingest)
    calls: list[Call] = []
    for n in range(count):
        member = members[n % len(members)]
        match n % 6:
            case 0:
                calls.append(Call("event", "POST", "/points/v1/events", ingest, {
                    "event_id": uid("ev"), "member_id": member, "action": "speak"}, member))
            case 1:
                calls.append(Call("debit", "POST", "/points/v1/debits", ingest, {
                    "debit_id": uid("db"), "member_id": member, "points": DEBIT,
                    "reason": "fault test"}, member))
            case 2:
                calls.append(Call("hold", "POST", "/points/v1/holds", ingest, {
                    "hold_id": uid("hd"), "member_id": member, "points": HOLD,
                    "reason": "fault test", "expires_in_s": 3600}, member))
            case 3:
                calls.append(Call("open", "POST", f"/rewards/v1/pools/{pool_id}/opens", ingest,
                                  {"open_id": uid("op"), "member_id": member}, member))
            case 4:
                calls.append(Call("redeem", "POST", "/rewards/v1/redemptions", ingest, {
                    "redemption_id": uid("rd"), "member_id": member, "sku": sku,
                    "quantity": 1}, member))
            case _:
                calls.append(Call("read", "GET", f"/points/v1/members/{member}", ingest, None,
                                  member))
    return calls


async def setup(client: httpx.AsyncClient, tenant: Tenant) -> tuple[list[str], str, str]:
    rewards = Rewards(client, tenant)
    members = [uid("m") for _ in range(MEMBERS)]
    granted = await rewards.points.grant([{"member_id": m, "points": START_POINTS}
                                          for m in members])
    assert granted.status_code == 201, granted.text
    pool_id = uid("pool")
    made = await client.post("/rewards/v1/pools", headers=rewards.operator, json={
        "pool_id": pool_id, "name": "fault pool", "total_points": PACKETS * 10,
        "packets": PACKETS, "split": "lucky", "open_cost_points": OPEN_COST,
        "per_member_opens": 100,
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
    assert made.status_code == 201, made.text
    sku = await rewards.perk(cost_points=PERK_COST, stock=PERK_STOCK, fulfilment="manual")
    return members, pool_id, sku


async def test_terminated_backends_under_load_answer_503_never_500(
        faulty: FaultyApp, resources: Resources) -> None:
    tenant = await make_tenant(resources.pool)
    members, pool_id, sku = await setup(faulty.client, tenant)
    calls: list[Call] = []
    killed = 0

    async def kill_during_round() -> None:
        nonlocal killed
        for pause in KILL_PAUSES_S:
            await asyncio.sleep(pause)
            killed += await terminate_backends(resources, faulty.name)

    for _ in range(ROUNDS):
        batch = make_calls(tenant, members, pool_id, sku, REQUESTS_PER_ROUND)
        calls += batch
        await asyncio.gather(kill_during_round(), *(c.send(faulty.client) for c in batch))
    first = Counter(c.answers[0].status_code for c in calls)
    for call in calls:
        check_answer(call, call.answers[0])
    assert killed > 0
    assert first[500] == 0, first

    # Sent again with the same ids until definite: nothing needed a restart.
    for _ in range(MAX_RETRIES):
        pending = [c for c in calls if not_yet(c.final)]
        if not pending:
            break
        await asyncio.sleep(0.1)
        answers = await asyncio.gather(*(c.send(faulty.client) for c in pending))
        for call, answer in zip(pending, answers, strict=True):
            check_answer(call, answer)
    assert not any(not_yet(c.final) for c in calls), Counter(
        c.final.text[:200] for c in calls if not_yet(c.final))
    print(f"\nfirst answers {dict(first)}; 503 by kind"
          f" {dict(Counter(c.kind for c in calls if c.answers[0].status_code == 503))};"
          f" backends terminated {killed}; resent {sum(len(c.answers) - 1 for c in calls)}")
    await every_pooled_connection_works(faulty.resources)

    await check_exactly_once(faulty.client, tenant, members, pool_id, sku, calls)


async def every_pooled_connection_works(resources: Resources) -> None:
    """No connection broken by the terminations is handed out again: every connection the
    pool can give at once answers."""
    size = resources.settings.db_pool_max
    connections = [await resources.pool.acquire() for _ in range(size)]
    try:
        assert await asyncio.gather(*(c.fetchval("SELECT 1") for c in connections)) == [1] * size
    finally:
        for conn in connections:
            await resources.pool.release(conn)


async def check_exactly_once(client: httpx.AsyncClient, tenant: Tenant, members: list[str],
                             pool_id: str, sku: str, calls: list[Call]) -> None:
    rewards = Rewards(client, tenant)
    expected = dict.fromkeys(members, START_POINTS)
    opened = redeemed = 0
    for call in calls:
        answer = call.final
        if answer.status_code not in (200, 201):
            continue
        match call.kind:
            case "event":
                expected[call.member] += answer.json()["points"]
            case "debit":
                expected[call.member] -= DEBIT
            case "hold":
                expected[call.member] -= HOLD
            case "open":
                expected[call.member] += answer.json()["points"] - OPEN_COST
                opened += 1
            case "redeem":
                expected[call.member] -= PERK_COST
                redeemed += 1
    states = await asyncio.gather(*(rewards.points.member(m) for m in members))
    assert {s["member_id"]: s["available"] for s in states} == expected
    pool = (await client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)).json()
    assert opened <= PACKETS and pool["remaining_packets"] == PACKETS - opened
    assert redeemed <= PERK_STOCK and await rewards.stock(sku) == PERK_STOCK - redeemed
    await rewards.points.assert_ledger_ok()
