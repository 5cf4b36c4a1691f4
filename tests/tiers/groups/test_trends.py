"""Groups as an SCRM runs them: trends of 30 groups in a city -> district -> grid tree over 5
weeks against series computed here from the seeded stays and events, dissolution, rollups of a
subtree, the filtered list, CSV exports and bad input."""

from __future__ import annotations

import csv
import io
import itertools
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, Tenant, error_code, uid
from tests.support.bus import deliver
from tests.tiers.groups.support import GroupsApi

ZONE = ZoneInfo("Asia/Shanghai")  # the test tenant's zone
W0 = datetime(2026, 10, 5, tzinfo=ZONE)  # a Monday: weeks W0..W4 are the range asked about
WEEK = timedelta(days=7)
START = W0 - 2 * WEEK  # the seeded history starts here ...
END = W0 + 5 * WEEK  # ... and ends here
ADDITIVE = ("groups", "new_groups", "dissolved", "members", "joins", "leaves", "net_adds")
FIGURES = (*ADDITIVE, "speakers", "purchasers", "gmv_cents")


@dataclass
class Stay:
    group: str
    member: str
    joined: datetime
    left: datetime | None = None


@dataclass
class Seeded:
    """Everything the test sent, from which it computes the expected series."""

    created: dict[str, datetime] = field(default_factory=dict)
    dissolved: dict[str, datetime] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    tags: dict[str, list[str]] = field(default_factory=dict)
    stays: list[Stay] = field(default_factory=list)
    speaks: list[tuple[str, str, datetime]] = field(default_factory=list)  # member, group, at
    purchases: dict[str, tuple[str, datetime, int]] = field(default_factory=dict)  # net

    def subtree(self, root: str) -> set[str]:
        found = {root}
        while True:
            more = {g for g, p in self.parent.items() if p in found} - found
            if not more:
                return found
            found |= more


# --- the expected series, computed from what was seeded ---------------------------------------


def bounds(first: datetime, count: int, step: timedelta) -> list[tuple[datetime, datetime]]:
    return [(first + i * step, first + (i + 1) * step) for i in range(count)]


def in_group_during(stay: Stay, start: datetime, end: datetime) -> bool:
    return stay.joined < end and (stay.left is None or stay.left >= start)


def member_at(stay: Stay, at: datetime) -> bool:
    return stay.joined <= at and (stay.left is None or at < stay.left)


def figures(seeded: Seeded, scope: set[str], start: datetime, end: datetime) -> dict[str, int]:
    stays = [s for s in seeded.stays if s.group in scope]
    joins = sum(1 for s in stays if start <= s.joined < end)
    leaves = sum(1 for s in stays if s.left is not None and start <= s.left < end)
    speakers = {m for m, g, at in seeded.speaks
                if g in scope and start.date() <= at.astimezone(ZONE).date() < end.date()
                and any(s.group == g and s.member == m and in_group_during(s, start, end)
                        for s in stays)}
    bought = [(m, net) for m, at, net in seeded.purchases.values()
              if start <= at < end and any(s.member == m and member_at(s, at) for s in stays)]
    return {
        "groups": sum(1 for g in scope if seeded.created[g] < end
                      and (g not in seeded.dissolved or seeded.dissolved[g] >= end)),
        "new_groups": sum(1 for g in scope if start <= seeded.created[g] < end),
        "dissolved": sum(1 for g in scope if g in seeded.dissolved
                         and start <= seeded.dissolved[g] < end),
        "members": sum(1 for s in stays if s.joined < end and (s.left is None or s.left >= end)),
        "joins": joins, "leaves": leaves, "net_adds": joins - leaves,
        "speakers": len(speakers),
        "purchasers": len({m for m, net in bought if net > 0}),
        "gmv_cents": sum(net for _, net in bought),
    }


def expected_series(seeded: Seeded, scope: set[str], first: datetime, count: int,
                    step: timedelta = WEEK) -> list[dict[str, Any]]:
    """The figures of ``count`` periods from ``first``, each with its growth against the
    period before (computed too)."""
    rows = [figures(seeded, scope, s, e) for s, e in bounds(first - step, count + 1, step)]
    series = []
    for previous, current in itertools.pairwise(rows):
        growth = {k: None if previous[k] == 0 else round((current[k] - previous[k])
                                                          / abs(previous[k]), 4)
                  for k in FIGURES}
        series.append({**current, "growth": growth})
    return series


def shown(periods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**{k: p[k] for k in FIGURES}, "growth": p["growth"]} for p in periods]


# --- seeding --------------------------------------------------------------------------------


def between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A whole minute in [start, end)."""
    minutes = int((end - start).total_seconds() // 60)
    return start + timedelta(minutes=rng.randrange(max(minutes, 1)))


async def seed_tree(groups: GroupsApi, points: Points, seeded: Seeded, rng: random.Random,
                    prefix: str) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """2 cities, 2 districts each, 6 grids each (30 groups), with stays and events."""
    cities = [f"{prefix}-c{c}" for c in range(2)]
    districts = {city: [f"{city}-d{d}" for d in range(2)] for city in cities}
    grids = {d: [f"{d}-g{i}" for i in range(6)] for ds in districts.values() for d in ds}

    async def create(group_id: str, parent: str | None, created: datetime, owner: str,
                     tags: list[str], kind: str = "member") -> None:
        response = await groups.put(group_id, parent=parent, created_at=created.isoformat(),
                                    owner=owner, tags=tags, kind=kind)
        assert response.status_code == 200, response.text
        body = response.json()
        assert datetime.fromisoformat(body["created_at"]) == created
        assert (body["parent"], body["owner"], body["status"]) == (parent, owner, "active")
        seeded.created[group_id] = created
        seeded.parent[group_id] = parent
        seeded.owner[group_id] = owner
        seeded.tags[group_id] = sorted(set(tags))

    for c, city in enumerate(cities):
        await create(city, None, START + timedelta(hours=30), "boss", ["city"], kind="super")
        for d, district in enumerate(districts[city]):
            await create(district, city, START + timedelta(days=2, hours=d),
                         f"mgr-{c}{d}", ["district", f"region:{'north' if c else 'south'}"])
            for i, grid in enumerate(grids[district]):
                # Grids open across the previous week and the five weeks of the range.
                created = between(rng, W0 - WEEK, END - timedelta(days=3))
                await create(grid, district, created, f"staff-{i % 3}",
                             ["grid", "vip"] if i % 2 == 0 else ["grid"])
    # Two grids are dissolved inside the range, after every join and leave of theirs.
    dissolving = {grid: between(rng, max(seeded.created[grid] + timedelta(days=2),
                                         W0 + timedelta(days=1)), END - timedelta(hours=1))
                  for grid in (grids[districts[cities[0]][0]][3],
                               grids[districts[cities[1]][1]][4])}

    async def stay(group: str, member: str, joined: datetime, left: datetime | None) -> None:
        assert (await groups.join(group, member, joined)).status_code == 200
        record = Stay(group, member, joined)
        seeded.stays.append(record)
        if left is not None:
            assert (await groups.leave(group, member, left)).status_code == 200
            record.left = left

    all_grids = {g for gs in grids.values() for g in gs}
    for group in seeded.created:
        until = dissolving.get(group, END)
        count = 1 if group in cities else 4 if group in all_grids else 2
        for _ in range(count):
            member = uid("m")
            joined = between(rng, max(seeded.created[group], START), until - timedelta(hours=2))
            left = between(rng, joined, until) if rng.random() < 0.4 else None
            await stay(group, member, joined, left)
            # Speaks naming the group: around the stay, some before or after it.
            for _ in range(rng.randrange(1, 4)):
                at = between(rng, max(START, joined - timedelta(days=3)),
                             min(END, (left or END) + timedelta(days=3)))
                seeded.speaks.append((member, group, at))
            for _ in range(rng.randrange(0, 3)):
                at = between(rng, START, END)
                amount = rng.randrange(1_000, 50_000)
                event_id = uid("buy")
                seeded.purchases[event_id] = (member, at, amount)
    # A member in two grids at once: their purchases and speaks count once in a rollup.
    first_grid, second_grid = grids[districts[cities[0]][0]][0], grids[districts[cities[0]][0]][1]
    shared = uid("shared")
    both_from = max(seeded.created[first_grid], seeded.created[second_grid])
    await stay(first_grid, shared, both_from + timedelta(hours=1), None)
    await stay(second_grid, shared, both_from + timedelta(hours=2), None)
    seeded.speaks += [(shared, first_grid, both_from + timedelta(hours=3)),
                      (shared, second_grid, both_from + timedelta(hours=4))]
    seeded.purchases[uid("buy")] = (shared, both_from + timedelta(hours=5), 12_345)

    for grid, at in dissolving.items():
        response = await groups.dissolve(grid, at)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dissolved" and response.json()["members"] == 0
        seeded.dissolved[grid] = at
        for record in seeded.stays:
            if record.group == grid and record.left is None:
                record.left = at

    for member, group, at in seeded.speaks:
        response = await points.event(member, "speak", occurred_at=at.isoformat(),
                                      attributes={"group_id": group})
        assert response.status_code == 201, response.text
    refunded = 0
    for event_id, (member, at, amount) in list(seeded.purchases.items()):
        response = await points.event(member, "purchase", event_id=event_id,
                                      occurred_at=at.isoformat(), amount_cents=amount)
        assert response.status_code == 201, response.text
        if refunded < 5 and amount > 10_000:
            refunded += 1
            reversal = await points.reverse(event_id, amount_cents=amount // 2)
            assert reversal.status_code == 201, reversal.text
            seeded.purchases[event_id] = (member, at, amount - amount // 2)
    return cities, districts, grids


async def test_trends_of_a_three_level_tree_equal_hand_computed_series(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    await groups.setup()
    seeded = Seeded()
    rng = random.Random(15)
    cities, districts, grids = await seed_tree(groups, points, seeded, rng, "t")
    assert len(seeded.created) == 30
    await deliver(resources, settings, tenant.name, twice=True)
    weeks = {"from": "2026-10-05", "to": "2026-11-08", "by": "week"}

    # The whole tenant, each city, each district and every grid: the API's series equal the
    # ones computed here from the stays and events.
    everything = await groups.periods(**weeks)
    assert [p["first_day"] for p in everything] == [
        (W0 + i * WEEK).date().isoformat() for i in range(5)]
    assert datetime.fromisoformat(everything[0]["starts_at"]) == W0
    assert datetime.fromisoformat(everything[-1]["ends_at"]) == END
    assert shown(everything) == expected_series(seeded, set(seeded.created), W0, 5)
    series: dict[str, list[dict[str, Any]]] = {}
    for group in seeded.created:
        periods = await groups.periods(f"/tiers/v1/groups/{group}/trends", **weeks)
        assert shown(periods) == expected_series(seeded, seeded.subtree(group), W0, 5), group
        series[group] = periods
    for city in cities:
        assert await groups.periods(**weeks, parent=city) == series[city]
    # The seeded data exercise every figure.
    assert all(sum(p[k] for p in everything) > 0 for k in FIGURES if k != "net_adds")

    # A grid's weeks say what its weekly reports say.
    for grid in [gs[0] for gs in grids.values()]:
        for week in range(5):
            response = await client.get(f"/tiers/v1/groups/{grid}/report", headers=groups.operator,
                                        params={"at": (W0 + week * WEEK).isoformat()})
            report = response.json()
            assert {k: series[grid][week][k] for k in (
                "members", "joins", "leaves", "purchasers", "gmv_cents")} == {
                k: report[k] for k in ("members", "joins", "leaves", "purchasers", "gmv_cents")}
            assert series[grid][week]["net_adds"] == report["net_growth"]

    # Rollups: a parent's additive figures are its own plus its children's subtrees.
    for parent, children in [*districts.items(), *grids.items()]:
        alone = await groups.periods(**weeks, parent=parent, owner=seeded.owner[parent])
        assert shown(alone) == expected_series(seeded, {parent}, W0, 5)
        for week in range(5):
            for k in ADDITIVE:
                assert series[parent][week][k] == alone[week][k] + sum(
                    series[child][week][k] for child in children), (parent, week, k)
    for week in range(5):
        for k in ADDITIVE:
            assert everything[week][k] == sum(series[c][week][k] for c in cities)

    # A dissolved grid stops counting from its dissolution: in the week it is dissolved its
    # open stays end (leaves), from the next it is no group and has no members.
    for grid, at in seeded.dissolved.items():
        week = (at.astimezone(ZONE).date() - W0.date()).days // 7
        own = series[grid]
        assert own[week]["dissolved"] == 1
        assert all(p["groups"] == 0 and p["members"] == 0 for p in own[week:])
        assert all(p["joins"] == 0 and p["speakers"] == 0 and p["gmv_cents"] == 0
                   for p in own[week + 1:])
        refused = await groups.join(grid, uid("late"), at + timedelta(minutes=1))
        assert refused.status_code == 409 and error_code(refused) == "group_dissolved"
        shown_group = await groups.get(grid)
        assert shown_group.status_code == 200
        assert shown_group.json()["status"] == "dissolved"
        assert datetime.fromisoformat(shown_group.json()["dissolved_at"]) == at
        again = await groups.dissolve(grid)
        assert again.status_code == 200 and again.json() == shown_group.json()
    assert await groups.periods(**weeks) == everything  # the refused joins stored nothing

    # Filters: owner and label select groups (not their subtrees); they combine with parent.
    for params, scope in [
        ({"owner": "staff-1"}, {g for g, o in seeded.owner.items() if o == "staff-1"}),
        ({"tag": "vip"}, {g for g, t in seeded.tags.items() if "vip" in t}),
        ({"tag": "region:north"}, {g for g, t in seeded.tags.items() if "region:north" in t}),
        ({"tag": "vip", "parent": cities[1]},
         {g for g in seeded.subtree(cities[1]) if "vip" in seeded.tags[g]}),
        ({"owner": "nobody"}, set()),
    ]:
        response = await groups.trends(**weeks, **params)
        assert response.json()["group_count"] == len(scope), params
        assert shown(response.json()["periods"]) == expected_series(seeded, scope, W0, 5), \
            params

    # Days: local days, each against the day before.
    district = districts[cities[0]][0]
    days = await groups.periods(f"/tiers/v1/groups/{district}/trends", by="day",
                                **{"from": "2026-10-10", "to": "2026-10-24"})
    first_day = datetime(2026, 10, 10, tzinfo=ZONE)
    assert [p["first_day"] for p in days] == [
        (first_day + timedelta(days=i)).date().isoformat() for i in range(15)]
    assert shown(days) == expected_series(seeded, seeded.subtree(district), first_day, 15,
                                          timedelta(days=1))

    # Weeks run Monday to Sunday whatever days from and to fall on.
    response = await groups.trends(**{"from": "2026-10-07", "to": "2026-10-13", "by": "week"})
    assert [p["first_day"] for p in response.json()["periods"]] == ["2026-10-05",
                                                                     "2026-10-12"]
    assert response.json()["periods"] == everything[:2]

    # CSV: a header, then the same periods.
    exported = await client.get("/tiers/v1/groups/trends.csv", headers=groups.operator,
                                params=weeks)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["first_day"] for r in rows] == [p["first_day"] for p in everything]
    for row, period in zip(rows, everything, strict=True):
        assert {k: int(row[k]) for k in FIGURES} == {k: period[k] for k in FIGURES}
        assert {k: (float(row[f"{k}_growth"]) if row[f"{k}_growth"] else None)
                for k in FIGURES} == period["growth"]
    one = await client.get(f"/tiers/v1/groups/{district}/trends.csv", headers=groups.operator,
                           params=weeks)
    assert [int(r["members"]) for r in csv.DictReader(io.StringIO(one.text))] == [
        p["members"] for p in series[district]]


async def test_list_filters_pages_and_exports(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    await groups.setup({"window_days": 7, "high_value_line": 100,
                        "actions": {"speak": {"category": "content", "weight": 1}}})
    now = datetime.now(ZONE)
    city = uid("city")
    assert (await groups.put(city, owner="boss", tags=["city"], kind="super",
                             tier="vip")).status_code == 200
    grid_ids = [uid("grid") for _ in range(6)]
    members: dict[str, list[str]] = {}
    spoke: dict[str, set[str]] = {}
    for i, group in enumerate(grid_ids):
        response = await groups.put(group, parent=city, owner=f"staff-{i % 2}",
                                    tags=["grid", "vip"] if i < 2 else ["grid"],
                                    kind="fan" if i == 5 else "member",
                                    tier="fan" if i == 5 else "member",
                                    created_at=(now - timedelta(days=30)).isoformat())
        assert response.status_code == 200, response.text
        members[group] = [uid("m") for _ in range(i + 1)]
        spoke[group] = set()
        for j, member in enumerate(members[group]):
            assert (await groups.join(group, member, now - timedelta(days=20))).status_code == 200
            # Speaks: i of them in the last 7 local days (today included), one 8 days back.
            if j < i:
                spoke[group].add(member)
                at = now - timedelta(days=j % 6, minutes=1)
            else:
                at = now - timedelta(days=8)
            response = await points.event(member, "speak", occurred_at=at.isoformat(),
                                          attributes={"group_id": group})
            assert response.status_code == 201, response.text
    gone = members[grid_ids[1]][0]
    assert (await groups.leave(grid_ids[1], gone, now - timedelta(minutes=5))).status_code == 200
    spoke[grid_ids[1]].discard(gone)
    members[grid_ids[1]].remove(gone)
    assert (await groups.dissolve(grid_ids[4])).status_code == 200
    await deliver(resources, settings, tenant.name)

    everything = await groups.listing(limit=3)  # pages of 3
    assert [g["group_id"] for g in everything] == sorted([city, *grid_ids])
    by_id = {g["group_id"]: g for g in everything}
    for i, group in enumerate(grid_ids):
        item = by_id[group]
        current = 0 if i == 4 else len(members[group])
        active = 0 if i == 4 else len(spoke[group])
        assert (item["members"], item["active_members_7d"]) == (current, active), group
        assert item["active_rate_7d"] == (round(active / current, 4) if current else 0.0)
        assert item["parent"] == city and item["owner"] == f"staff-{i % 2}"
    # Stage: the bottom 20% of the 5 groups with members by value mean (floor(1.0) = 1 group,
    # ties at its value in) are silver; a dissolved group has no stage.
    means = {g: len(spoke[g]) / len(members[g]) for g in grid_ids if g != grid_ids[4]}
    lowest = min(means.values())
    for group, mean in means.items():
        assert by_id[group]["stage"] == ("silver" if mean == lowest else "golden"), group
    assert by_id[grid_ids[4]]["stage"] is None and by_id[grid_ids[4]]["status"] == "dissolved"
    assert by_id[city]["stage"] == "silver"  # no members: silver, as in the reports

    async def ids(**params: Any) -> list[str]:
        return [g["group_id"] for g in await groups.listing(**params)]

    assert await ids(parent=city) == sorted(grid_ids)
    assert await ids(owner="staff-0") == sorted(grid_ids[0::2])
    assert await ids(tag="vip") == sorted(grid_ids[:2])
    assert await ids(tag="city") == [city]
    assert await ids(status="dissolved") == [grid_ids[4]]
    assert await ids(status="active", kind="member") == sorted(grid_ids[:4])
    assert await ids(tier="fan") == [grid_ids[5]]
    assert await ids(tier="vip", kind="super", owner="boss") == [city]
    assert await ids(tag="nothing") == []
    missing = await client.get("/tiers/v1/groups", headers=groups.operator,
                               params={"parent": "no-such-group"})
    assert missing.status_code == 404 and error_code(missing) == "unknown_group"

    exported = await client.get("/tiers/v1/groups/export.csv", headers=groups.operator,
                                params={"parent": city})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["group_id"] for r in rows] == sorted(grid_ids)
    for row in rows:
        item = by_id[row["group_id"]]
        assert int(row["members"]) == item["members"]
        assert row["tags"] == "|".join(item["tags"]) and row["stage"] == (item["stage"] or "")
        assert float(row["active_rate_7d"]) == item["active_rate_7d"]


async def test_bad_input_is_refused_and_stores_nothing(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources) -> None:
    await groups.setup()
    a, b, c = uid("a"), uid("b"), uid("c")
    assert (await groups.put(a)).status_code == 200
    assert (await groups.put(b, parent=a)).status_code == 200
    created = datetime.now(ZONE) - timedelta(days=10)
    assert (await groups.put(c, parent=b, tags=["x"],
                             created_at=created.isoformat())).status_code == 200

    async def snapshot() -> list[tuple[Any, ...]]:
        rows = await resources.pool.fetch(
            "SELECT group_id, name, parent_id, tags, owner, status, created_at, updated_at"
            " FROM tiers.groups WHERE tenant_id = $1 ORDER BY group_id", tenant.name)
        stays = await resources.pool.fetch(
            "SELECT group_id, member_id, joined_at, left_at FROM tiers.group_members"
            " WHERE tenant_id = $1 ORDER BY 1, 2, 3", tenant.name)
        return [tuple(r) for r in rows] + [tuple(r) for r in stays]

    before = await snapshot()
    for group_id, fields, status, code in [
        (a, {"parent": c}, 422, "parent_cycle"),       # a -> c -> b -> a
        (a, {"parent": b}, 422, "parent_cycle"),
        (a, {"parent": a}, 422, "parent_cycle"),
        (uid("new"), {"parent": "no-such-group"}, 422, "unknown_parent"),
        (a, {"parent": "no-such-group"}, 422, "unknown_parent"),
        (uid("new"), {"tags": ["Upper"]}, 422, "validation_failed"),
        (uid("new"), {"tags": ["with space"]}, 422, "validation_failed"),
        (uid("new"), {"tags": ["x" * 65]}, 422, "validation_failed"),
        (c, {"tags": ["ok", "bad!"]}, 422, "validation_failed"),
        (uid("new"), {"owner": "bad owner"}, 422, "validation_failed"),
        (a, {"created_at": "2020-01-01T00:00:00+08:00"}, 409, "created_at_fixed"),
        (uid("new"), {"created_at": "2999-01-01T00:00:00+08:00"}, 422, "validation_failed"),
        (uid("new"), {"status": "dissolved"}, 422, "validation_failed"),
        ("trends", {}, 405, "method_not_allowed"),   # paths of the API, not group ids
        ("export.csv", {}, 405, "method_not_allowed"),
    ]:
        response = await groups.put(group_id, **fields)
        assert response.status_code == status, (fields, response.text)
        assert error_code(response) == code, fields
    assert await snapshot() == before

    # Old bodies still work and keep a group's place in the tree only if they name it.
    old = await groups.put(uid("old"))
    assert old.status_code == 200
    assert (old.json()["parent"], old.json()["tags"], old.json()["owner"]) == (None, [], None)
    assert old.json()["status"] == "active" and old.json()["dissolved_at"] is None

    member = uid("m")
    joined = datetime.now(ZONE) - timedelta(days=2)
    assert (await groups.join(c, member, joined)).status_code == 200
    before = await snapshot()
    early = await groups.dissolve(c, joined - timedelta(hours=1))
    assert early.status_code == 409 and error_code(early) == "activity_after_dissolution"
    future = await groups.dissolve(c, datetime.now(ZONE) + timedelta(days=1))
    assert future.status_code == 422
    unknown = await groups.dissolve("no-such-group")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_group"
    assert await snapshot() == before

    for params, status in [
        ({"from": "2026-10-10", "to": "2026-10-09"}, 422),
        ({"from": "2026-10-10", "to": "2026-10-12", "by": "month"}, 422),
        ({"from": "2026-10-10", "to": "2026-10-12", "by": "hour"}, 422),
        ({"from": "2025-01-01", "to": "2026-01-02", "by": "day"}, 422),  # 366 days is the most
        ({"from": "2010-01-01", "to": "2026-01-01", "by": "week"}, 422),
        ({"from": "2026-02-29", "to": "2026-03-01"}, 422),
        ({"from": "10/10/2026", "to": "2026-10-12"}, 422),
        ({"to": "2026-10-12"}, 422),
        ({"from": "2026-10-10", "to": "2026-10-12", "tag": "Bad"}, 422),
        ({"from": "2026-10-10", "to": "2026-10-12", "parent": "no-such-group"}, 404),
    ]:
        response = await groups.trends(**params)
        assert response.status_code == status, (params, response.text)
        error_code(response)
    most = await groups.trends(**{"from": "2025-01-01", "to": "2026-01-01", "by": "day"})
    assert most.status_code == 200 and len(most.json()["periods"]) == 366
    response = await groups.trends(f"/tiers/v1/groups/{uid('x')}/trends",
                                   **{"from": "2026-10-10", "to": "2026-10-12"})
    assert response.status_code == 404 and error_code(response) == "unknown_group"
    response = await groups.trends("/tiers/v1/groups/trends.csv",
                                   **{"from": "2026-10-12", "to": "2026-10-10"})
    assert response.status_code == 422 and error_code(response) == "validation_failed"
    assert await snapshot() == before


async def test_growth_is_null_after_an_empty_period(client: httpx.AsyncClient, tenant: Tenant,
                                                    groups: GroupsApi) -> None:
    await groups.setup()
    group = uid("g")
    created = datetime(2026, 10, 6, 10, tzinfo=ZONE)
    assert (await groups.put(group, created_at=created.isoformat())).status_code == 200
    for i, day in enumerate((6, 7, 7, 9)):
        at = datetime(2026, 10, day, 12, tzinfo=ZONE)
        assert (await groups.join(group, f"{group}-m{i}", at)).status_code == 200
    periods = await groups.periods(f"/tiers/v1/groups/{group}/trends", by="day",
                                   **{"from": "2026-10-05", "to": "2026-10-09"})
    assert [(p["joins"], p["members"], p["new_groups"]) for p in periods] == [
        (0, 0, 0), (1, 1, 1), (2, 3, 0), (0, 3, 0), (1, 4, 0)]
    assert [p["growth"]["joins"] for p in periods] == [None, None, 1.0, -1.0, None]
    assert [p["growth"]["members"] for p in periods] == [None, None, 2.0, 0.0, 0.3333]
    assert [p["growth"]["net_adds"] for p in periods] == [None, None, 1.0, -1.0, None]
    assert date.fromisoformat(periods[0]["first_day"]) == date(2026, 10, 5)


async def test_parents_set_at_once_never_close_a_cycle(groups: GroupsApi,
                                                       resources: Resources,
                                                       tenant: Tenant) -> None:
    import asyncio

    await groups.setup()
    pairs = [(uid("a"), uid("b")) for _ in range(10)]
    for a, b in pairs:
        assert (await groups.put(a)).status_code == 200
        assert (await groups.put(b)).status_code == 200
    answers = await asyncio.gather(*(
        request for a, b in pairs
        for request in (groups.put(a, parent=b), groups.put(b, parent=a))))
    for first, second in zip(answers[::2], answers[1::2], strict=True):
        assert sorted([first.status_code, second.status_code]) == [200, 422]
        refused = first if first.status_code == 422 else second
        assert error_code(refused) == "parent_cycle"
    parents = dict(await resources.pool.fetch(
        "SELECT group_id, parent_id FROM tiers.groups WHERE tenant_id = $1", tenant.name))
    for a, b in pairs:
        assert (parents[a], parents[b]) in ((b, None), (None, a))
