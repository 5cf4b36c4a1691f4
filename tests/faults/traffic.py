"""Mixed traffic against the stack's public API, every request retried with its own id until a
definite answer.

A scenario gets a fresh tenant (`World`): members with points, a tier policy whose tiers carry
earn multipliers (so the tiers service's events flow back into the ledger), a perk with limited
stock, a blind box with a limited prize, a red-packet pool with fewer packets than members can
open, and a team-buy campaign whose teams are formed before the traffic starts. `Traffic` then
runs virtual users, each doing one operation after another: earning events (speak, purchase with
amount_cents), debits, holds then captured or voided, redemptions, draws and pool opens.

A definite answer is a 2xx or a 4xx other than 429 and `409 in_progress` (the services' "not
yet, retry"). Anything else (those, a 5xx, a refused or reset connection, a time-out) is sent
again with the same id and body, after the Retry-After the server gave (at most a few seconds)
or a short back-off. Every operation is recorded with its final
answer, so the checks can hold the stores to what was acknowledged."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.runtime import tenants
from services.runtime.db import init_connection
from tests.faults.stack import FaultStack

MEMBERS = 50
TEAM_SIZE = 5
TEAMS = 8  # the first 40 members are in teams; the last 10 are not
START_POINTS = 300
PERK_STOCK = 25
PERK_COST = 10
BOX_COST = 5
RARE_STOCK = 5
RARE_POINTS = 50
POOL_PACKETS = 40
POOL_POINTS = 400
POOL_OPEN_COST = 2
POOL_OPENS_PER_MEMBER = 2
HOLD_EXPIRES_S = 600
# Threshold tiers on spend (which only grows here: the traffic refunds nothing), so the tier a
# member must be in follows from the ledger's spend alone.
TIERS: list[tuple[str, int, float | None]] = [
    ("fan", 0, None), ("member", 50_000, 1.5), ("vip", 150_000, 2.0)]
REQUEST_TIMEOUT_S = 15
MAX_RETRY_WAIT_S = 5.0
# Operations and their weights in the mix.
MIX: dict[str, int] = {"speak": 18, "purchase": 22, "debit": 10, "hold": 10, "redeem": 10,
                       "draw": 15, "open": 15}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class World:
    """One scenario's tenant and what the traffic uses."""

    tenant: str
    admin: str
    operator: str
    ingest: str
    members: list[str]
    sku: str = "kit"
    box_id: str = "box"
    pool_id: str = "pool"
    campaign_id: str = "teambuy"
    teams: dict[str, list[str]] = field(default_factory=dict)

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@dataclass
class Op:
    """One operation and its final answer (status None: no definite answer before giving up,
    and body says what happened last)."""

    kind: str
    key: str
    member: str
    status: int | None = None
    body: Any = None


@dataclass
class Stats:
    requests: int = 0          # HTTP attempts
    operations: int = 0
    answered: int = 0          # operations with a definite answer
    retries: int = 0           # attempts after an operation's first
    server_errors: Counter[int] = field(default_factory=Counter)  # 5xx by status
    with_retry_after: int = 0  # 503 answers with Retry-After (the documented fault answer)
    connection_errors: int = 0  # no response: refused, reset, time-out
    throttled: int = 0         # 429
    in_progress: int = 0       # 409 in_progress: "retry"
    unresolved: int = 0        # operations given up without a definite answer
    error_samples: list[str] = field(default_factory=list)  # other 5xx answers
    by_status: Counter[str] = field(default_factory=Counter)  # "kind status"


class Client:
    """Requests retried with the same id and body until a definite answer."""

    def __init__(self, http: httpx.AsyncClient, stats: Stats) -> None:
        self.http = http
        self.stats = stats
        self.give_up_at = float("inf")

    async def call(self, method: str, path: str, headers: dict[str, str],
                   body: dict[str, Any] | None = None) -> tuple[int | None, Any]:
        """The definite status and its decoded body; or None and what happened last."""
        attempt = 0
        backoff = 0.1
        while True:
            self.stats.requests += 1
            if attempt:
                self.stats.retries += 1
            attempt += 1
            wait = backoff
            try:
                response = await self.http.request(method, path, headers=headers, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: no answer
                self.stats.connection_errors += 1
                last = f"no answer ({type(exc).__name__})"
            else:
                status = response.status_code
                answer = _json(response)
                last = f"{status} {_code(answer) or ''}".strip()
                if status == 409 and _code(answer) == "in_progress":
                    # "Still in progress; retry": the documented way to say "not yet".
                    self.stats.in_progress += 1
                elif status < 500 and status != 429:
                    return status, answer
                elif status == 429:
                    self.stats.throttled += 1
                else:
                    self.stats.server_errors[status] += 1
                retry_after = response.headers.get("retry-after")
                if status >= 500:
                    if status == 503 and retry_after is not None:
                        self.stats.with_retry_after += 1
                    elif len(self.stats.error_samples) < 20:
                        self.stats.error_samples.append(
                            f"{status} on {method} {path}: {response.text[:200]}")
                if retry_after is not None:
                    try:
                        wait = min(max(float(retry_after), 0.05), MAX_RETRY_WAIT_S)
                    except ValueError:
                        pass
            if time.monotonic() + wait > self.give_up_at:
                return None, f"given up after {attempt} attempts, the last: {last}"
            await asyncio.sleep(wait * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 2.0)


def _code(answer: Any) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("code"))
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


async def create_world(stack: FaultStack, http: httpx.AsyncClient, label: str) -> World:
    """A fresh tenant set up through the API (retried like the traffic, not counted in it)."""
    name = f"f-{label.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    conn = await stack.connect()
    try:
        await init_connection(conn)
        admin = await tenants.create_tenant(conn, name)
        operator = await tenants.create_key(conn, name, "operator")
        ingest = await tenants.create_key(conn, name, "ingest")
    finally:
        await conn.close()
    world = World(tenant=name, admin=admin.key, operator=operator.key, ingest=ingest.key,
                  members=[f"m{n:03d}" for n in range(MEMBERS)])
    client = Client(http, Stats())
    client.give_up_at = time.monotonic() + 120

    async def must(method: str, path: str, key: str, body: dict[str, Any],
                   ok: tuple[int, ...] = (200, 201)) -> None:
        status, answer = await client.call(method, path, world.headers(key), body)
        if status not in ok:
            raise RuntimeError(f"set-up {method} {path} answered {status}: {answer}")

    now = datetime.now(UTC)
    tiers = [{"name": tier, **({"min": {"spend_cents": floor}} if floor else {}),
              **({"benefits": {"earn_multiplier": mult}} if mult else {})}
             for tier, floor, mult in TIERS]
    await must("PUT", "/tiers/v1/policy", world.admin, {"mode": "threshold", "tiers": tiers})
    await must("POST", "/points/v1/grants", world.operator, {
        "grant_id": new_id("start"), "reason": "fault suite start",
        "items": [{"member_id": m, "points": START_POINTS} for m in world.members]})
    await must("PUT", f"/rewards/v1/perks/{world.sku}", world.operator, {
        "name": "Trial kit", "cost_points": PERK_COST, "stock": PERK_STOCK})
    await must("PUT", f"/rewards/v1/boxes/{world.box_id}", world.operator, {
        "name": "Spring box", "cost_points": BOX_COST, "prizes": [
            {"prize_id": "rare", "name": "Rare", "weight": 10, "stock": RARE_STOCK,
             "kind": "points", "points": RARE_POINTS},
            {"prize_id": "small", "name": "2 points", "weight": 40, "kind": "points",
             "points": 2},
            {"prize_id": "none", "name": "Thanks", "weight": 50, "kind": "nothing"}]})
    await must("POST", "/rewards/v1/pools", world.operator, {
        "pool_id": world.pool_id, "name": "Fault pool", "total_points": POOL_POINTS,
        "packets": POOL_PACKETS, "open_cost_points": POOL_OPEN_COST,
        "per_member_opens": POOL_OPENS_PER_MEMBER,
        "ends_at": (now + timedelta(hours=2)).isoformat()})
    base = f"/rewards/v1/campaigns/{world.campaign_id}"
    await must("PUT", base, world.operator, {
        "name": "Fault team-buy", "team_sizes": [TEAM_SIZE],
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat()})
    for t in range(TEAMS):
        team_id = f"team{t}"
        team = world.members[t * TEAM_SIZE:(t + 1) * TEAM_SIZE]
        await must("POST", f"{base}/teams", world.ingest, {
            "team_id": team_id, "captain_member_id": team[0], "size": TEAM_SIZE})
        for member in team[1:]:
            await must("POST", f"{base}/teams/{team_id}/members", world.ingest,
                       {"member_id": member})
        world.teams[team_id] = team
    return world


class Traffic:
    """Virtual users doing operations for a bounded time."""

    def __init__(self, http: httpx.AsyncClient, world: World, seed: int | None = None) -> None:
        self.world = world
        self.stats = Stats()
        self.client = Client(http, self.stats)
        self.ops: list[Op] = []
        self.random = random.Random(seed)
        self.kinds = list(MIX)
        self.weights = [MIX[k] for k in self.kinds]

    async def run(self, duration_s: float, users: int, drain_s: float,
                  rate: float | None = None) -> None:
        """Start operations for ``duration_s``, at most ``rate`` a second (None: as fast as
        the users get answers); an operation under way then has ``drain_s`` more to get its
        definite answer before it is given up (counted as unresolved)."""
        end = time.monotonic() + duration_s
        self.client.give_up_at = end + drain_s
        next_start = time.monotonic()

        async def user() -> None:
            nonlocal next_start
            while True:
                if rate is not None:
                    slot = max(next_start, time.monotonic())
                    next_start = slot + 1 / rate
                    await asyncio.sleep(slot - time.monotonic())
                if time.monotonic() >= end:
                    return
                kind = self.random.choices(self.kinds, self.weights)[0]
                await getattr(self, f"_{kind}")(self.random.choice(self.world.members))

        await asyncio.gather(*(user() for _ in range(users)))

    async def _do(self, kind: str, key: str, member: str, method: str, path: str,
                  body: dict[str, Any] | None) -> Op:
        op = Op(kind, key, member)
        self.ops.append(op)
        self.stats.operations += 1
        op.status, op.body = await self.client.call(
            method, path, self.world.headers(self.world.ingest), body)
        if op.status is None:
            self.stats.unresolved += 1
        else:
            self.stats.answered += 1
        self.stats.by_status[f"{kind} {op.status}"] += 1
        return op

    async def _speak(self, member: str) -> None:
        event_id = new_id("sp")
        await self._do("event", event_id, member, "POST", "/points/v1/events", {
            "event_id": event_id, "member_id": member, "action": "speak",
            "attributes": {"group_id": f"g{int(member[1:]) % 5}"}})

    async def _purchase(self, member: str) -> None:
        event_id = new_id("pu")
        await self._do("event", event_id, member, "POST", "/points/v1/events", {
            "event_id": event_id, "member_id": member, "action": "purchase",
            "amount_cents": self.random.randrange(100, 20_000)})

    async def _debit(self, member: str) -> None:
        debit_id = new_id("db")
        await self._do("debit", debit_id, member, "POST", "/points/v1/debits", {
            "debit_id": debit_id, "member_id": member, "points": self.random.randint(1, 15),
            "reason": "fault suite debit"})

    async def _hold(self, member: str) -> None:
        hold_id = new_id("hd")
        placed = await self._do("hold", hold_id, member, "POST", "/points/v1/holds", {
            "hold_id": hold_id, "member_id": member, "points": self.random.randint(1, 15),
            "reason": "fault suite hold", "expires_in_s": HOLD_EXPIRES_S})
        if placed.status != 201:
            return
        action = "capture" if self.random.random() < 0.6 else "void"
        await self._do(action, hold_id, member, "POST", f"/points/v1/holds/{hold_id}/{action}",
                       None)

    async def _redeem(self, member: str) -> None:
        redemption_id = new_id("rd")
        await self._do("redeem", redemption_id, member, "POST", "/rewards/v1/redemptions", {
            "redemption_id": redemption_id, "member_id": member, "sku": self.world.sku,
            "quantity": 1})

    async def _draw(self, member: str) -> None:
        draw_id = new_id("dr")
        await self._do("draw", draw_id, member, "POST",
                       f"/rewards/v1/boxes/{self.world.box_id}/draws",
                       {"draw_id": draw_id, "member_id": member})

    async def _open(self, member: str) -> None:
        open_id = new_id("op")
        await self._do("open", open_id, member, "POST",
                       f"/rewards/v1/pools/{self.world.pool_id}/opens",
                       {"open_id": open_id, "member_id": member})
