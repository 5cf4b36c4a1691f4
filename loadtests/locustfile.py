"""Locust scenarios of the bench suite (loadtests/bench.py), one user class per scenario.

Every simulated user sends its request back to back (no think time) unless the class is paced,
each value-moving request with a new id (a per-process prefix and a counter), for a random member
`bench-m1` .. `bench-m<FULI_BENCH_MEMBERS>`. Anything but the expected status is a failure. Name
the class on the command line: Locust runs every class of the file otherwise.

Environment:
    FULI_BENCH_KEY        an ingest API key of the tenant (required)
    FULI_BENCH_MEMBERS    how many distinct members requests go to (default 10000)
    FULI_BENCH_ACTION     the action posted (default "bench"); the tenant's rule for it must exist
    FULI_BENCH_TARGET     the perk, box, pool or campaign the rewards classes use
    FULI_BENCH_BATCH      events per POST /points/v1/events/batch (default 100)
    FULI_BENCH_USER_RATE  requests per second of each user of a paced class (default 1)
    FULI_BENCH_SUMMARY    a file where the final figures are written when the test stops: per
                          request name `requests`, `failures`, `requests_per_s`, `p50_ms`,
                          `p99_ms`; `failure_samples`; and `prizes_won`, the prizes DrawUser
                          was answered (Locust's CSV files are rewritten once a second, so they
                          miss the last second's requests)

    FULI_BENCH_KEY=fuli_... locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        PointsEventsUser
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import sys
import uuid
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, events, task
from locust.env import Environment
from locust.stats import StatsError

NAME = "POST /points/v1/events"
KEY = os.environ.get("FULI_BENCH_KEY", "")
MEMBERS = int(os.environ.get("FULI_BENCH_MEMBERS", "10000"))
ACTION = os.environ.get("FULI_BENCH_ACTION", "bench")
TARGET = os.environ.get("FULI_BENCH_TARGET", "")
BATCH = int(os.environ.get("FULI_BENCH_BATCH", "100"))
USER_RATE = float(os.environ.get("FULI_BENCH_USER_RATE", "1"))
SUMMARY = os.environ.get("FULI_BENCH_SUMMARY", "")
# Unique across the Locust processes of one run and across runs on the same database.
PREFIX = f"lb-{uuid.uuid4().hex[:12]}"
_counter = itertools.count(1)
# Prize ids the draws were answered with: what the API acknowledged, for the oversell check.
prizes_won: collections.Counter[str] = collections.Counter()

if not KEY:
    sys.exit("locustfile: set FULI_BENCH_KEY to an ingest API key of the tenant")
if MEMBERS < 1:
    sys.exit("locustfile: FULI_BENCH_MEMBERS must be at least 1")


def new_id() -> str:
    return f"{PREFIX}-{next(_counter)}"


def random_member() -> str:
    return f"bench-m{random.randint(1, MEMBERS)}"


@events.test_stop.add_listener
def write_summary(environment: Environment, **_: Any) -> None:
    if not SUMMARY:
        return
    stats = environment.stats
    summary = {
        "requests": {entry.name: {"requests": entry.num_requests,
                                  "failures": entry.num_failures,
                                  "requests_per_s": entry.total_rps,
                                  "p50_ms": entry.get_response_time_percentile(0.5),
                                  "p99_ms": entry.get_response_time_percentile(0.99)}
                     for entry in stats.entries.values()},
        "failure_samples": [f"{error.occurrences} x {StatsError.parse_error(error.error)}"
                            for error in stats.errors.values()][:5],
        "prizes_won": dict(prizes_won),
    }
    with open(SUMMARY, "w") as fh:
        json.dump(summary, fh)


class BenchUser(FastHttpUser):
    """Sends one kind of request; `send` marks anything but `expected` as a failure."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def send(self, method: str, path: str, name: str, expected: int,
             body: dict[str, Any] | None = None) -> Any:
        """The response, or None when it failed (decoding it is left to those who need it,
        so as not to spend the load generator's CPU)."""
        with self.client.request(method, path, json=body, headers=self.headers, name=name,
                                 catch_response=True) as response:
            if response.status_code != expected:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
                return None
            if response.headers.get("Idempotent-Replayed") == "true":
                # A fresh id must never be answered as a replay.
                response.failure("unexpected idempotent replay")
                return None
            return response


class PointsEventsUser(BenchUser):
    """The earn phase: one earning event per request."""

    @task
    def record_event(self) -> None:
        self.send("POST", "/points/v1/events", NAME, 201,
                  {"event_id": new_id(), "member_id": random_member(), "action": ACTION})


class PacedPointsEventsUser(PointsEventsUser):
    """The same events, each user at most FULI_BENCH_USER_RATE a second: latency under a
    given load rather than at saturation."""

    wait_time = constant_throughput(USER_RATE)


class BalanceReadUser(BenchUser):
    @task
    def read_balance(self) -> None:
        self.send("GET", f"/points/v1/members/{random_member()}",
                  "GET /points/v1/members/{id}", 200)


class EntriesReadUser(BenchUser):
    @task
    def read_entries(self) -> None:
        self.send("GET", f"/points/v1/members/{random_member()}/entries?limit=20",
                  "GET /points/v1/members/{id}/entries", 200)


class BatchEventsUser(BenchUser):
    """FULI_BENCH_BATCH events per request; a batch fails unless every event in it is new
    and accepted."""

    @task
    def record_batch(self) -> None:
        body = {"events": [{"event_id": new_id(), "member_id": random_member(),
                            "action": ACTION} for _ in range(BATCH)]}
        with self.client.post("/points/v1/events/batch", json=body, headers=self.headers,
                              name="POST /points/v1/events/batch",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
                return
            # 201 is a new event; a replayed one would be 200.
            refused = [item for item in response.json()["items"] if item["status_code"] != 201]
            if refused:
                response.failure(f"{len(refused)} of {BATCH} events not accepted as new, "
                                 f"e.g. {str(refused[0])[:200]}")


class RedemptionUser(BenchUser):
    """Redeems one of the perk FULI_BENCH_TARGET."""

    @task
    def redeem(self) -> None:
        self.send("POST", "/rewards/v1/redemptions", "POST /rewards/v1/redemptions", 201,
                  {"redemption_id": new_id(), "member_id": random_member(), "sku": TARGET})


class DrawUser(BenchUser):
    """Draws from the blind box FULI_BENCH_TARGET, paid with points; counts the prizes."""

    @task
    def draw(self) -> None:
        response = self.send("POST", f"/rewards/v1/boxes/{TARGET}/draws",
                             "POST /rewards/v1/boxes/{id}/draws", 201,
                             {"draw_id": new_id(), "member_id": random_member()})
        if response is not None:
            prizes_won[response.json()["prize"]["prize_id"]] += 1


class PoolOpenUser(BenchUser):
    """Opens a packet of the red-packet pool FULI_BENCH_TARGET."""

    @task
    def open_packet(self) -> None:
        self.send("POST", f"/rewards/v1/pools/{TARGET}/opens",
                  "POST /rewards/v1/pools/{id}/opens", 201,
                  {"open_id": new_id(), "member_id": random_member()})


class LeaderboardReadUser(BenchUser):
    """Reads the first page of the team-buy campaign FULI_BENCH_TARGET's leaderboard."""

    @task
    def read_leaderboard(self) -> None:
        self.send("GET", f"/rewards/v1/campaigns/{TARGET}/leaderboard?limit=20",
                  "GET /rewards/v1/campaigns/{id}/leaderboard", 200)


class TaskProgressReadUser(BenchUser):
    """Reads a member's tasks with their progress."""

    @task
    def read_tasks(self) -> None:
        self.send("GET", f"/rewards/v1/members/{random_member()}/tasks",
                  "GET /rewards/v1/members/{id}/tasks", 200)
