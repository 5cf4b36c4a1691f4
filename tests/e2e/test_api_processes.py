"""`fuli up` with FULI_WORKERS=2: two API processes serve one listening socket, each with its own
group committer; events to the same members stay exact through either and through both at once,
and a killed API process leaves the other serving while it is started again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.e2e.process import FuliServer, clean_env, wait_for
from tests.e2e.test_supervise import children_of

MEMBERS = 5
EVENTS = 400


def api_processes(up_pid: int) -> list[int]:
    return sorted(pid for pid, cmd in children_of(up_pid).items() if " serve " in cmd)


def two_api_processes(parent: int, what: str, gone: int | None = None) -> list[int]:
    """The two API processes of ``parent`` once it has two (``gone`` not among them)."""
    def found() -> list[int] | None:
        pids = api_processes(parent)
        return pids if len(pids) == 2 and gone not in pids else None

    return list(wait_for(found, 30, what))


async def post_events(base_url: str, key: str, first: int, count: int) -> list[int]:
    """Events ``first`` to ``first + count - 1``, concurrently, on new connections."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=30) as http:
        answers = await asyncio.gather(*[http.post("/points/v1/events", json={
            "event_id": f"ap-{n}", "member_id": f"m{n % MEMBERS}", "action": "ap"})
            for n in range(first, first + count)])
    return [a.status_code for a in answers]


def post_with_one_stopped(base_url: str, key: str, stopped: int, first: int,
                          count: int) -> list[int]:
    """Posts while the API process ``stopped`` is stopped: the other accepts every connection."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        return asyncio.run(post_events(base_url, key, first, count))
    finally:
        os.kill(stopped, signal.SIGCONT)


def test_two_api_processes_share_the_socket_and_stay_exact(tmp_path: Path) -> None:
    env = clean_env()
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_WORKERS="2",
               FULI_RATE_LIMITS="key.default=100000/60,key.events=100000/60")
    server = FuliServer(env)
    admin = server.start_with_admin_key()
    assert server.process is not None
    up_pid = server.process.pid
    try:
        apis = two_api_processes(up_pid, "two API processes")
        with httpx.Client(base_url=server.base_url, timeout=10,
                          headers={"Authorization": f"Bearer {admin}"}) as http:
            ingest = http.post("/points/v1/keys", json={"role": "ingest"})
            assert ingest.status_code == 201, ingest.text
            assert http.put("/points/v1/rules/ap", json={"points": 3}).status_code == 200
            key = ingest.json()["key"]

            # Each process alone (the other stopped), then both at once: the kernel gives
            # connections to whichever accepts first, so only a stop makes sure each served.
            quarter = EVENTS // 4
            assert post_with_one_stopped(server.base_url, key, apis[0], 0, quarter) == \
                [201] * quarter
            assert post_with_one_stopped(server.base_url, key, apis[1], quarter, quarter) == \
                [201] * quarter
            assert asyncio.run(post_events(server.base_url, key, 2 * quarter,
                                           EVENTS - 2 * quarter)) == [201] * (EVENTS - 2 * quarter)
            balances = [http.get(f"/points/v1/members/m{m}").json()["available"]
                        for m in range(MEMBERS)]
            assert balances == [3 * EVENTS // MEMBERS] * MEMBERS
            assert http.get("/points/v1/ledger/check").json()["ok"] is True

            os.kill(apis[0], signal.SIGKILL)
            for _ in range(20):  # new connections each: the survivor answers them all
                assert httpx.get(f"{server.base_url}/health/live", timeout=10).status_code == 200
            two_api_processes(up_pid, "the killed API process started again", gone=apis[0])
    finally:
        assert server.stop() in (0, 128 + signal.SIGTERM)


def test_fuli_serve_runs_as_many_api_processes(tmp_path: Path) -> None:
    env = clean_env()
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_WORKERS="2")
    server = FuliServer(env, "serve", ready_path="/points/health/ready")
    printed = server.start()
    assert "fuli is serving on" in printed
    assert server.process is not None
    try:
        apis = two_api_processes(server.process.pid, "two API processes")
        os.kill(apis[1], signal.SIGKILL)
        assert httpx.get(f"{server.base_url}/points/health/live", timeout=10).status_code == 200
        two_api_processes(server.process.pid, "the killed API process started again",
                          gone=apis[1])
    finally:
        assert server.stop() in (0, 128 + signal.SIGTERM)
