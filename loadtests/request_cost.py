"""What one request of a multi-step route costs, sent one at a time: CPU per request of the API
process and of PostgreSQL, and the statements PostgreSQL ran per request.

A draw or a redemption is several transactions and calls to points; under load, the machine's
other tenants move its CPU per request by ±15 % from one run to the next, more than a change of
a round trip or two. Sent one at a time, with the worker paused (its relay and consumers apply
the events after the measurement), the cost is the route's own, and two checkouts can be
compared run for run. The statements are counted and timed from PostgreSQL's own log
(log_min_duration_statement = 0 from before the warm-up, so that every pooled connection has
taken it up; the lines between two marker statements this script runs around the measured
requests).

    .venv/bin/python loadtests/request_cost.py --route draw --requests 1000
    .venv/bin/python loadtests/request_cost.py --route redeem --statements

Prints one JSON line: ms of CPU per request by part, wall ms per request and, with
--statements, the statements per request by their first words and the ms PostgreSQL took for
them.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests.bench import (  # noqa: E402
    CpuMeter,
    Stack,
    positive,
    prepare_tenant,
    psql,
    worker_paused,
)
from loadtests.scenarios import BOX_PRIZES  # noqa: E402
from services.runtime.embedded import EmbeddedPostgres  # noqa: E402

WARM_UP = 300  # requests before the measurement: every pooled connection prepares its statements
BOX = "cost-box"
PERK = "cost-perk"
# A statement's lines: with the extended protocol its parse and bind (where a plan is made)
# before its execute, each with its own duration; a simple query is one line.
LOGGED = re.compile(r"\[\d+\] LOG:  duration: ([0-9.]+) ms  (statement|parse|bind|execute)"
                    r"(?: [^:]*)?: (.*)")
START, END = "SELECT 'request_cost: start'", "SELECT 'request_cost: end'"


def set_up(http: httpx.Client, members: int) -> None:
    granted = http.post("/points/v1/grants", json={
        "grant_id": "cost-fund", "reason": "request cost",
        "items": [{"member_id": f"cost-m{n}", "points": 1_000_000}
                  for n in range(1, members + 1)]})
    box = http.put(f"/rewards/v1/boxes/{BOX}", json={
        "name": "Cost box", "cost_points": 1, "prizes": BOX_PRIZES})
    perk = http.put(f"/rewards/v1/perks/{PERK}", json={
        "name": "Cost perk", "cost_points": 1, "stock": 10_000_000})
    for response in (granted, box, perk):
        if response.status_code not in (200, 201):
            raise SystemExit(f"set-up failed: {response.status_code} {response.text[:300]}")


def send(http: httpx.Client, route: str, n: int, members: int) -> None:
    member = f"cost-m{n % members + 1}"
    if route == "draw":
        response = http.post(f"/rewards/v1/boxes/{BOX}/draws",
                             json={"draw_id": uuid.uuid4().hex, "member_id": member})
    else:
        response = http.post("/rewards/v1/redemptions", json={
            "redemption_id": uuid.uuid4().hex, "member_id": member, "sku": PERK})
    if response.status_code != 201:
        raise SystemExit(f"{route} answered {response.status_code}: {response.text[:300]}")


class Statements(NamedTuple):
    counts: dict[str, float]  # statements per request by their first three words
    ms: dict[str, float]  # PostgreSQL's ms per request for them, parse and bind included


def logged_statements(log: str, requests: int) -> Statements:
    """The logged statements between the start and end markers, per request."""
    counts: collections.defaultdict[str, float] = collections.defaultdict(float)
    ms: collections.defaultdict[str, float] = collections.defaultdict(float)
    measuring = False
    for line in log.splitlines():
        found = LOGGED.search(line)
        if found is None:
            continue
        duration, step, text = float(found.group(1)), found.group(2), found.group(3)
        if text in (START, END):
            measuring = text == START
        elif measuring:
            words = " ".join(text.split()[:3])
            ms[words] += duration
            if step in ("statement", "execute"):
                counts[words] += 1
    return Statements(counts=_per_request(counts, requests, 2),
                      ms=_per_request(ms, requests, 3))


def _per_request(totals: Mapping[str, float], requests: int, digits: int) -> dict[str, float]:
    """The total and each key's share of it per request, the largest first."""
    ordered = sorted(totals.items(), key=lambda item: -item[1])
    return {"total": round(sum(totals.values()) / requests, digits),
            **{words: round(n / requests, digits) for words, n in ordered}}


def measure(route: str, requests: int, members: int, statements: bool,
            paused: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fuli-cost-") as tmp:
        stack = Stack(Path(tmp) / "data", Path(tmp) / "fuli-up.log", group_commit=True)
        try:
            admin_key, _ = stack.wait_ready()
            ingest_key = prepare_tenant(stack.base_url, admin_key)
            with httpx.Client(base_url=stack.base_url, timeout=60,
                              headers={"Authorization": f"Bearer {admin_key}"}) as admin:
                set_up(admin, members)
            postgres = EmbeddedPostgres(stack.data_dir)
            if statements:
                psql(postgres, "ALTER SYSTEM SET log_min_duration_statement = 0")
                psql(postgres, "SELECT pg_reload_conf()")
            log_start = postgres.logfile.stat().st_size
            with httpx.Client(base_url=stack.base_url, timeout=60,
                              headers={"Authorization": f"Bearer {ingest_key}"}) as http:
                for n in range(WARM_UP):
                    send(http, route, n, members)
                time.sleep(2)  # the worker applies the warm-up's events
                with worker_paused(stack, paused):
                    if statements:
                        psql(postgres, START)
                    with CpuMeter(stack) as cpu:
                        started = time.monotonic()
                        for n in range(WARM_UP, WARM_UP + requests):
                            send(http, route, n, members)
                        wall = time.monotonic() - started
                    if statements:
                        psql(postgres, END)
            figures: dict[str, Any] = {
                "route": route, "requests": requests, "members": members,
                "worker_paused": paused,
                "cpu_ms_per_request": {part: round(seconds / requests * 1000, 2)
                                       for part, seconds in cpu.exact_seconds.items()
                                       if part != "load_generator"},
                "wall_ms_per_request": round(wall / requests * 1000, 2)}
            if statements:
                with postgres.logfile.open() as log:
                    log.seek(log_start)
                    logged = logged_statements(log.read(), requests)
                figures["statements_per_request"] = logged.counts
                figures["statement_ms_per_request"] = logged.ms
            return figures
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", choices=("draw", "redeem"), default="draw",
                        help="POST /rewards/v1/boxes/{id}/draws (paid with points) or POST"
                             " /rewards/v1/redemptions (default draw)")
    parser.add_argument("--requests", type=positive, default=1000,
                        help="requests measured, after a warm-up of 300 (default 1000)")
    parser.add_argument("--members", type=positive, default=2000,
                        help="members the requests go to in turn: with more members than"
                             " requests, every draw is its member's first (default 2000)")
    parser.add_argument("--statements", action="store_true",
                        help="also count and time the statements PostgreSQL ran (logging them"
                             " costs CPU: leave it off when comparing CPU)")
    parser.add_argument("--worker", action="store_true",
                        help="leave the worker running (default: paused while measuring)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.route, args.requests, args.members, args.statements,
                             not args.worker)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
