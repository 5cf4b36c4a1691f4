"""Percentile stratification: one set-based pass over the whole tenant."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

import httpx
import msgspec

from proto.events import TIER_CHANGES_MEMBERS, TierChanges
from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from tests.support.api import Tenant, error_code

POLICY = {"mode": "percentile", "metric": "spend_cents", "grace_days": 0, "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3},
    {"name": "vip", "share": 0.2, "benefits": {"earn_multiplier": 1.5}}]}


async def seed(resources: Resources, tenant: str, n: int) -> None:
    """n members with distinct spends 100, 200, ... cents (what the event consumer builds)."""
    await resources.pool.execute(
        "INSERT INTO tiers.members (tenant_id, member_id)"
        " SELECT $1, 'm' || lpad(i::text, 6, '0') FROM generate_series(1, $2) AS i", tenant, n)
    await resources.pool.execute(
        "INSERT INTO tiers.member_days (tenant_id, member_id, day, spend_cents)"
        " SELECT $1, 'm' || lpad(i::text, 6, '0'), current_date, i * 100"
        " FROM generate_series(1, $2) AS i", tenant, n)


async def test_50_30_20_over_10000_members(client: httpx.AsyncClient, tenant: Tenant,
                                           resources: Resources) -> None:
    operator = tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin),
                             json=POLICY)).status_code == 200
    await seed(resources, tenant.name, 10_000)
    evaluation = await client.post("/tiers/v1/evaluations", headers=operator)
    assert evaluation.status_code == 200, evaluation.text
    body = evaluation.json()
    assert body["members"] == 10_000 and body["changed"] == 10_000
    assert [(c["tier"], c["members"], c["from_value"]) for c in body["cuts"]] == [
        ("fan", 5000, 100), ("member", 3000, 500_100), ("vip", 2000, 800_100)]
    distribution = (await client.get("/tiers/v1/distribution", headers=operator)).json()
    assert [(t["tier"], t["members"], t["share"]) for t in distribution["tiers"]] == [
        ("fan", 5000, 0.5), ("member", 3000, 0.3), ("vip", 2000, 0.2)]
    assert distribution["cut_lines"] == body["cuts"]
    top = await client.get("/tiers/v1/members/m010000/tier", headers=operator)
    assert top.json()["tier"] == "vip"
    # The moves announced 1,000 members an event (what tiers.stratify writes): spends rise with
    # the ids, so each run of a thousand movers in member order lands in one tier.
    announced = [msgspec.json.decode(r["payload"], type=TierChanges) for r in
                 await resources.pool.fetch("SELECT event_type, payload FROM fuli.outbox"
                                            " WHERE tenant_id = $1", tenant.name)]
    assert TIER_CHANGES_MEMBERS == 1000
    assert sorted((len(e.member_ids), e.previous_tier, e.tier) for e in announced) == sorted(
        [(1000, None, "fan")] * 5 + [(1000, None, "member")] * 3 + [(1000, None, "vip")] * 2)
    assert sorted(m for e in announced for m in e.member_ids) == [
        f"m{i:06d}" for i in range(1, 10_001)]
    assert all(e.earn_multiplier == (1.5 if e.tier == "vip" else 1.0) for e in announced)
    # Nothing moved: a second pass changes nothing and announces nothing.
    again = (await client.post("/tiers/v1/evaluations", headers=operator)).json()
    assert again["changed"] == 0


async def test_stratification_needs_a_percentile_policy(client: httpx.AsyncClient,
                                                        tenant: Tenant) -> None:
    response = await client.post("/tiers/v1/evaluations", headers=tenant.headers(tenant.operator))
    assert response.status_code == 409 and error_code(response) == "not_percentile"


async def test_the_scheduled_job_stratifies_percentile_tenants(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources, settings) -> None:  # type: ignore[no-untyped-def]
    from services.runtime.worker import WorkerContext
    from services.tiers import actors

    await client.put("/tiers/v1/policy", headers=tenant.headers(tenant.admin), json=POLICY)
    await seed(resources, tenant.name, 100)
    WorkerContext.configure(settings, SERVICES)
    try:
        await actors.stratify_all()
    finally:
        await WorkerContext.close()
    distribution = (await client.get("/tiers/v1/distribution",
                                     headers=tenant.headers(tenant.operator))).json()
    assert [t["members"] for t in distribution["tiers"]] == [50, 30, 20]


# Grace, ties, rounding at .5 and ids that JSON escapes: stratification checked pass by pass
# against a model of the rule in the README (position p of n in the lowest tier whose
# cumulative share s gives p <= round(s x n), half away from zero; downgrades after grace).
GRACE_POLICY = {"mode": "percentile", "metric": "spend_cents", "grace_days": 2, "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3,
                                    "benefits": {"earn_multiplier": 1.25}},
    {"name": "vip", "share": 0.2, "benefits": {"earn_multiplier": 1.5}}]}
START = datetime(2026, 10, 5, 8, 30, 0, 123_456, tzinfo=UTC)


class Member(NamedTuple):
    tier: str | None
    since: datetime | None
    below_since: datetime | None
    metrics: dict[str, int]


def model_pass(values: dict[str, int], members: dict[str, Member],
               now: datetime) -> tuple[dict[str, Member], list[tuple[str, str | None, str]],
                                       list[tuple[str, int, int | None]]]:
    """The members after a pass at ``now``, the changes (member, from, to) and the cut lines
    (tier, members, from_value)."""
    names = [t["name"] for t in GRACE_POLICY["tiers"]]
    grace = timedelta(days=GRACE_POLICY["grace_days"])
    order = sorted(members, key=lambda m: (values.get(m, 0), m))
    cumulative, last_positions = Decimal(0), []
    for t in GRACE_POLICY["tiers"]:
        cumulative += Decimal(str(t["share"]))
        last_positions.append(int((cumulative * len(order)).quantize(Decimal(1), ROUND_HALF_UP)))
    after: dict[str, Member] = dict(members)
    changes, placed = [], {}
    for position, member_id in enumerate(order, 1):
        new = next((k for k, last in enumerate(last_positions) if position <= last), None)
        placed[member_id] = new
        state = members[member_id]
        current = names.index(state.tier) if state.tier in names else None
        waited = (state.below_since or now) <= now - grace
        if current is None or (new is not None and new >= current) or waited:
            final, below_since = new, None
        else:
            final = current
            below_since = (state.below_since or now) if new is not None and new < current \
                else None
        if final is None:
            continue
        tier = names[final]
        after[member_id] = Member(tier, now if tier != state.tier else state.since, below_since,
                                  {"spend_cents": values.get(member_id, 0)})
        if tier != state.tier:
            changes.append((member_id, state.tier, tier))
    cuts = []
    for k, name in enumerate(names):
        in_tier = [values.get(m, 0) for m in order if placed[m] == k]
        cuts.append((name, len(in_tier), min(in_tier) if in_tier else None))
    return after, sorted(changes), cuts


async def test_passes_follow_the_rule_and_write_only_what_moves(tenant: Tenant,
                                                                resources: Resources) -> None:
    pool = resources.pool
    await pool.execute("INSERT INTO tiers.policies (tenant_id, policy) VALUES ($1, $2)",
                       tenant.name, GRACE_POLICY)
    ids = ["a", "b", 'c"q', "d", "e", "f", "gé\\"]
    await pool.execute("INSERT INTO tiers.members (tenant_id, member_id)"
                       " SELECT $1, unnest($2::text[])", tenant.name, ids)
    # A tier of an earlier ladder is left like no tier at all.
    await pool.execute("UPDATE tiers.members SET tier = 'gold', since = $2"
                       " WHERE tenant_id = $1 AND member_id = 'e'", tenant.name, START)
    members = {m: Member(None, None, None, {}) for m in ids}
    members["e"] = Member("gold", START, None, {})
    spends = [
        # Seven members: the tiers end at positions 4 (round 3.5), 6 (round 5.6) and 7;
        # a and b tie, as do e and f; d has no spend.
        {"a": 100, "b": 100, 'c"q': 50, "e": 300, "f": 300, "gé\\": 200},
        # d and c"q rise, e and f fall: rises at once, falls wait for the grace.
        {"d": 1_000, 'c"q': 900},
        {},
        # Past the grace: the falls land.
        {},
        # Nothing moves.
        {},
    ]
    values: dict[str, int] = {}
    waits = 0
    event_ids: list[uuid.UUID] = []
    for day, spend in enumerate(spends):
        now = START + timedelta(days=day)
        for member_id, cents in spend.items():
            values[member_id] = values.get(member_id, 0) + cents
            await pool.execute(
                "INSERT INTO tiers.member_days (tenant_id, member_id, day, spend_cents)"
                " VALUES ($1, $2, $3, $4)", tenant.name, member_id, now.date(), cents)
        expected, changes, cuts = model_pass(values, members, now)
        rows_before = {r["member_id"]: r["xmin"] for r in await pool.fetch(
            "SELECT member_id, xmin::text FROM tiers.members WHERE tenant_id = $1", tenant.name)}
        last_change = await pool.fetchval(
            "SELECT coalesce(max(change_id), 0) FROM tiers.history WHERE tenant_id = $1",
            tenant.name)
        last_event = await pool.fetchval(
            "SELECT coalesce(max(id), 0) FROM fuli.outbox WHERE tenant_id = $1", tenant.name)

        async with pool.acquire() as conn, conn.transaction():
            result = await conn.fetchrow("SELECT * FROM tiers.stratify($1, $2)", tenant.name, now)
        assert result is not None
        assert (result["members"], result["changed"]) == (len(ids), len(changes))
        assert [(c["tier"], c["members"], c["from_value"]) for c in result["cuts"]] == cuts

        rows = await pool.fetch(
            "SELECT member_id, tier, since, below_since, metrics, xmin::text FROM tiers.members"
            " WHERE tenant_id = $1", tenant.name)
        assert {r["member_id"]: Member(r["tier"], r["since"], r["below_since"], r["metrics"])
                for r in rows} == expected
        # A member whose row would not change is not written.
        assert {r["member_id"] for r in rows if r["xmin"] != rows_before[r["member_id"]]} \
            == {m for m in ids if expected[m] != members[m]}
        history = await pool.fetch(
            "SELECT member_id, from_tier, to_tier, metrics, at FROM tiers.history"
            " WHERE tenant_id = $1 AND change_id > $2 ORDER BY member_id", tenant.name,
            last_change)
        assert [(h["member_id"], h["from_tier"], h["to_tier"]) for h in history] == changes
        assert all(h["metrics"] == {"spend_cents": values.get(h["member_id"], 0)}
                   and h["at"] == now for h in history)
        # TierChanges payloads: the text the jsonb of each event gave, byte for byte; an
        # event for each pair of tiers the pass moved members between, every move in one.
        events = await pool.fetch(
            "SELECT event_id, event_type, payload FROM fuli.outbox"
            " WHERE tenant_id = $1 AND id > $2", tenant.name, last_event)
        event_ids += [e["event_id"] for e in events]
        multipliers = {t["name"]: t.get("benefits", {}).get("earn_multiplier")
                       for t in GRACE_POLICY["tiers"]}
        announced = []
        for event in events:
            moved = msgspec.json.decode(event["payload"], type=TierChanges)
            expected_payload = await pool.fetchval(
                "SELECT convert_to(jsonb_strip_nulls(jsonb_build_object("
                "'type', 'TierChanges', 'member_ids', $1::text[], 'tier', $2::text,"
                " 'previous_tier', $3::text, 'changed_at', $4::timestamptz,"
                " 'earn_multiplier', coalesce($5::float8, 1.0)))::text, 'UTF8')",
                moved.member_ids, moved.tier, moved.previous_tier, now, multipliers[moved.tier])
            assert (event["event_type"], bytes(event["payload"])) == ("TierChanges",
                                                                      expected_payload)
            announced += [(m, moved.previous_tier, moved.tier) for m in moved.member_ids]
        assert sorted(announced) == changes
        assert len(events) == len({(f, t) for _, f, t in changes})
        members = expected
        waits += sum(m.below_since is not None for m in members.values())
    assert changes == [] and waits > 0
    # Every event of every pass has its own id, a random (version 4) UUID, whose last digits
    # are not the event's position in the pass.
    assert len(set(event_ids)) == len(event_ids) > len(GRACE_POLICY["tiers"])
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in event_ids)
    assert not any((i.int & 0xFFFF_FFFF_FFFF) <= len(ids) for i in event_ids)
