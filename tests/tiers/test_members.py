"""Who counts as a member of the tiers service: the points ledger's escrow members (red-packet
pools and packets) never do, whatever events reach the consumers, and the migration that
refuses them clears the rows they left before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.composition.registry import MIGRATIONS
from services.rewards.red_packets.rules import escrow_of
from services.runtime.migrations import BOOTSTRAP, migrations_of
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.tiers.members import is_escrow
from tests.support.api import Points, Rewards, Tenant, error_code, uid
from tests.support.bus import deliver

PERCENTILE = {"mode": "percentile", "metric": "points_earned", "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "vip", "share": 0.5}]}
MODEL = {"window_days": 28, "high_value_line": 5, "actions": {
    "speak": {"category": "content", "weight": 1}}}
TIERS_TABLES = ("members", "member_days", "history", "action_days", "purchases",
                "group_members")
# Ids that only look like escrow members: a member may be named so.
NOT_ESCROW = ["pool:abc", "packet:" + "a" * 39, "pool:" + "A" * 40, "pool:" + "a" * 41,
              "pools:" + "a" * 40, "pool-" + "a" * 40, "x-pool:" + "a" * 40, "m-1"]


def test_escrow_members_of_pools_and_packets_are_escrow_and_look_alikes_are_not() -> None:
    for owner in ("p-1", "spring pool", uid("pool")):
        assert is_escrow(escrow_of("pool", owner)) and is_escrow(escrow_of("packet", owner))
    assert not any(is_escrow(member) for member in NOT_ESCROW)


async def test_the_schema_draws_the_same_line_as_the_consumers(resources: Resources) -> None:
    ids = [escrow_of("pool", "a"), escrow_of("packet", "b"), *NOT_ESCROW]
    rows = await resources.pool.fetch(
        "SELECT id, tiers.is_escrow(id) AS escrow FROM unnest($1::text[]) AS id", ids)
    assert {r["id"]: r["escrow"] for r in rows} == {i: is_escrow(i) for i in ids}


async def escrow_events(resources: Resources, tenant: Tenant, escrows: list[str]) -> set[str]:
    """The event types in the tenant's outbox that name one of ``escrows``."""
    rows = await resources.pool.fetch(
        "SELECT DISTINCT o.event_type FROM fuli.outbox o, unnest($2::text[]) AS e(member)"
        " WHERE o.tenant_id = $1 AND position(e.member IN convert_from(o.payload, 'UTF8')) > 0",
        tenant.name, escrows)
    return {r["event_type"] for r in rows}


async def test_red_packet_escrows_are_in_no_population(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    points, rewards = Points(client, tenant), Rewards(client, tenant)
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=admin,
                             json=PERCENTILE)).status_code == 200
    assert (await client.put("/tiers/v1/value-model", headers=admin,
                             json=MODEL)).status_code == 200
    speakers = [uid("s") for _ in range(3)]
    for rank, member in enumerate(speakers, 1):
        for _ in range(rank):
            assert (await points.event(member, "speak")).status_code == 201
        await points.give(member, 10 * rank)

    pool_id = uid("pool")
    made = await client.post("/rewards/v1/pools", headers=operator, json={
        "pool_id": pool_id, "name": "Spring pool", "total_points": 100, "packets": 10,
        "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
    assert made.status_code == 201, made.text
    opener = uid("opener")
    opened = await client.post(f"/rewards/v1/pools/{pool_id}/opens", headers=rewards.ingest,
                               json={"open_id": uid("o"), "member_id": opener})
    assert opened.status_code == 201, opened.text
    maker, packet_id, grabber = uid("maker"), uid("pk"), uid("grabber")
    await points.give(maker, 50)
    packet = await client.post("/rewards/v1/packets", headers=rewards.ingest, json={
        "packet_id": packet_id, "member_id": maker, "total_points": 30, "shares": 3,
        "split": "equal", "expires_in_s": 600})
    assert packet.status_code == 201, packet.text
    grabbed = await client.post(f"/rewards/v1/packets/{packet_id}/grabs",
                                headers=rewards.ingest, json={"member_id": grabber})
    assert grabbed.status_code == 201, grabbed.text
    pool_escrow, packet_escrow = escrow_of("pool", pool_id), escrow_of("packet", packet_id)
    assert (await points.member(pool_escrow))["available"] == 100 - opened.json()["points"]
    assert (await points.member(packet_escrow))["available"] == 20
    # The ledger takes any id: activity naming an escrow reaches the consumers too.
    for _ in range(10):
        assert (await points.event(pool_escrow, "speak")).status_code == 201
    assert {"PointsAwarded", "PointsSpent", "ActionRecorded"} <= await escrow_events(
        resources, tenant, [pool_escrow, packet_escrow])
    await deliver(resources, settings, tenant.name)

    real = {*speakers, opener, maker, grabber}
    escrows = {pool_escrow, packet_escrow}
    known = {r["member_id"] for r in await resources.pool.fetch(
        "SELECT member_id FROM tiers.members WHERE tenant_id = $1", tenant.name)}
    assert known == real
    for table in TIERS_TABLES:
        held = await resources.pool.fetchval(
            f"SELECT count(*) FROM tiers.{table} WHERE tenant_id = $1"
            " AND member_id = any($2::text[])", tenant.name, list(escrows))
        assert held == 0, table

    evaluation = await client.post("/tiers/v1/evaluations", headers=operator)
    assert evaluation.status_code == 200, evaluation.text
    assert evaluation.json()["members"] == len(real)
    assert sum(c["members"] for c in evaluation.json()["cuts"]) == len(real)
    distribution = (await client.get("/tiers/v1/distribution", headers=operator)).json()
    assert distribution["members"] == len(real)
    assert {t["tier"]: t["members"] for t in distribution["tiers"]} == {"fan": 3, "vip": 3}
    stratified = {r["member_id"] for r in await resources.pool.fetch(
        "SELECT member_id FROM tiers.members WHERE tenant_id = $1 AND tier IS NOT NULL",
        tenant.name)}
    assert stratified == real

    koc = await client.get("/tiers/v1/koc", headers=operator, params={"share": 0.2})
    assert koc.status_code == 200, koc.text
    assert koc.json()["population"] == len(real)
    # ceil(0.2 x 6) = 2; the pool's escrow, with 10 speaks, would have led the list.
    assert [k["member_id"] for k in koc.json()["items"]] == [speakers[2], speakers[1]]
    for member in escrows:
        value = (await client.get(f"/tiers/v1/members/{member}/value",
                                  headers=operator)).json()
        assert value["total"] == 0 and value["high_value"] is False
    scored = await client.get(f"/tiers/v1/members/{speakers[2]}/value", headers=operator)
    assert scored.json()["total"] == 3


async def test_an_escrow_cannot_join_a_group(client: httpx.AsyncClient, tenant: Tenant,
                                             resources: Resources) -> None:
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=admin,
                             json=PERCENTILE)).status_code == 200
    group_id = uid("g")
    assert (await client.put(f"/tiers/v1/groups/{group_id}", headers=operator, json={
        "name": "Fans", "tier": "fan", "kind": "fan"})).status_code == 200
    escrow = escrow_of("packet", uid("pk"))
    joined = await client.put(f"/tiers/v1/groups/{group_id}/members/{escrow}",
                              headers=operator)
    assert joined.status_code == 422 and error_code(joined) == "escrow_member"
    for table in ("members", "group_members"):
        assert await resources.pool.fetchval(
            f"SELECT count(*) FROM tiers.{table} WHERE tenant_id = $1", tenant.name) == 0
    look_alike = "pool:" + "A" * 40
    assert (await client.put(f"/tiers/v1/groups/{group_id}/members/{look_alike}",
                             headers=operator)).status_code == 200


async def test_the_migration_deletes_escrow_rows_and_refuses_new_ones(
        empty_database: str) -> None:
    """Rows escrow members left before migration 0005 (as the consumers stored them) go; a
    member's rows stay; the tables refuse escrow members from then on."""
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute(BOOTSTRAP)
        for service, package in MIGRATIONS:
            for migration in migrations_of(service, package):
                if service != "tiers" or migration.version < 5:
                    await conn.execute(migration.sql)
        clean_up = next(m for m in migrations_of("tiers", "services.tiers")
                        if m.version == 5)
        escrow, member, day = escrow_of("pool", "p-1"), "m-1", datetime.now(UTC)
        await conn.execute("INSERT INTO tiers.groups (tenant_id, group_id, name, tier, kind)"
                           " VALUES ('t', 'g', 'G', 'fan', 'fan')")
        for who in (escrow, member):
            await conn.execute(
                "INSERT INTO tiers.members (tenant_id, member_id, points_available, tier)"
                " VALUES ('t', $1, 100, 'vip')", who)
            await conn.execute("INSERT INTO tiers.member_days (tenant_id, member_id, day,"
                               " points_earned) VALUES ('t', $1, $2, 100)", who, day.date())
            await conn.execute("INSERT INTO tiers.history (tenant_id, member_id, to_tier,"
                               " metrics) VALUES ('t', $1, 'vip', '{}')", who)
            await conn.execute("INSERT INTO tiers.action_days (tenant_id, member_id, day,"
                               " action, actions) VALUES ('t', $1, $2, 'speak', 3)",
                               who, day.date())
            await conn.execute("INSERT INTO tiers.purchases (tenant_id, event_id, member_id,"
                               " occurred_at, day, amount_cents) VALUES ('t', $1, $2, $3, $4,"
                               " 100)", "e-" + who, who, day, day.date())
            await conn.execute("INSERT INTO tiers.group_members (tenant_id, group_id,"
                               " member_id, joined_at) VALUES ('t', 'g', $1, $2)", who, day)
        await conn.execute(clean_up.sql)
        for table in TIERS_TABLES:
            left = {r["member_id"] for r in await conn.fetch(
                f"SELECT member_id FROM tiers.{table}")}
            assert left == {member}, table
            if table == "history":
                continue  # follows tiers.members, which refuses escrows
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(f"UPDATE tiers.{table} SET member_id = $1", escrow)
    finally:
        await conn.close()


async def test_a_member_known_only_by_a_group_join_is_at_the_lowest_tier(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    """A fan who joined a group but never reached the points metrics is at the lowest tier
    wherever tiers are shown: their tier, the distribution."""
    points = Points(client, tenant)
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    ladder = {"mode": "threshold", "tiers": [
        {"name": "fan"}, {"name": "vip", "min": {"spend_cents": 10_000}}]}
    assert (await client.put("/tiers/v1/policy", headers=admin, json=ladder)).status_code \
        == 200
    group_id, joiner, buyer = uid("g"), uid("joiner"), uid("buyer")
    assert (await client.put(f"/tiers/v1/groups/{group_id}", headers=operator, json={
        "name": "VIPs", "tier": "vip", "kind": "member"})).status_code == 200
    assert (await client.put(f"/tiers/v1/groups/{group_id}/members/{joiner}",
                             headers=operator)).status_code == 200
    assert (await points.event(buyer, "purchase", amount_cents=20_000)).status_code == 201
    await deliver(resources, settings, tenant.name)
    assert await resources.pool.fetchval(
        "SELECT tier FROM tiers.members WHERE tenant_id = $1 AND member_id = $2",
        tenant.name, joiner) is None

    shown = (await client.get(f"/tiers/v1/members/{joiner}/tier", headers=operator)).json()
    assert shown["tier"] == "fan" and shown["next"]["tier"] == "vip"
    stranger = (await client.get(f"/tiers/v1/members/{uid('x')}/tier",
                                 headers=operator)).json()
    assert stranger["tier"] is None
    distribution = (await client.get("/tiers/v1/distribution", headers=operator)).json()
    assert distribution["members"] == 2
    assert {t["tier"]: t["members"] for t in distribution["tiers"]} == {"fan": 1, "vip": 1}
