"""`fuli up` with FULI_WORKERS=2: two API processes serve one listening socket, each with its own
group committer; concurrent events to the same members stay exact across them, and a killed API
process leaves the other serving while it is started again."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx

from tests.e2e.process import KEY, FuliServer, wait_for
from tests.e2e.test_supervise import children_of

MEMBERS = 5
EVENTS = 400


def api_processes(up_pid: int) -> list[int]:
    return sorted(pid for pid, cmd in children_of(up_pid).items() if " serve " in cmd)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def post_events(base_url: str, key: str) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=40)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=30) as http:
        answers = await asyncio.gather(*[http.post("/points/v1/events", json={
            "event_id": f"ap-{n}", "member_id": f"m{n % MEMBERS}", "action": "ap"})
            for n in range(EVENTS)])
    return [a.status_code for a in answers]


def test_two_api_processes_share_the_socket_and_stay_exact(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_WORKERS="2",
               FULI_RATE_LIMITS="key.default=100000/60,key.events=100000/60")
    server = FuliServer(env)
    printed = server.start()
    admin = KEY.search(printed)
    assert admin, printed
    assert server.process is not None
    up_pid = server.process.pid
    try:
        apis = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(api_processes(up_pid)),
                        30, "two API processes")
        with httpx.Client(base_url=server.base_url, timeout=10,
                          headers={"Authorization": f"Bearer {admin.group(1)}"}) as http:
            ingest = http.post("/points/v1/keys", json={"role": "ingest"})
            assert ingest.status_code == 201, ingest.text
            assert http.put("/points/v1/rules/ap", json={"points": 3}).status_code == 200
            key = ingest.json()["key"]

            cpu_before = {pid: cpu_s(pid) for pid in apis}
            assert asyncio.run(post_events(server.base_url, key)) == [201] * EVENTS
            balances = [http.get(f"/points/v1/members/m{m}").json()["available"]
                        for m in range(MEMBERS)]
            assert balances == [3 * EVENTS // MEMBERS] * MEMBERS
            # Both processes took connections (the kernel spreads accepts between them).
            worked = {pid: cpu_s(pid) - cpu_before[pid] for pid in apis}
            assert all(seconds >= 0.05 for seconds in worked.values()), worked
            assert http.get("/points/v1/ledger/check").json()["ok"] is True

            os.kill(apis[0], signal.SIGKILL)
            for _ in range(20):  # new connections each: the survivor answers them all
                assert httpx.get(f"{server.base_url}/health/live", timeout=10).status_code == 200
            wait_for(lambda: (lambda p: p if len(p) == 2 and apis[0] not in p else None)(
                api_processes(up_pid)), 30, "the killed API process started again")
    finally:
        assert server.stop() in (0, 128 + signal.SIGTERM)
