"""The AIPL lifecycle over a seeded population with back-dated events, evaluated at successive
times: stages, moves both ways, history, LifecycleChanged events and the funnel, each checked
against an independent computation from the raw seeded events; the model, the daily job and
bad input."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec

from proto.events import EVENT_TYPES, LifecycleChanged
from services.runtime.bus import decode_envelope
from services.runtime.outbox import OUTBOX_COLUMNS, envelope_json
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, Tenant, error_code, uid
from tests.support.bus import deliver, worker_context

ZONE = ZoneInfo("Asia/Shanghai")  # the test tenant's zone
STAGES = ("aware", "interested", "purchased", "loyal")
ENGAGEMENT = ("speak", "survey", "bind", "referral")
MODEL = {"engagement_actions": list(ENGAGEMENT), "interested_min_actions": 3, "window_days": 10,
         "loyal_min_purchases": 3, "repurchase_within_days": 3}
DEFAULTS = {"engagement_actions": list(ENGAGEMENT), "interested_min_actions": 3,
            "window_days": 30, "loyal_min_purchases": 3, "repurchase_within_days": 30}
# Seeded days are numbered from START (60 local days ago); evaluations run at 20:00 local on
# these days.
EVALUATION_DAYS = (10, 14, 20, 38, 45)
START = datetime.now(ZONE).date() - timedelta(days=60)


def local(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(START + timedelta(days=day), datetime.min.time(),
                            ZONE).replace(hour=hour, minute=minute)


@dataclass
class Purchase:
    at: datetime
    amount: int
    refunded: int = 0


@dataclass
class Seeded:
    """A member's raw events as seeded: engagement and other actions, and purchases."""

    actions: list[tuple[str, datetime]] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)


def expected_stage(seeded: Seeded, model: dict[str, Any], day: date) -> str:
    """The stage rule, written from the definition rather than from the code."""
    first = day - timedelta(days=model["window_days"] - 1)

    def in_window(at: datetime) -> bool:
        return first <= at.astimezone(ZONE).date() <= day

    engaged = sum(1 for action, at in seeded.actions
                  if action in model["engagement_actions"] and in_window(at))
    bought = sorted(p.at for p in seeded.purchases
                    if p.amount - p.refunded > 0 and p.at.astimezone(ZONE).date() <= day)
    in_it = [at for at in bought if in_window(at)]
    repurchase = False
    if in_it and len(bought) >= 2:
        gap = (bought[-1].astimezone(ZONE).date() - bought[-2].astimezone(ZONE).date()).days
        repurchase = gap <= model["repurchase_within_days"]
    if len(in_it) >= model["loyal_min_purchases"] or repurchase:
        return "loyal"
    if in_it:
        return "purchased"
    if engaged >= model["interested_min_actions"]:
        return "interested"
    return "aware"


class Population:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant) -> None:
        self.points = Points(client, tenant)
        self.members: dict[str, Seeded] = {}
        self.share_enabled = False

    async def act(self, member: str, action: str, at: datetime) -> None:
        if action == "share" and not self.share_enabled:  # an action that is no engagement
            response = await self.points.client.put("/points/v1/rules/share",
                                                    headers=self.points.admin,
                                                    json={"points": 1})
            assert response.status_code == 200, response.text
            self.share_enabled = True
        await self._act(member, action, at)

    async def _act(self, member: str, action: str, at: datetime) -> None:
        response = await self.points.event(member, action, occurred_at=at.isoformat())
        assert response.status_code == 201, response.text
        self.members.setdefault(member, Seeded()).actions.append((action, at))

    async def buy(self, member: str, at: datetime, amount: int = 10_000,
                  refund: int | None = None) -> None:
        response = await self.points.event(member, "purchase", occurred_at=at.isoformat(),
                                           amount_cents=amount)
        assert response.status_code == 201, response.text
        seeded = self.members.setdefault(member, Seeded())
        purchase = Purchase(at, amount)
        if refund is not None:
            reversed_ = await self.points.reverse(response.json()["event_id"],
                                                  amount_cents=refund)
            assert reversed_.status_code == 201, reversed_.text
            purchase.refunded = refund
        seeded.purchases.append(purchase)
        seeded.actions.append(("purchase", at))


async def seed(population: Population) -> dict[str, str]:
    """Hand-made members that reach every stage and move both ways, and random ones."""
    named = {name: uid(name) for name in ("aware", "interest", "climb", "count", "lookback",
                                          "refunded", "partial")}
    p = population
    await p.act(named["aware"], "share", local(1))  # known, never engaged
    await p.act(named["aware"], "speak", local(3))
    for day in (5, 6, 7):  # interested at 10 and 14, aware again at 20
        await p.act(named["interest"], "survey", local(day))
    for day in (8, 9, 10):  # interested at 10, purchased at 14, loyal at 20, aware at 38
        await p.act(named["climb"], "speak", local(day))
    await p.buy(named["climb"], local(13))
    await p.buy(named["climb"], local(17))
    await p.buy(named["climb"], local(19))
    for day in (5, 9, 13):  # 3 purchases 4 days apart: loyal by count at 14, purchased at 20
        await p.buy(named["count"], local(day))
    # Bought on day 28 and again on 31: at 38 the window (29..38) holds only day 31, whose
    # previous purchase (28, before the window) is 3 days earlier: loyal; at 45 aware.
    await p.buy(named["lookback"], local(28))
    await p.buy(named["lookback"], local(31, hour=23, minute=30))
    # A purchase refunded in full is none: interested only; a partial refund still buys.
    for day in (11, 12, 13):
        await p.act(named["refunded"], "referral", local(day))
    await p.buy(named["refunded"], local(12), amount=5_000, refund=5_000)
    await p.buy(named["partial"], local(40), amount=5_000, refund=2_000)

    rng = random.Random(15)
    for n in range(24):
        member = uid(f"r{n}")
        for _ in range(rng.randint(0, 7)):
            await p.act(member, rng.choice((*ENGAGEMENT, "share")),
                        local(rng.randint(0, 45), rng.randint(0, 23)))
        for _ in range(rng.randint(0 if n % 3 else 1, 4)):
            amount = rng.choice((1_000, 20_000))
            refund = rng.choice((None, None, amount, amount // 2))
            await p.buy(member, local(rng.randint(0, 45), rng.randint(0, 23)), amount, refund)
        if member not in p.members:
            await p.act(member, "share", local(rng.randint(0, 45)))
    return named


def expected_moves(before: dict[str, str], after: dict[str, str]) -> Counter[tuple[Any, str]]:
    return Counter((before.get(m), s) for m, s in after.items() if before.get(m) != s)


async def test_stages_history_events_and_funnel_follow_the_seeded_events(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    put = await client.put("/tiers/v1/lifecycle", headers=admin, json=MODEL)
    assert put.status_code == 200, put.text
    assert put.json()["is_default"] is False
    population = Population(client, tenant)
    named = await seed(population)
    await deliver(resources, settings, tenant.name)
    members = population.members

    stages_at: list[dict[str, str]] = []
    times = [local(day, 20) for day in EVALUATION_DAYS]
    for day, at in zip(EVALUATION_DAYS, times, strict=True):
        response = await client.post("/tiers/v1/lifecycle/evaluations", headers=admin,
                                     json={"at": at.isoformat()})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = {m: expected_stage(s, MODEL, START + timedelta(days=day))
                    for m, s in members.items()}
        previous = stages_at[-1] if stages_at else {}
        stages_at.append(expected)
        assert body["day"] == (START + timedelta(days=day)).isoformat()
        assert body["members"] == len(members)
        assert body["stages"] == {s: sum(1 for v in expected.values() if v == s)
                                  for s in STAGES}, day
        moves = expected_moves(previous, expected)
        assert body["changed"] == sum(moves.values())
        assert Counter({(m["from_stage"], m["to_stage"]): m["members"]
                        for m in body["moves"]}) == moves, day

    # The hand-made members' paths: every stage, up and down.
    def path(name: str) -> list[str]:
        return [stages[named[name]] for stages in stages_at]

    assert path("aware") == ["aware"] * 5
    assert path("interest") == ["interested", "interested", "aware", "aware", "aware"]
    assert path("climb") == ["interested", "purchased", "loyal", "aware", "aware"]
    assert path("count") == ["purchased", "loyal", "purchased", "aware", "aware"]
    assert path("lookback") == ["aware", "aware", "aware", "loyal", "aware"]
    assert path("refunded") == ["aware", "interested", "interested", "aware", "aware"]
    assert path("partial") == ["aware", "aware", "aware", "aware", "purchased"]
    reached = {stage for stages in stages_at for stage in stages.values()}
    assert reached == set(STAGES)

    # History per member: the changes of the expected stages, newest first.
    for member in members:
        changes = []
        last: str | None = None
        for at, stages in zip(times, stages_at, strict=True):
            if stages[member] != last:
                changes.append({"from_stage": last, "to_stage": stages[member], "at": at})
                last = stages[member]
        shown = await client.get(f"/tiers/v1/members/{member}/lifecycle/history",
                                 headers=operator, params={"limit": 2})
        assert shown.status_code == 200, shown.text
        items = shown.json()["items"]
        cursor = shown.json()["next_cursor"]
        while cursor:
            more = await client.get(f"/tiers/v1/members/{member}/lifecycle/history",
                                    headers=operator, params={"limit": 2, "cursor": cursor})
            items += more.json()["items"]
            cursor = more.json()["next_cursor"]
        assert [(i["from_stage"], i["to_stage"], datetime.fromisoformat(i["at"]))
                for i in items] == [(c["from_stage"], c["to_stage"], c["at"])
                                    for c in reversed(changes)], member
        lifecycle = await client.get(f"/tiers/v1/members/{member}/lifecycle", headers=operator)
        assert lifecycle.status_code == 200, lifecycle.text
        assert lifecycle.json()["stage"] == stages_at[-1][member]
        assert datetime.fromisoformat(lifecycle.json()["since"]) == changes[-1]["at"]

    # Every change went out as a LifecycleChanged event a consumer decodes, equal to history.
    rows = await resources.pool.fetch(
        f"SELECT {OUTBOX_COLUMNS} FROM fuli.outbox o WHERE o.tenant_id = $1"
        " AND o.event_type = 'LifecycleChanged'", tenant.name)
    events = []
    for row in rows:
        envelope = decode_envelope(envelope_json(row))
        event = msgspec.json.decode(envelope.data, type=EVENT_TYPES[envelope.type])
        assert isinstance(event, LifecycleChanged)
        events.append((event.member_id, event.from_stage, event.to_stage, event.at))
    history = await resources.pool.fetch(
        "SELECT member_id, from_stage, to_stage, at FROM tiers.stage_history"
        " WHERE tenant_id = $1", tenant.name)
    assert Counter(events) == Counter(tuple(h) for h in history)
    assert len(events) == sum(sum(expected_moves(before, after).values()) for before, after
                              in zip([{}, *stages_at], stages_at, strict=False))
    # Each event of each evaluation has its own id, a random (version 4) UUID.
    ids = [row["event_id"] for row in rows]
    assert len(set(ids)) == len(ids) and all(
        i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)

    # The funnel between two moments equals the stages at the evaluations before them.
    def stages_by(moment: datetime) -> dict[str, str]:
        known = [stages for at, stages in zip(times, stages_at, strict=True) if at <= moment]
        return known[-1] if known else {}

    for start, end in ((local(0), local(15)), (times[0], times[2]), (local(12), local(44)),
                       (times[1], times[1]), (times[2], local(50))):
        response = await client.get("/tiers/v1/lifecycle/funnel", headers=operator,
                                    params={"from": start.isoformat(), "to": end.isoformat()})
        assert response.status_code == 200, response.text
        body = response.json()
        before, after = stages_by(start), stages_by(end)
        pairs = Counter((before.get(m, "none"), s) for m, s in after.items())
        assert body["at_from"] == {s: sum(n for (b, _), n in pairs.items() if b == s)
                                   for s in ("none", *STAGES)}
        assert body["at_to"] == {"none": 0, **{s: sum(n for (_, a), n in pairs.items()
                                                      if a == s) for s in STAGES}}
        assert {(c["from_stage"], c["to_stage"]): c["members"]
                for c in body["matrix"]} == {(b, a): pairs.get((b, a), 0)
                                             for b in ("none", *STAGES) for a in STAGES}
        assert datetime.fromisoformat(body["from"]) == start

    # An evaluation before the last one is refused and stores nothing.
    counted = await stored(resources, tenant)
    early = await client.post("/tiers/v1/lifecycle/evaluations", headers=admin,
                              json={"at": times[2].isoformat()})
    assert early.status_code == 409 and error_code(early) == "evaluation_out_of_order"
    assert await stored(resources, tenant) == counted


async def test_a_member_shows_the_figures_and_what_moves_it_up(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/lifecycle", headers=admin,
                             json=MODEL)).status_code == 200
    population = Population(client, tenant)
    fan, buyer, shy, loyal = uid("fan"), uid("buyer"), uid("shy"), uid("loyal")
    await population.act(fan, "speak", local(48))
    await population.act(fan, "bind", local(49))
    await population.act(fan, "share", local(49))
    await population.act(shy, "speak", local(45))
    for day in (47, 48, 49):
        await population.act(buyer, "survey", local(day))
    await population.buy(buyer, local(48))
    for day in (41, 45, 49):
        await population.buy(loyal, local(day))
    await deliver(resources, settings, tenant.name)
    never = await client.get(f"/tiers/v1/members/{fan}/lifecycle", headers=operator)
    assert never.status_code == 200, never.text
    assert never.json()["stage"] is None and never.json()["evaluation_day"] is None

    day = START + timedelta(days=50)
    evaluated = await client.post("/tiers/v1/lifecycle/evaluations", headers=admin,
                                  json={"at": local(50, 9).isoformat()})
    assert evaluated.status_code == 200, evaluated.text

    async def shown(member: str) -> dict[str, Any]:
        response = await client.get(f"/tiers/v1/members/{member}/lifecycle", headers=operator)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["evaluation_day"] == day.isoformat()
        assert datetime.fromisoformat(body["since"]) == local(50, 9)
        return body

    first_day = (day - timedelta(days=9)).isoformat()
    body = await shown(fan)
    assert body["stage"] == "aware" and body["next_stage"] == "interested"
    assert body["figures"] == {"first_day": first_day, "last_day": day.isoformat(),
                               "engagement_actions": 2, "purchases": 0,
                               "last_purchase_day": None, "repurchase_gap_days": None}
    assert [(n["kind"], n["count"], n["within_days"]) for n in body["needs"]] == [
        ("engagement_actions", 1, 10)]
    assert body["needs"][0]["description"] == "1 engagement action in 10 days"
    body = await shown(shy)
    assert body["needs"][0]["count"] == 2
    body = await shown(buyer)
    assert body["stage"] == "purchased" and body["next_stage"] == "loyal"
    assert body["figures"]["purchases"] == 1 and body["figures"]["engagement_actions"] == 3
    assert [(n["kind"], n["count"], n["within_days"], n["by_day"]) for n in body["needs"]] == [
        ("purchases", 2, 10, None),
        ("repurchase", 1, 3, (START + timedelta(days=51)).isoformat())]
    body = await shown(loyal)
    assert body["stage"] == "loyal" and body["next_stage"] is None and body["needs"] == []
    assert body["figures"]["purchases"] == 3 and body["figures"]["repurchase_gap_days"] == 4

    unknown = await client.get("/tiers/v1/members/nobody/lifecycle", headers=operator)
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_member"
    unknown = await client.get("/tiers/v1/members/nobody/lifecycle/history", headers=operator)
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_member"


async def test_the_model_defaults_and_the_daily_job(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
        settings: Settings) -> None:
    from services.tiers.actors import evaluate_lifecycles

    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    shown = await client.get("/tiers/v1/lifecycle", headers=operator)
    assert shown.status_code == 200
    assert shown.json() == {**DEFAULTS, "is_default": True, "updated_at": None}
    population = Population(client, tenant)
    member = uid("m")
    for days_ago in (3, 2, 1):
        await population.act(member, "referral", datetime.now(UTC) - timedelta(days=days_ago))
    await deliver(resources, settings, tenant.name)

    # Without a model the job leaves the tenant alone; with one it evaluates once a day.
    async with worker_context(settings):
        await evaluate_lifecycles()
    assert (await stored(resources, tenant))[0] == 0
    partial = {"window_days": 2}  # fields left out take their defaults
    put = await client.put("/tiers/v1/lifecycle", headers=admin, json=partial)
    assert put.status_code == 200, put.text
    assert put.json()["window_days"] == 2 and put.json()["interested_min_actions"] == 3
    async with worker_context(settings):
        await evaluate_lifecycles()
        await evaluate_lifecycles()
    assert (await stored(resources, tenant))[0] == 1
    stage = await client.get(f"/tiers/v1/members/{member}/lifecycle", headers=operator)
    assert stage.json()["stage"] == "aware"  # 2 referrals in the 2-day window
    # A changed model makes the tenant due again.
    assert (await client.put("/tiers/v1/lifecycle", headers=admin,
                             json={"window_days": 7})).status_code == 200
    async with worker_context(settings):
        await evaluate_lifecycles()
    assert (await stored(resources, tenant))[0] == 2
    stage = await client.get(f"/tiers/v1/members/{member}/lifecycle", headers=operator)
    assert stage.json()["stage"] == "interested"
    history = await client.get(f"/tiers/v1/members/{member}/lifecycle/history",
                               headers=operator)
    assert [(i["from_stage"], i["to_stage"]) for i in history.json()["items"]] == [
        ("aware", "interested"), (None, "aware")]


async def stored(resources: Resources, tenant: Tenant) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM tiers.lifecycle_evaluations WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.stage_history WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.member_stages WHERE tenant_id = $1),"
        " (SELECT count(*) FROM tiers.lifecycle_models WHERE tenant_id = $1),"
        " (SELECT count(*) FROM fuli.outbox WHERE tenant_id = $1)", tenant.name)
    assert row is not None
    return tuple(row)


async def test_bad_input_is_refused_and_changes_nothing(
        client: httpx.AsyncClient, tenant: Tenant, resources: Resources) -> None:
    admin, operator = tenant.headers(tenant.admin), tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/lifecycle", headers=admin,
                             json=MODEL)).status_code == 200
    await Population(client, tenant).act(uid("m"), "speak", local(50))
    before = await stored(resources, tenant)
    naive = datetime.now().replace(microsecond=0).isoformat()
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    now = datetime.now(UTC).isoformat()
    cases: list[tuple[str, str, dict[str, str], Any, dict[str, Any] | None]] = [
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "window_days": 0}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "window_days": 3651}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "engagement_actions": []}, None),
        ("PUT", "/tiers/v1/lifecycle", admin,
         {**MODEL, "engagement_actions": ["speak", "speak"]}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "engagement_actions": ["Speak!"]}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "interested_min_actions": 0}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "loyal_min_purchases": 1}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "repurchase_within_days": 0}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "window_days": "30"}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, {**MODEL, "stages": ["aware"]}, None),
        ("PUT", "/tiers/v1/lifecycle", admin, [], None),
        ("PUT", "/tiers/v1/lifecycle", operator, MODEL, None),
        ("POST", "/tiers/v1/lifecycle/evaluations", admin, {"at": naive}, None),
        ("POST", "/tiers/v1/lifecycle/evaluations", admin, {"at": future}, None),
        ("POST", "/tiers/v1/lifecycle/evaluations", admin, {"at": "yesterday"}, None),
        ("POST", "/tiers/v1/lifecycle/evaluations", admin, {"when": now}, None),
        ("POST", "/tiers/v1/lifecycle/evaluations", operator, {}, None),
        ("GET", "/tiers/v1/lifecycle/funnel", operator, None,
         {"from": now, "to": local(0).isoformat()}),
        ("GET", "/tiers/v1/lifecycle/funnel", operator, None, {"from": naive, "to": now}),
        ("GET", "/tiers/v1/lifecycle/funnel", operator, None, {"to": now}),
        ("GET", "/tiers/v1/lifecycle/funnel", operator, None,
         {"from": "2026-02-29T00:00:00Z", "to": now}),
        ("GET", "/tiers/v1/members/nobody/lifecycle/history", operator, None,
         {"cursor": "!!"}),
        ("GET", "/tiers/v1/members/bad%20id/lifecycle", operator, None, None),
        ("GET", "/tiers/v1/members/nobody/lifecycle", operator, None, None),
        ("GET", "/tiers/v1/lifecycle", tenant.headers(tenant.ingest), None, None),
    ]
    for method, path, headers, body, params in cases:
        response = await client.request(method, path, headers=headers, json=body, params=params)
        assert 400 <= response.status_code < 500, (method, path, body, params, response.text)
        error_code(response)
    assert await stored(resources, tenant) == before
    model = await client.get("/tiers/v1/lifecycle", headers=operator)
    assert {k: v for k, v in model.json().items() if k in MODEL} == MODEL
