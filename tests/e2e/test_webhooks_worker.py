"""Webhooks through the real worker path, and a worker SIGKILLed mid-delivery: `fuli up` on the
embedded default, a receiver on 127.0.0.1 that verifies with `standardwebhooks` and holds each
first request for a while; the worker is killed while those are in flight, the supervisor
starts a new one, and every delivery arrives (again, same webhook-id) once its claim runs out.
Nothing is lost."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.runtime.embedded import EmbeddedServers
from services.webhooks.deliveries.sender import LEASE_S
from tests.e2e.process import FuliServer, alive, newest_worker_pid, wait_for
from tests.support.webhooks import Receiver


async def _fetch(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args: Any) -> Any:
    return asyncio.run(_fetch(url, sql, *args))


def test_deliveries_in_flight_when_the_worker_is_killed_arrive_after_the_restart(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_LOG_LEVEL="INFO",
               FULI_WORKER_HEARTBEAT_S="0.2", FULI_READY_MAX_HEARTBEAT_AGE_S="0.6",
               FULI_WEBHOOKS_ALLOW_PRIVATE="true", FULI_WEBHOOKS_RETRY_SCALE="0.001")
    # The first request of each message is held 8 s: the worker is killed meanwhile.
    receiver = Receiver(behaviour=lambda _id, n: (200, 8.0 if n == 1 else 0.0, {})).start()
    server = FuliServer(env)
    admin = server.start_with_admin_key()
    assert admin, server.output
    database = EmbeddedServers(tmp_path / "data").postgres.url
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            admin_h = {"Authorization": f"Bearer {admin}"}
            made = http.post("/points/v1/keys", json={"role": "operator"}, headers=admin_h)
            operator = {"Authorization": f"Bearer {made.json()['key']}"}
            created = http.post("/webhooks/v1/endpoints", headers=admin_h, json={
                "url": receiver.url, "event_types": ["PointsAwarded"], "allow_http": True})
            assert created.status_code == 201, created.text
            receiver.secrets.append(created.json()["secret"])
            endpoint_id = created.json()["endpoint_id"]
            granted = http.post("/points/v1/grants", headers=operator, json={
                "grant_id": "g-1", "reason": "welcome",
                "items": [{"member_id": f"m-{i}", "points": 5} for i in range(3)]})
            assert granted.status_code == 201, granted.text

            wait_for(lambda: len(receiver.arrivals) == 3, 30, "three sends in flight")
            worker = newest_worker_pid(database)
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
            wait_for(lambda: not alive(worker), 10, "the worker gone")

            # The killed sends' claims run out, and the new worker sends them again.
            wait_for(lambda: {r["status"] for r in fetch(
                database, "SELECT status FROM webhooks.deliveries WHERE endpoint_id = $1",
                endpoint_id)} == {"delivered"}, LEASE_S + 60, "all recorded delivered",
                every_s=0.5)
            restarted = newest_worker_pid(database)
            assert restarted not in (None, worker)
            rows = fetch(database, "SELECT delivery_id, attempts FROM webhooks.deliveries"
                         " WHERE endpoint_id = $1", endpoint_id)
            assert len(rows) == 3 and all(r["attempts"] == 1 for r in rows)
            for row in rows:
                assert receiver.attempts_of(row["delivery_id"]) == 2, "killed once, sent again"
            assert all(a.verified for a in receiver.arrivals)
            listed = http.get(f"/webhooks/v1/endpoints/{endpoint_id}/deliveries",
                              headers=admin_h).json()["items"]
            assert [d["status"] for d in listed] == ["delivered"] * 3
    finally:
        receiver.stop()
        assert server.stop() == 0
