"""Locust scenario for the hot path, POST /points/v1/events.

Environment: FULI_BENCH_KEY (an ingest key, required), FULI_BENCH_MEMBERS (default 10000),
FULI_BENCH_ACTION (default "bench"; its rule must exist).
"""

from __future__ import annotations

import itertools
import os
import random
import uuid

from locust import FastHttpUser, constant, task

KEY = os.environ.get("FULI_BENCH_KEY", "")
MEMBERS = int(os.environ.get("FULI_BENCH_MEMBERS", "10000"))
ACTION = os.environ.get("FULI_BENCH_ACTION", "bench")
PREFIX = uuid.uuid4().hex[:8]
_sequence = itertools.count()


class PointsEventsUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        if not KEY:
            raise RuntimeError("set FULI_BENCH_KEY to an ingest key")
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    @task
    def record_event(self) -> None:
        body = {
            "event_id": f"lb-{PREFIX}-{next(_sequence)}",
            "member_id": f"bench-m{random.randrange(MEMBERS)}",
            "action": ACTION,
        }
        with self.client.post("/points/v1/events", json=body, headers=self.headers,
                              name="POST /points/v1/events", catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
