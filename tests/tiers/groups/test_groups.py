"""Community groups: membership, period reports (checked against hand-computed figures),
stages, the activation watch and suggested moves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, Tenant, error_code, uid
from tests.support.bus import deliver
from tests.tiers.groups.support import GroupsApi

# The test tenant's zone is Asia/Shanghai: a local week runs Monday 00:00 +08:00 to the next.
MONDAY = datetime.fromisoformat("2026-10-05T00:00:00+08:00")


def local(day: int, hour: int = 12) -> datetime:
    """A time in the seeded week: ``day`` 0 is its Monday."""
    return MONDAY + timedelta(days=day, hours=hour)


MODEL = {"window_days": 7, "high_value_line": 3, "actions": {
    "speak": {"category": "content", "weight": 1},
    "purchase": {"category": "consumption", "per_100_cents": 0.01}}}


async def test_weekly_report_matches_hand_computed_figures(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    await groups.setup(MODEL)
    g = uid("g")
    await groups.create(g)
    a, b, c, d, e, f, quiet = (uid(x) for x in "abcdefq")
    before = MONDAY - timedelta(days=7)
    for member in (a, b, e, quiet):
        assert (await groups.join(g, member, before)).status_code == 200
    assert (await groups.leave(g, e, before + timedelta(days=2))).status_code == 200
    assert (await groups.leave(g, b, local(2))).status_code == 200   # Wednesday
    assert (await groups.join(g, c, local(1))).status_code == 200    # Tuesday
    assert (await groups.join(g, d, local(3))).status_code == 200    # Thursday
    assert (await groups.leave(g, d, local(5))).status_code == 200   # Saturday
    assert (await groups.join(g, f, MONDAY + timedelta(days=7))).status_code == 200  # next week

    in_group = {"group_id": g}
    seeds = [
        (a, "speak", local(0), None, in_group), (a, "speak", local(4), None, in_group),
        (a, "purchase", local(2), 20_000, None),
        (b, "speak", local(0), None, in_group),
        (c, "purchase", local(0), 5_000, None),      # before c joined: not the group's
        (d, "speak", local(4), None, in_group),
        (e, "speak", local(3), None, in_group),      # e had left: not in the population
        (f, "speak", local(6), None, in_group),      # f joins only next week
        (a, "speak", local(1), None, {"group_id": "elsewhere"}),
    ]
    for member, action, at, amount, attributes in seeds:
        fields: dict[str, Any] = {"occurred_at": at.isoformat()}
        if amount:
            fields["amount_cents"] = amount
        if attributes:
            fields["attributes"] = attributes
        assert (await points.event(member, action, **fields)).status_code == 201
    bought = await points.event(c, "purchase", occurred_at=local(3).isoformat(),
                                amount_cents=30_000)
    assert (await points.reverse(bought.json()["event_id"], amount_cents=10_000)).status_code \
        == 201
    # Every event twice: the second delivery must change nothing.
    await deliver(resources, settings, tenant.name, twice=True)

    report = await groups.report(g, local(3))
    assert datetime.fromisoformat(report["start"]) == MONDAY
    assert datetime.fromisoformat(report["end"]) == MONDAY + timedelta(days=7)
    # Population (in the group at some moment of the week): a, b, c, d, quiet.
    assert {k: report[k] for k in ("members", "members_in_period", "joins", "leaves",
                                   "net_growth", "active_members", "active_rate",
                                   "purchasers", "conversion_rate", "gmv_cents")} == {
        "members": 3,             # a, c, quiet at the end of the week
        "members_in_period": 5,
        "joins": 2, "leaves": 2, "net_growth": 0,   # c, d joined; b, d left
        "active_members": 3, "active_rate": 0.6,    # a, b, d spoke in the group
        "purchasers": 2, "conversion_rate": 0.4,    # a; c after joining (net 20 000)
        "gmv_cents": 40_000,
    }
    # Value (7 local days to Sunday) of the members at the end: a = 3 speaks + 20 000 x 0.01 /
    # 100 = 5; c = (5 000 + 30 000 - 10 000) x 0.01 / 100 = 2.5; quiet = 0.
    assert report["value_mean"] == pytest.approx(7.5 / 3, abs=1e-4)
    assert report["high_value_members"] == 1
    # The only group with members: the bottom 20% of one group is floor(0.2) = no group.
    assert report["stage"] == "golden" and report["activation_watch"] is False

    value = await client.get(f"/tiers/v1/members/{a}/value", headers=groups.operator,
                             params={"at": local(6).isoformat()})
    assert value.status_code == 200, value.text
    assert value.json()["total"] == 5 and value.json()["content"] == 3

    month = await groups.report(g, local(3), period="month")
    assert datetime.fromisoformat(month["start"]) == datetime.fromisoformat(
        "2026-10-01T00:00:00+08:00")
    # October: c, d and f joined (the others on 28 September); b and d left (e in September).
    assert month["joins"] == 3 and month["leaves"] == 2
    assert month["gmv_cents"] == 40_000

    previous_week = await groups.report(g, before)
    assert previous_week["joins"] == 4 and previous_week["leaves"] == 1
    assert previous_week["gmv_cents"] == 0 and previous_week["active_members"] == 0


async def test_activation_watch_turns_on_in_the_fourth_bottom_week(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources,
        settings: Settings) -> None:
    points = Points(client, tenant)
    await groups.setup({"window_days": 7, "high_value_line": 100,
                        "actions": {"speak": {"category": "content", "weight": 1}}})
    names = [uid(f"g{i}") for i in range(10)]
    low, blip = names[0], names[1]
    members = {}
    start = MONDAY - timedelta(weeks=1)   # week 0; weeks 1-4 follow
    for name in names:
        await groups.create(name)
        members[name] = uid("m")
        assert (await groups.join(name, members[name], start - timedelta(weeks=4))
                ).status_code == 200
    # Speaks per week: low is lowest in weeks 1-4; blip ties with it except in week 3.
    weekly = {low: [10, 1, 1, 1, 1], blip: [10, 1, 1, 20, 1]}
    for index, name in enumerate(names[2:], start=2):
        weekly[name] = [5 + index] * 5
    for name, counts in weekly.items():
        for week, count in enumerate(counts):
            at = start + timedelta(weeks=week, days=2, hours=10)
            for _ in range(count):
                response = await points.event(members[name], "speak",
                                              occurred_at=at.isoformat(),
                                              attributes={"group_id": name})
                assert response.status_code == 201, response.text
    await deliver(resources, settings, tenant.name)

    def week(n: int) -> datetime:
        return start + timedelta(weeks=n, days=3)

    watch = [(await groups.report(low, week(n)))["activation_watch"] for n in range(5)]
    assert watch == [False, False, False, False, True]
    assert (await groups.report(blip, week(4)))["activation_watch"] is False
    # Bottom 20% of 10 groups = 2 groups (ties included): low and blip are silver in week 4.
    fourth = {name: (await groups.report(name, week(4)))["stage"] for name in names[:3]}
    assert fourth == {low: "silver", blip: "silver", names[2]: "golden"}
    assert (await groups.report(blip, week(3)))["stage"] == "golden"


async def test_joins_and_leaves_keep_one_stay_at_a_time(client: httpx.AsyncClient,
                                                        tenant: Tenant, groups: GroupsApi) -> None:
    await groups.setup()
    g, member = uid("g"), uid("m")
    await groups.create(g)
    first = await groups.join(g, member, local(0))
    again = await groups.join(g, member, local(1))
    assert again.status_code == 200 and again.json() == first.json()  # already in: unchanged
    early_leave = await groups.leave(g, member, local(0) - timedelta(hours=1))
    assert early_leave.status_code == 422
    assert (await groups.leave(g, member, local(2))).status_code == 200
    gone = await groups.leave(g, member, local(3))
    assert gone.status_code == 404 and error_code(gone) == "not_a_member"
    overlap = await groups.join(g, member, local(1))
    assert overlap.status_code == 409 and error_code(overlap) == "overlapping_stay"
    back = await groups.join(g, member, local(4))
    assert back.status_code == 200 and back.json()["left_at"] is None
    report = await groups.report(g, local(3))
    assert (report["joins"], report["leaves"], report["members"]) == (2, 1, 1)
    shown = await client.get(f"/tiers/v1/groups/{g}", headers=groups.operator)
    assert shown.json()["members"] == 1 and shown.json()["kind"] == "member"


async def test_concurrent_joins_record_one_stay(client: httpx.AsyncClient, tenant: Tenant,
                                                groups: GroupsApi, resources: Resources) -> None:
    import asyncio

    await groups.setup()
    g, member = uid("g"), uid("m")
    await groups.create(g)
    answers = await asyncio.gather(*(groups.join(g, member, local(0)) for _ in range(30)))
    assert {r.status_code for r in answers} == {200}
    stays = await resources.pool.fetchval(
        "SELECT count(*) FROM tiers.group_members WHERE tenant_id = $1 AND member_id = $2",
        tenant.name, member)
    assert stays == 1


async def stays_of(resources: Resources, tenant: Tenant, member: str) -> list[tuple[Any, ...]]:
    rows = await resources.pool.fetch(
        "SELECT joined_at, left_at FROM tiers.group_members WHERE tenant_id = $1"
        " AND member_id = $2 ORDER BY joined_at, left_at NULLS LAST", tenant.name, member)
    return [tuple(r) for r in rows]


async def test_a_join_at_the_instant_of_a_stay_that_lasted_no_time_is_409(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources) -> None:
    """A join and a leave at one instant T leave a stay (T, T); a new join at T would start a
    second stay at the same moment (it used to be a 500 on the stays' primary key)."""
    await groups.setup()
    g, member = uid("g"), uid("m")
    await groups.create(g)
    moment = local(0)
    assert (await groups.join(g, member, moment)).status_code == 200
    assert (await groups.leave(g, member, moment)).status_code == 200
    before = await stays_of(resources, tenant, member)
    again = await groups.join(g, member, moment)
    assert again.status_code == 409, again.text
    assert error_code(again) == "overlapping_stay"
    assert "that very instant" in again.json()["error"]["message"]
    assert datetime.fromisoformat(again.json()["error"]["details"]["details"]["left_at"]) \
        == moment
    assert await stays_of(resources, tenant, member) == before == [(moment, moment)]
    later = await groups.join(g, member, moment + timedelta(seconds=1))
    assert later.status_code == 200 and later.json()["left_at"] is None
    report = await groups.report(g, moment)
    assert (report["joins"], report["leaves"], report["members"]) == (2, 1, 1)


async def test_a_rejoin_at_or_after_the_leave_still_works(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources) -> None:
    await groups.setup()
    g, member = uid("g"), uid("m")
    await groups.create(g)
    assert (await groups.join(g, member, local(0))).status_code == 200
    assert (await groups.leave(g, member, local(1))).status_code == 200
    back = await groups.join(g, member, local(1))   # the very instant of the leave
    assert back.status_code == 200, back.text
    assert datetime.fromisoformat(back.json()["joined_at"]) == local(1)
    assert (await groups.leave(g, member, local(2))).status_code == 200
    assert (await groups.join(g, member, local(3))).status_code == 200
    assert await stays_of(resources, tenant, member) == [
        (local(0), local(1)), (local(1), local(2)), (local(3), None)]


async def test_concurrent_join_leave_join_at_one_instant_never_fails(
        client: httpx.AsyncClient, tenant: Tenant, groups: GroupsApi, resources: Resources) -> None:
    import asyncio

    await groups.setup()
    g, member = uid("g"), uid("m")
    await groups.create(g)
    moment = local(0)
    others = [uid("m") for _ in range(20)]

    async def sequence(who: str) -> list[int]:
        return [(await groups.join(g, who, moment)).status_code,
                (await groups.leave(g, who, moment)).status_code,
                (await groups.join(g, who, moment)).status_code]

    # 20 sequences for one member, interleaved, and 20 for 20 members, all at once.
    answers = await asyncio.gather(*(sequence(member) for _ in range(20)),
                                   *(sequence(who) for who in others))
    statuses = {status for answer in answers for status in answer}
    assert statuses <= {200, 404, 409}, answers
    for who in others:
        assert await stays_of(resources, tenant, who) == [(moment, moment)]
    stays = await stays_of(resources, tenant, member)
    assert stays[0][0] == moment and all(joined == moment for joined, _ in stays)
    assert len(stays) == 1


async def test_migrations_and_compositions(client: httpx.AsyncClient, tenant: Tenant,
                                           groups: GroupsApi, resources: Resources,
                                           settings: Settings) -> None:
    points = Points(client, tenant)
    await groups.setup({"window_days": 28, "high_value_line": 5,
                        "actions": {"speak": {"category": "content", "weight": 1}}})
    quiet_fans, vips, members_group, balanced = uid("f1"), uid("v"), uid("m"), uid("m2")
    lively = [uid("f2"), uid("f3"), uid("f4")]
    for fan_group in (quiet_fans, *lively):
        await groups.create(fan_group, tier="fan", kind="fan")
    await groups.create(vips, tier="vip", kind="super")
    await groups.create(members_group, tier="member", kind="member")
    await groups.create(balanced, tier="member", kind="member")
    flash = uid("flash")
    await groups.create(flash, tier="fan", kind="flash")
    joined = datetime.now(MONDAY.tzinfo) - timedelta(days=3)
    # member -> (group, spend cents, speaks); spend 30 000 makes a member, 100 000 a VIP.
    seeds: dict[str, tuple[str, int, int]] = {
        "rich": (quiet_fans, 120_000, 0), "chatty": (quiet_fans, 0, 6),
        "plain": (quiet_fans, 0, 0),
        "t2": (lively[0], 0, 9), "t3": (lively[1], 0, 10), "t4": (lively[2], 0, 11),
        "vipA": (vips, 150_000, 3), "potA": (vips, 0, 6), "reg": (vips, 0, 3),
        "mm": (members_group, 40_000, 4), "up": (members_group, 110_000, 4),
        "low": (members_group, 0, 4),
        "b_vip": (balanced, 100_000, 0),
        **{f"b_pot{i}": (balanced, 30_000, 6) for i in range(2)},
        **{f"b_reg{i}": (balanced, 30_000, 2) for i in range(7)},
    }
    ids = {name: uid(name.replace("_", "")) for name in seeds}
    for name, (group_id, spend, speaks) in seeds.items():
        assert (await groups.join(group_id, ids[name], joined)).status_code == 200
        if spend:
            assert (await points.event(ids[name], "purchase", amount_cents=spend)
                    ).status_code == 201
        for _ in range(speaks):
            assert (await points.event(ids[name], "speak")).status_code == 201
    assert (await groups.join(flash, ids["rich"], joined)).status_code == 200  # flash: no move
    await deliver(resources, settings, tenant.name)

    response = await client.get("/tiers/v1/groups/migrations", headers=groups.operator)
    assert response.status_code == 200, response.text
    body = response.json()
    names = {v: k for k, v in ids.items()}
    moves = {(names[m["member_id"]], m["reason"]): m["suggested_groups"] for m in body["moves"]}
    # Group values: quiet fans 2 (the only group in the bottom 20% of 7: silver), lively fan
    # groups 9 / 10 / 11, VIPs 4, members 4, balanced 2.6.
    livelier_fans = [lively[2], lively[1], lively[0]]
    assert moves == {
        ("rich", "tier_mismatch"): [vips],                    # a VIP among fans
        ("chatty", "high_value_in_silver_group"): livelier_fans,
        ("reg", "tier_mismatch"): livelier_fans,              # a fan in a super-user group
        ("low", "tier_mismatch"): livelier_fans,              # a fan in a member group
    }
    assert body["truncated"] is False
    compositions = {c["group_id"]: c for c in body["compositions"]}
    assert set(compositions) == {vips, members_group, balanced}
    assert compositions[balanced]["shares"] == {"super": 0.1, "potential": 0.2, "regular": 0.7}
    assert compositions[balanced]["balanced"] is True
    assert compositions[vips]["shares"] == {"super": 0.3333, "potential": 0.3333,
                                            "regular": 0.3333}
    assert compositions[vips]["balanced"] is False
    assert compositions[members_group]["balanced"] is False

    limited = await client.get("/tiers/v1/groups/migrations", headers=groups.operator,
                               params={"limit": 2})
    assert len(limited.json()["moves"]) == 2 and limited.json()["truncated"] is True


async def test_a_member_only_in_a_group_is_at_the_lowest_tier(
        client: httpx.AsyncClient, groups: GroupsApi) -> None:
    """A fan who joined a VIP group but never reached the metrics (no points events) is a
    fan: asked to move down; one in a fan group is where they belong."""
    await groups.setup()
    vips, fans, members_group = uid("v"), uid("f"), uid("m")
    await groups.create(vips, tier="vip", kind="super")
    await groups.create(fans, tier="fan", kind="fan")
    await groups.create(members_group, tier="member", kind="member")
    joined = datetime.now(MONDAY.tzinfo) - timedelta(days=1)
    stray, settled, newcomer = uid("stray"), uid("settled"), uid("new")
    assert (await groups.join(vips, stray, joined)).status_code == 200
    assert (await groups.join(fans, settled, joined)).status_code == 200
    assert (await groups.join(members_group, newcomer, joined)).status_code == 200
    response = await client.get("/tiers/v1/groups/migrations", headers=groups.operator)
    assert response.status_code == 200, response.text
    moves = {m["member_id"]: m for m in response.json()["moves"]}
    assert set(moves) == {stray, newcomer}
    assert moves[stray]["member_tier"] == "fan" and moves[stray]["group_id"] == vips
    assert moves[stray]["suggested_groups"] == [fans]
    assert moves[newcomer]["suggested_groups"] == [fans]
    compositions = {c["group_id"]: c for c in response.json()["compositions"]}
    assert compositions[vips]["shares"] == {"super": 0.0, "potential": 0.0, "regular": 1.0}
