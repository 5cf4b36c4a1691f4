"""End to end over real HTTP against `fuli up` child processes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.runtime.embedded import EmbeddedServers
from tests.e2e.process import KEY, FuliServer, fuli


def test_up_serves_every_service_with_the_worker(configured_env: dict[str, str],
                                                tmp_path: Path) -> None:
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    tenant = "e2e-" + os.urandom(4).hex()
    created = fuli("tenant", "create", tenant, env=env)
    admin = KEY.search(created.stdout)
    assert admin, created.stdout
    server = FuliServer(env)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            assert http.get("/health/ready").json()["checks"] == {
                "postgres": "ok", "redis": "ok", "worker": "ok", "event_lag": "ok"}
            for name in ("points", "rewards", "tiers"):
                assert http.get(f"/{name}/health/ready").status_code == 200
                document = http.get(f"/{name}/docs/openapi.json")
                assert document.status_code == 200
                assert document.json()["info"]["title"] == f"fuli {name}"
                assert http.get(f"/{name}/docs").status_code == 200
            headers = {"Authorization": f"Bearer {admin.group(1)}"}
            ingest = http.post("/points/v1/keys", headers=headers, json={"role": "ingest"})
            assert ingest.status_code == 201
            token = http.post("/points/v1/member-tokens",
                              headers={"Authorization": f"Bearer {ingest.json()['key']}"},
                              json={"member_id": "alice", "ttl_s": 120})
            assert token.status_code == 201
            assert token.headers["x-request-id"]
            metrics = http.get("/metrics").text
            assert 'fuli_http_requests_total{method="POST",route="/points/v1/member-tokens"' \
                in metrics
            assert "fuli_outbox_lag_seconds" in metrics
            assert "fuli_outbox_parked_events" in metrics
            for n in range(5):
                event = http.post("/points/v1/events",
                                  headers={"Authorization": f"Bearer {ingest.json()['key']}"},
                                  json={"event_id": f"e2e-{n}", "member_id": "alice",
                                        "action": "speak"})
                assert event.status_code == 201, event.text
        # The worker runs beside the server: an event written to the outbox gets relayed.
        assert asyncio.run(outbox_drains(env["FULI_DATABASE_URL"]))
        # ... and the tiers consumers, which take events in batches, applied the speaking.
        assert asyncio.run(tiers_saw(env["FULI_DATABASE_URL"], tenant, "alice", 5))
    finally:
        assert server.stop() in (0, 143)


async def tiers_saw(database_url: str, tenant: str, member: str, actions: int,
                    timeout_s: float = 60) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen = await conn.fetchval(
                "SELECT coalesce(sum(actions), 0) FROM tiers.action_days"
                " WHERE tenant_id = $1 AND member_id = $2", tenant, member)
            earned = await conn.fetchval(
                "SELECT coalesce(sum(points_earned), 0) FROM tiers.member_days"
                " WHERE tenant_id = $1 AND member_id = $2", tenant, member)
            if seen == actions and earned == actions:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await conn.close()


# Generous: the worker relays whatever earlier tests left in a shared outbox before the probe.
async def outbox_drains(database_url: str, timeout_s: float = 60) -> bool:
    tenant = "e2e-relay-" + os.urandom(4).hex()
    conn = await asyncpg.connect(database_url)
    try:
        # A type the relay knows that no consumer takes for this tenant (it has no webhook
        # endpoint): the relay sends it to no one and deletes it.
        await conn.execute(
            "INSERT INTO fuli.outbox (service, tenant_id, event_type, payload)"
            " VALUES ('e2e', $1, 'TeamFormed', '{}'::bytea)", tenant)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1",
                                       tenant):
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await conn.close()


def test_embedded_default_keeps_data_across_restarts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_LOG_LEVEL="WARNING")
    first = FuliServer(env)
    admin = first.start_with_admin_key()
    try:
        with httpx.Client(base_url=first.base_url, timeout=10) as http:
            created = http.post("/points/v1/keys", json={"role": "ingest", "label": "kept"},
                                headers={"Authorization": f"Bearer {admin}"})
            assert created.status_code == 201
            ingest_key = created.json()["key"]
    finally:
        first.stop()
    servers = EmbeddedServers(tmp_path / "data")
    assert servers.postgres.running_pid() is None, "PostgreSQL left running after SIGTERM"
    assert servers.valkey.running_pid() is None, "Valkey left running after SIGTERM"

    second = FuliServer(env)
    printed_again = second.start()
    try:
        assert not KEY.search(printed_again), "a restart must not create a new tenant"
        with httpx.Client(base_url=second.base_url, timeout=10) as http:
            token = http.post("/points/v1/member-tokens", json={"member_id": "m1"},
                              headers={"Authorization": f"Bearer {ingest_key}"})
            assert token.status_code == 201, token.text
    finally:
        second.stop()


def test_bad_setting_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_PORT="not-a-port", FULI_DATA_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "services.composition.cli", "up"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "FULI_PORT" in result.stderr
    assert not (tmp_path / "postgres").exists(), "nothing may start on a bad setting"


@pytest.mark.parametrize("bootstrap", ["bootstrap-key-for-tests-0123456789"])
def test_bootstrap_key_makes_the_default_tenant_idempotently(
        configured_env: dict[str, str], tmp_path: Path, bootstrap: str) -> None:
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path), "FULI_BOOTSTRAP_KEY": bootstrap}
    for _ in range(2):
        fuli("migrate", env=env)
        server = FuliServer(env, "serve", "points", ready_path="/points/health/ready")
        server.start()
        try:
            keys = httpx.get(f"{server.base_url}/points/v1/keys",
                             headers={"Authorization": f"Bearer {bootstrap}"}, timeout=10)
            assert keys.status_code == 200
            assert [k["label"] for k in keys.json()["items"]].count("bootstrap key") == 1
        finally:
            server.stop()
