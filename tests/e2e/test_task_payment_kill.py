"""A task's reward when the worker paying it is killed half-way: `fuli up` on the embedded
default, the worker SIGKILLed after it granted the points and while it waits to hand out the
ticket; the supervisor starts a new worker, whose periodic payer finishes the payment: points,
ticket and the paid mark exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.runtime.embedded import EmbeddedServers
from tests.e2e.process import FuliServer, alive, newest_worker_pid, wait_for


async def _fetch(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def fetch(url: str, sql: str, *args: Any) -> Any:
    return asyncio.run(_fetch(url, sql, *args))


def test_a_worker_killed_while_paying_a_task_reward_pays_it_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(tmp_path / "data"), FULI_LOG_LEVEL="INFO",
               FULI_WORKER_HEARTBEAT_S="0.2", FULI_READY_MAX_HEARTBEAT_AGE_S="0.6")
    server = FuliServer(env)
    admin = server.start_with_admin_key()
    assert admin, server.output
    database = EmbeddedServers(tmp_path / "data").postgres.url
    tenant = fetch(database, "SELECT tenant_id FROM fuli.tenants")
    member = "killed-payer"
    blocker: asyncpg.Connection | None = None
    loop = asyncio.new_event_loop()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            def key(role: str) -> dict[str, str]:
                made = http.post("/points/v1/keys", json={"role": role},
                                 headers={"Authorization": f"Bearer {admin}"})
                assert made.status_code == 201, made.text
                return {"Authorization": f"Bearer {made.json()['key']}"}

            admin_h, operator, ingest = (
                {"Authorization": f"Bearer {admin}"}, key("operator"), key("ingest"))
            assert http.put("/points/v1/rules/check_in", json={"points": 1},
                            headers=admin_h).status_code == 200
            assert http.put("/rewards/v1/boxes/welcome", headers=operator, json={
                "name": "Welcome", "cost_points": 10,
                "prizes": [{"prize_id": "hug", "name": "Hug", "kind": "nothing",
                            "weight": 1}]}).status_code == 200
            defined = http.put("/rewards/v1/tasks/daily", headers=operator, json={
                "name": "Check in today", "kind": "daily",
                "condition": {"action": "check_in"},
                "reward": {"points": 7, "tickets": {"box_id": "welcome", "count": 1}}})
            assert defined.status_code == 200, defined.text

            # The member's ticket row, locked: the payment grants the points, then waits here.
            blocker = loop.run_until_complete(asyncpg.connect(database))
            loop.run_until_complete(blocker.execute(
                "INSERT INTO rewards.tickets (tenant_id, member_id, box_id, count)"
                " VALUES ($1, $2, 'welcome', 0)", tenant, member))
            loop.run_until_complete(blocker.execute("BEGIN"))
            loop.run_until_complete(blocker.execute(
                "SELECT 1 FROM rewards.tickets WHERE tenant_id = $1 AND member_id = $2"
                " FOR UPDATE", tenant, member))

            earned = http.post("/points/v1/events", headers=ingest, json={
                "event_id": "check-in-1", "member_id": member, "action": "check_in"})
            assert earned.status_code == 201, earned.text

            def balance() -> int:
                answer = http.get(f"/points/v1/members/{member}", headers=ingest)
                assert answer.status_code == 200, answer.text
                return int(answer.json()["available"])

            wait_for(lambda: balance() == 8, 30, "the reward's points granted")
            wait_for(lambda: fetch(
                database, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%rewards.tickets%'") == 1, 30, "the payment waiting")
            assert fetch(database, "SELECT rewarded_at IS NULL FROM rewards.task_progress"
                         " WHERE tenant_id = $1 AND member_id = $2 AND completed_at IS NOT"
                         " NULL", tenant, member) is True

            worker = newest_worker_pid(database)
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
            wait_for(lambda: not alive(worker), 10, "the worker gone")
            loop.run_until_complete(blocker.execute("ROLLBACK"))

            # The new worker's periodic payer (every 10 s) finishes it.
            wait_for(lambda: fetch(
                database, "SELECT rewarded_at IS NOT NULL FROM rewards.task_progress"
                " WHERE tenant_id = $1 AND member_id = $2", tenant, member), 60,
                "the reward marked paid", every_s=0.5)
            restarted = newest_worker_pid(database)
            assert restarted not in (None, worker)
            assert balance() == 8, "the points granted once: 1 for the event, 7 for the task"
            assert fetch(database, "SELECT count FROM rewards.tickets WHERE tenant_id = $1"
                         " AND member_id = $2 AND box_id = 'welcome'", tenant, member) == 1
            view = http.get(f"/rewards/v1/members/{member}/tasks", headers=ingest).json()
            assert [(t["task_id"], t["status"]) for t in view["items"]] == [
                ("daily", "claimed")]
            stats = http.get("/rewards/v1/tasks/daily/stats", headers=operator).json()
            assert (stats["completed"], stats["rewarded"], stats["rewards_paid"]) == (
                1, 1, {"points": 7, "tickets": 1, "perks": 0})
    finally:
        if blocker is not None:
            loop.run_until_complete(blocker.close())
        loop.close()
        assert server.stop() == 0
