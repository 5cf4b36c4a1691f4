"""`fuli up` on the embedded default supervises its children: real SIGKILLs of the worker, Valkey,
the API process and PostgreSQL, each started again, with /health/ready telling the truth
meanwhile."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from services.runtime.embedded import EmbeddedServers
from tests.e2e.process import FuliServer, alive, newest_worker_pid, wait_for

HEARTBEAT_S = 0.2
MAX_HEARTBEAT_AGE_S = 0.6


def children_of(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` and their command lines."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(
                b"\0", b" ").decode()
        except FileNotFoundError:
            pass
    return found


def readiness(http: httpx.Client) -> tuple[int, dict[str, str]]:
    try:
        answer = http.get("/health/ready", timeout=2)
    except httpx.TransportError:
        return 0, {}
    return answer.status_code, answer.json().get("checks", {})


def supervisor_log(server: FuliServer) -> list[dict[str, Any]]:
    lines = []
    for line in server.log.read_text().splitlines():
        if line.startswith("{") and '"fuli.supervisor"' in line:
            lines.append(json.loads(line))
    return lines


def test_up_restarts_a_killed_worker_valkey_api_and_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_LOG_LEVEL="INFO",
               FULI_WORKER_HEARTBEAT_S=str(HEARTBEAT_S),
               FULI_READY_MAX_HEARTBEAT_AGE_S=str(MAX_HEARTBEAT_AGE_S))
    server = FuliServer(env)
    admin = server.start_with_admin_key()
    assert server.process is not None
    up_pid = server.process.pid
    servers = EmbeddedServers(tmp_path / "data")  # to find the servers; starts nothing
    seen: set[int] = set()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            wait_for(lambda: readiness(http) == (200, {"postgres": "ok", "redis": "ok",
                                                       "worker": "ok", "event_lag": "ok"}),
                     10, "ready with the worker checked", every_s=0.1)

            # The worker: killed, readiness names its stale heartbeat, then it is back.
            worker = wait_for(lambda: newest_worker_pid(servers.postgres.url), 10, "a heartbeat")
            assert "worker" in children_of(up_pid)[worker]
            seen.add(worker)
            os.kill(worker, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(lambda: (lambda r: r[0] == 503 and r[1]["worker"].startswith(
                "stale heartbeat: the newest is "))(readiness(http)), 10,
                "503 naming the stale heartbeat")
            # Within the limit, give or take a beat and a loaded machine's slowness.
            assert time.monotonic() - killed_at < MAX_HEARTBEAT_AGE_S + HEARTBEAT_S + 5
            wait_for(lambda: readiness(http)[0] == 200, 30, "ready again", every_s=0.1)
            restarted = newest_worker_pid(servers.postgres.url)
            assert restarted not in (None, worker) and alive(restarted)
            assert "worker" in children_of(up_pid)[restarted]
            seen.add(restarted)

            # Valkey: killed, started again on the same socket; the API recovers.
            valkey = servers.valkey.running_pid()
            assert valkey is not None
            os.kill(valkey, signal.SIGKILL)
            wait_for(lambda: servers.valkey.running_pid() not in (None, valkey), 30,
                     "Valkey restarted")
            wait_for(lambda: readiness(http)[0] == 200, 30, "ready after Valkey", every_s=0.1)
            headers = {"Authorization": f"Bearer {admin}"}
            ingest = http.post("/points/v1/keys", json={"role": "ingest"}, headers=headers)
            assert ingest.status_code == 201, ingest.text
            assert http.put("/points/v1/rules/sv", json={"points": 2},
                            headers=headers).status_code == 200
            earned = http.post("/points/v1/events", json={
                "event_id": "sv-1", "member_id": "m1", "action": "sv"},
                headers={"Authorization": f"Bearer {ingest.json()['key']}"})
            assert earned.status_code == 201 and earned.json()["points"] == 2, earned.text

            # The API process: killed (its open connections die with it); a new connection
            # made meanwhile waits in the listening socket's queue for the next API process.
            (api,) = [pid for pid, cmd in children_of(up_pid).items() if " serve " in cmd]
            seen.add(api)
            os.kill(api, signal.SIGKILL)
            assert httpx.get(f"{server.base_url}/health/live", timeout=30).status_code == 200
            (new_api,) = [pid for pid, cmd in children_of(up_pid).items() if " serve " in cmd]
            assert new_api != api
            seen.add(new_api)

        # PostgreSQL: the postmaster killed, started again (crash recovery); the same request,
        # resent with its id until it gets a definite answer, is applied once.
        postgres = servers.postgres.running_pid()
        assert postgres is not None
        os.kill(postgres, signal.SIGKILL)
        wait_for(lambda: servers.postgres.running_pid() not in (None, postgres), 60,
                 "PostgreSQL restarted", every_s=0.1)
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            wait_for(lambda: readiness(http)[0] == 200, 30, "ready after PostgreSQL",
                     every_s=0.1)
            resent = wait_for(lambda: (lambda r: r if r.status_code == 201 else None)(
                http.post("/points/v1/events", json={
                    "event_id": "sv-2", "member_id": "m1", "action": "sv"},
                    headers={"Authorization": f"Bearer {ingest.json()['key']}"})),
                30, "the event recorded", every_s=0.2)
            assert resent.json()["balance"] == 4, resent.text
    finally:
        code = server.stop()
    assert code == 0
    restarts = [(line["child"], line["how"]) for line in supervisor_log(server)
                if line["msg"] == "child died; restarting it"]
    assert restarts == [("worker", "killed by SIGKILL"), ("valkey", f"process {valkey} is gone"),
                        ("api", "killed by SIGKILL"),
                        ("postgres", f"process {postgres} is gone")], restarts
    assert [line["child"] for line in supervisor_log(server)
            if line["msg"] == "child restarted"] == ["worker", "valkey", "api", "postgres"]
    # Stopped cleanly: no child left behind, the servers stopped.
    assert not [pid for pid in seen if alive(pid)]
    assert servers.postgres.running_pid() is None and servers.valkey.running_pid() is None
