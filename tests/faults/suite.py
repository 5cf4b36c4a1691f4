"""One scenario: a fresh tenant, traffic for a bounded time with one fault injected while it runs,
the wait for the system to settle, then every invariant; and the table of a run.

Settling. After the traffic (and the drain of operations still retrying) the stack is checked
to be whole again (whatever a fault left down is started), then the suite polls the tenant's
figures until one of:
- `equal`: nothing of the tenant is left in the outbox, /health/ready answers 200 and every
  derived figure equals its source;
- `bound`: `settle_bound_s` passed (the bound within which derived state must be right);
- `quiet`, only when `quiet_s` is set: nothing is left in the outbox or in the broker (queued,
  delayed or fetched but not acknowledged, by live or dead workers), /health/ready answers 200,
  and neither the tenant's figures nor their differences from the sources have moved for
  `quiet_s`. It ends the wait early on a system that lost events, but state that a periodic
  job repairs (leaderboards are republished every minute, stock every 30 s) may then be
  judged before the job ran, so it is off by default.
The invariants are checked after that, whichever way it ended."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from tests.faults import checks as c
from tests.faults import traffic as t
from tests.faults.injection import Fault, Timeline
from tests.faults.stack import FaultStack

POLL_S = 0.5
# Log lines worth counting: consumers' batches that failed (deadlocks among them), messages
# the worker failed to process (retried later by the broker), errors the API did not map.
WORKER_NOTES = {"batch fallbacks": re.compile(r"batch failed; applying"),
                "deadlocks": re.compile(r"DeadlockDetectedError"),
                "failed messages": re.compile(r"Failed to process message")}
API_NOTES = {"unhandled errors": re.compile(r'"logger":"fuli.errors","msg":"unhandled error')}


@dataclass(frozen=True)
class Plan:
    duration_s: float = 60
    users: int = 16
    rate: float | None = 100  # operations started per second at most (None: no limit)
    drain_s: float = 30
    settle_bound_s: float = 60
    quiet_s: float | None = None
    seed: int | None = None


@dataclass
class Result:
    fault: str
    tenant: str
    stats: t.Stats
    checks: list[c.Check] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)
    settle: str = ""
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def broken(self) -> list[c.Check]:
        return [check for check in self.checks if not check.held]

    @property
    def ok(self) -> bool:
        return not self.broken

    def as_json(self) -> dict[str, Any]:
        stats = asdict(self.stats)
        stats["server_errors"] = {str(k): v for k, v in self.stats.server_errors.items()}
        stats["by_status"] = dict(self.stats.by_status)
        return {"fault": self.fault, "tenant": self.tenant, "ok": self.ok, "stats": stats,
                "settle": self.settle, "timeline": self.timeline, "notes": self.notes,
                "checks": [asdict(check) for check in self.checks]}


async def run_scenario(stack: FaultStack, fault: Fault, plan: Plan) -> Result:
    limits = httpx.Limits(max_connections=plan.users + 8,
                          max_keepalive_connections=plan.users + 8)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=t.REQUEST_TIMEOUT_S,
                                 limits=limits) as http:
        await asyncio.to_thread(stack.ensure_running)
        world = await t.create_world(stack, http, fault.name)
        assert stack.worker is not None and stack.api is not None
        worker_log, api_log = stack.worker.log_size(), stack.api.log_size()
        dead_before = await asyncio.to_thread(stack.dead_letters)
        traffic = t.Traffic(http, world, plan.seed)
        result = Result(fault.name, world.tenant, traffic.stats)
        timeline = Timeline()
        injection = asyncio.create_task(fault.inject(stack, plan.duration_s, timeline))
        await traffic.run(plan.duration_s, plan.users, plan.drain_s, plan.rate)
        timeline.note(f"traffic and its retries over ({traffic.stats.operations} operations)")
        injected = c.Check("fault injected and repaired", True)
        try:
            await injection
        except Exception as exc:
            injected = c.Check("fault injected and repaired", False, repr(exc))
        restarted = await asyncio.to_thread(stack.ensure_running)
        if restarted:
            timeline.note(f"started what was down: {', '.join(restarted)}")
        conn = await stack.connect()
        try:
            result.settle = await settle(stack, conn, http, world, plan)
            timeline.note(f"settled: {result.settle}")
            result.checks = [injected, *await c.all_checks(stack, conn, http, world, traffic)]
        finally:
            await conn.close()
        result.timeline = timeline.lines
        log = stack.worker.log_since(worker_log)
        result.notes = {name: len(pattern.findall(log)) for name, pattern in WORKER_NOTES.items()}
        log = stack.api.log_since(api_log)
        result.notes.update({name: len(pattern.findall(log))
                             for name, pattern in API_NOTES.items()})
        result.notes["dead letters"] = await asyncio.to_thread(stack.dead_letters) - dead_before
        return result


async def settle(stack: FaultStack, conn: Any, http: httpx.AsyncClient, world: t.World,
                 plan: Plan) -> str:
    start = time.monotonic()
    last: tuple[Any, ...] | None = None
    moved_at = start
    while True:
        now = time.monotonic()
        outbox = await c.unapplied(conn, world.tenant)
        ready = await _ready(http)
        derived = await c.derived_checks(conn, http, world)
        figures = (await c.snapshot(conn, world.tenant),
                   tuple((check.held, check.detail) for check in derived))
        if figures != last:
            last, moved_at = figures, now
        if outbox == 0 and ready and all(check.held for check in derived):
            return f"equal after {now - start:.1f} s"
        if plan.quiet_s is not None and outbox == 0 and ready \
                and now - moved_at >= plan.quiet_s:
            backlog = await asyncio.to_thread(stack.broker_backlog)
            if backlog == 0:  # None: the broker could not be read
                return (f"quiet after {now - start:.1f} s (nothing moved for "
                        f"{plan.quiet_s:g} s, outbox and broker empty; {_differing(derived)})")
        if now - start >= plan.settle_bound_s:
            backlog = await asyncio.to_thread(stack.broker_backlog)
            return (f"bound of {plan.settle_bound_s:g} s reached: {outbox} events in the "
                    f"outbox, {backlog if backlog is not None else '?'} messages in the broker, "
                    f"ready={ready}; {_differing(derived)}")
        await asyncio.sleep(POLL_S)


def _differing(derived: list[c.Check]) -> str:
    names = [check.name for check in derived if not check.held]
    return "differing: " + ", ".join(names) if names else "no derived figure differing"


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health/ready", timeout=5)).status_code == 200
    except httpx.TransportError:
        return False


# --- the table -------------------------------------------------------------------------------

def _server_errors(stats: t.Stats) -> str:
    if not stats.server_errors:
        return "0"
    return " ".join(f"{code}x{n}" for code, n in sorted(stats.server_errors.items()))


def table(results: list[Result]) -> str:
    """Per fault: the traffic and its answers, then every invariant, then what broke."""
    lines = []
    header: tuple[str, ...] = ("fault", "requests", "answered", "retries", "5xx", "conn err",
                               "in progress", "unresolved", "settled", "logs")
    rows: list[tuple[str, ...]] = []
    for r in results:
        s = r.stats
        notes = ", ".join(f"{k} {v}" for k, v in r.notes.items() if v) or "-"
        rows.append((r.fault, str(s.requests), f"{s.answered}/{s.operations}", str(s.retries),
                     _server_errors(s), str(s.connection_errors), str(s.in_progress),
                     str(s.unresolved),
                     r.settle.split(":")[0].split(" (")[0], notes))
    lines += _grid(header, rows)
    lines.append("")
    names: list[str] = []
    for r in results:
        names += [check.name for check in r.checks if check.name not in names]
    header = ("invariant", *(r.fault for r in results))
    rows = []
    for name in names:
        cells = []
        for r in results:
            found = next((check for check in r.checks if check.name == name), None)
            cells.append("-" if found is None else "held" if found.held else "BROKEN")
        rows.append((name, *cells))
    lines += _grid(header, rows)
    for r in results:
        if r.broken or r.stats.error_samples:
            lines.append("")
            lines.append(f"{r.fault} (tenant {r.tenant}; settle: {r.settle})")
            for check in r.broken:
                lines.append(f"  BROKEN {check.name}: {check.detail}")
            lines.append("  timeline: " + "; ".join(r.timeline))
    return "\n".join(lines)


def _grid(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))

    return [line(header), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)]


def summary_json(results: list[Result], plan: Plan, extra: dict[str, Any]) -> str:
    return json.dumps({"plan": asdict(plan), **extra,
                       "ok": all(r.ok for r in results),
                       "results": [r.as_json() for r in results]}, indent=2, default=str)

