"""The Groups page against the tiers API: the list of the walkthrough's groups, a group's
report and 12-week trend as the API answers them, and the one-click invitation of a suggested
migration, which puts its tag on the member."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.console.conftest import ConsolePage, ConsoleStack


def open_groups(console: ConsolePage) -> None:
    console.sign_in(console.stack.operator_key)
    console.open("groups")
    console.page.get_by_test_id("group-list").wait_for()
    # The list is there before its rows: they come with the API's answer, all at once.
    console.page.locator("[data-group-id]").first.wait_for()


def shown_group_ids(console: ConsolePage) -> list[str]:
    cells = console.page.locator("[data-group-id]")
    return [cells.nth(i).get_attribute("data-group-id") or "" for i in range(cells.count())]


def invite_tag(group_id: str) -> str:
    """The invitation tag of a group whose id is a tag's characters already (the walkthrough's
    are); the console's rule for other ids is unit-tested (console/test/groups.test.ts)."""
    tag = f"invite:{group_id}"
    assert re.fullmatch(r"[a-z0-9_:-]{1,64}", tag), tag
    return tag


def twelve_weeks(stack: ConsoleStack) -> dict[str, str]:
    """The window of the trend chart: the 12 ISO weeks ending with the tenant's current one."""
    zone = ZoneInfo(stack.get("/points/v1/whoami")["time_zone"])
    today = datetime.now(zone).date()
    monday = today - timedelta(days=today.weekday())
    return {"from": (monday - timedelta(weeks=11)).isoformat(), "to": today.isoformat(),
            "by": "week"}


def drawer_body(console: ConsolePage, name: str, request_has: str) -> Any:
    """The body the data drawer shows for the call ``name`` once its request has
    ``request_has`` (the call the page made last under that name)."""
    console.page.get_by_test_id("data-drawer-button").click()
    section = console.page.locator(f'[data-call="{name}"]')
    section.get_by_test_id("call-request").filter(has_text=request_has).wait_for()
    body = json.loads(section.get_by_test_id("call-body").inner_text())
    console.page.keyboard.press("Escape")
    section.wait_for(state="hidden")
    return body


def test_the_list_shows_the_groups_the_api_lists(console: ConsolePage) -> None:
    listed = console.stack.get("/tiers/v1/groups", console.stack.operator_key, limit=20)["items"]
    assert len(listed) >= 4  # the walkthrough's groups
    open_groups(console)
    assert shown_group_ids(console) == [group["group_id"] for group in listed]
    members = console.page.get_by_test_id("group-members")
    assert [int(members.nth(i).inner_text()) for i in range(members.count())] == [
        group["members"] for group in listed]
    console.screenshot("groups-list")

    # A filter narrows the list as the API's own filter does.
    dissolved = console.stack.get("/tiers/v1/groups", status="dissolved")["items"]
    assert dissolved
    console.page.get_by_test_id("filter-status").click()
    console.page.get_by_role("option", name="已解散").click()
    console.page.get_by_test_id("filter-search").click()
    console.page.wait_for_function(
        "n => document.querySelectorAll('[data-group-id]').length === n", arg=len(dissolved))
    assert shown_group_ids(console) == [group["group_id"] for group in dissolved]


def test_a_group_s_report_and_trend_are_the_api_s_answers(console: ConsolePage) -> None:
    stack = console.stack
    listed = stack.get("/tiers/v1/groups", status="active")["items"]
    group = next(g for g in listed if g["members"] > 0)
    group_id = group["group_id"]
    open_groups(console)
    console.page.locator(f'[data-group-id="{group_id}"]').click()
    console.page.get_by_test_id("group-details").wait_for()

    series = console.series("groups-trend")
    trends = stack.get(f"/tiers/v1/groups/{group_id}/trends", **twelve_weeks(stack))
    periods: list[dict[str, Any]] = trends["periods"]
    assert len(periods) == 12
    assert series == [[p["members"] for p in periods], [p["joins"] for p in periods],
                      [p["leaves"] for p in periods]]
    assert sum(p["joins"] for p in periods) >= 1  # the walkthrough's join, this week
    assert console.chart("groups-trend")["xAxis"][0]["data"] == [p["first_day"] for p in periods]
    assert console.drawer_call("trends") == trends

    week = stack.get(f"/tiers/v1/groups/{group_id}/report", period="week")
    cards = console.page.get_by_test_id("report-cards")
    assert cards.get_by_test_id("report-membersNow").inner_text() == str(week["members"])
    assert cards.get_by_test_id("report-joins").inner_text() == str(week["joins"])
    assert cards.get_by_test_id("report-leaves").inner_text() == str(week["leaves"])
    assert (console.page.get_by_test_id("activation-watch").count() == 1) \
        == bool(week["activation_watch"])

    with console.page.expect_response(lambda r: "/report?period=month" in r.url):
        console.page.get_by_test_id("period-month").click()
    month = stack.get(f"/tiers/v1/groups/{group_id}/report", period="month")
    assert drawer_body(console, "report", "period=month") == month
    console.screenshot("groups-detail")


def test_one_click_invite_puts_the_tag_on_the_member(console: ConsolePage) -> None:
    stack = console.stack
    moves = stack.get("/tiers/v1/groups/migrations", limit=100)["moves"]
    move = next(m for m in moves if m["suggested_groups"])
    member, target = move["member_id"], move["suggested_groups"][0]
    tag = invite_tag(target)
    before = stack.get(f"/tiers/v1/members/{member}/tags")["items"]
    assert tag not in [item["tag"] for item in before]

    open_groups(console)
    console.page.get_by_test_id(f"invite-{member}-{target}").click()
    console.page.get_by_test_id(f"invited-{member}-{target}").wait_for()

    after = stack.get(f"/tiers/v1/members/{member}/tags")["items"]
    assert [(item["tag"], item["source"]) for item in after if item["tag"] == tag] == [
        (tag, "manual")]
    assert len(after) == len(before) + 1
    console.screenshot("groups-invited")
