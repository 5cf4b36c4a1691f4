"""loadtests/ledger_loader.py on a small state in the session's real database: what it loads is
a ledger the service itself could have written."""

from __future__ import annotations

import httpx
import msgspec

from loadtests import ledger_loader
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Tenant

MEMBERS = 2_000
ROWS = 20_000


async def test_a_loaded_ledger_passes_the_check_and_replays_its_events(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    assert settings.database_url is not None
    plan = ledger_loader.Plan(tenant=tenant.name, members=MEMBERS, rows=ROWS,
                              member_prefix="lm-", id_prefix="ldt-", action="speak")
    report = await ledger_loader.load(settings.database_url, plan, workers=0,
                                      chunk_members=300)

    assert report.members == MEMBERS
    # About ROWS: a member's final sweep may take one transfer more than its share.
    assert ROWS <= report.transfers <= ROWS * 1.03
    assert report.earns > 0.7 * report.transfers
    assert report.debits > 0 and report.expiries > 0
    assert report.table_sizes["points.transfers"]["rows"] >= ROWS

    check = await client.get("/points/v1/ledger/check", headers=tenant.headers(tenant.admin))
    assert check.status_code == 200, check.text
    assert check.json() == {"ok": True, "problems": []}

    async with resources.pool.acquire() as conn:
        counts = await conn.fetchrow(
            "SELECT count(*) AS members,"
            "       count(*) FILTER (WHERE m.available <> last.available_after) AS off_chain,"
            "       count(*) FILTER (WHERE m.lifetime_earned <> earned.points) AS off_earned"
            " FROM points.members m"
            " CROSS JOIN LATERAL (SELECT t.available_after FROM points.transfers t"
            "     WHERE t.tenant_id = m.tenant_id AND t.member_id = m.member_id"
            "     ORDER BY t.transfer_id DESC LIMIT 1) last"
            " CROSS JOIN LATERAL (SELECT sum(e.points) AS points FROM points.events e"
            "     WHERE e.tenant_id = m.tenant_id AND e.member_id = m.member_id) earned"
            " WHERE m.tenant_id = $1", tenant.name)
        assert counts is not None
        assert dict(counts) == {"members": MEMBERS, "off_chain": 0, "off_earned": 0}
        event = await conn.fetchrow(
            "SELECT e.event_id, e.member_id, e.points FROM points.events e"
            " WHERE e.tenant_id = $1 ORDER BY e.event_id LIMIT 1 OFFSET 777", tenant.name)
        debit = await conn.fetchrow(
            "SELECT d.debit_id, d.member_id, d.points, d.reason FROM points.debits d"
            " WHERE d.tenant_id = $1 ORDER BY d.debit_id LIMIT 1", tenant.name)
        assert event is not None and debit is not None
        outbox = await conn.fetchval("SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1",
                                     tenant.name)
    assert outbox == 0

    replay = await client.post(
        "/points/v1/events", headers=tenant.headers(tenant.ingest),
        json={"event_id": event["event_id"], "member_id": event["member_id"], "action": "speak"})
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("Idempotent-Replayed") == "true"
    answer = msgspec.json.decode(replay.content)
    assert answer["points"] == event["points"] and answer["status"] == "awarded"

    spent = await client.post(
        "/points/v1/debits", headers=tenant.headers(tenant.ingest),
        json={"debit_id": debit["debit_id"], "member_id": debit["member_id"],
              "points": debit["points"], "reason": debit["reason"]})
    assert spent.status_code == 201, spent.text
    assert spent.headers.get("Idempotent-Replayed") == "true"

    # Another request with a loaded id is a conflict, not a new event.
    conflict = await client.post(
        "/points/v1/events", headers=tenant.headers(tenant.ingest),
        json={"event_id": event["event_id"], "member_id": "someone-else", "action": "speak"})
    assert conflict.status_code == 409, conflict.text

    # A new event for a loaded member lands on its loaded balance.
    member = await client.get(f"/points/v1/members/{event['member_id']}",
                              headers=tenant.headers(tenant.ingest))
    assert member.status_code == 200, member.text
    before = member.json()["available"]
    earned = await client.post(
        "/points/v1/events", headers=tenant.headers(tenant.ingest),
        json={"event_id": "after-load-1", "member_id": event["member_id"], "action": "speak"})
    assert earned.status_code == 201, earned.text
    assert earned.json()["balance"] == before + earned.json()["points"]
    check = await client.get("/points/v1/ledger/check", headers=tenant.headers(tenant.admin))
    assert check.json() == {"ok": True, "problems": []}
