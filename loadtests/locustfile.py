"""Locust scenario for the hot path, POST /points/v1/events.

Each simulated user posts earning events back to back (no think time), each with a new event id
(a per-process prefix and a counter) for a random member out of FULI_BENCH_MEMBERS.

Environment:
    FULI_BENCH_KEY      an ingest API key of the tenant (required)
    FULI_BENCH_MEMBERS  how many distinct members events go to (default 10000)
    FULI_BENCH_ACTION   the action posted (default "bench"); the tenant's rule for it must exist

    FULI_BENCH_KEY=fuli_... locust -f loadtests/locustfile.py --host http://127.0.0.1:8000
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import uuid

from locust import FastHttpUser, constant, task

NAME = "POST /points/v1/events"
KEY = os.environ.get("FULI_BENCH_KEY", "")
MEMBERS = int(os.environ.get("FULI_BENCH_MEMBERS", "10000"))
ACTION = os.environ.get("FULI_BENCH_ACTION", "bench")
# Unique across the Locust processes of one run and across runs on the same database.
PREFIX = f"lb-{uuid.uuid4().hex[:12]}"
_counter = itertools.count(1)

if not KEY:
    sys.exit("locustfile: set FULI_BENCH_KEY to an ingest API key of the tenant")
if MEMBERS < 1:
    sys.exit("locustfile: FULI_BENCH_MEMBERS must be at least 1")


class PointsEventsUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    @task
    def record_event(self) -> None:
        body = {
            "event_id": f"{PREFIX}-{next(_counter)}",
            "member_id": f"bench-m{random.randint(1, MEMBERS)}",
            "action": ACTION,
        }
        with self.client.post("/points/v1/events", json=body, headers=self.headers, name=NAME,
                              catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
            elif response.headers.get("Idempotent-Replayed") == "true":
                # A fresh id must never be answered as a replay.
                response.failure("unexpected idempotent replay")
