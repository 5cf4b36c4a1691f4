"""The Members page: a member's figures as the API answers them, a member fuli never heard of,
and the operator's writes (a grant, a coupon issue, a manual tag) checked against the API."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.console.conftest import ConsolePage, ConsoleStack

CONFIRM = ".el-message-box__btns .el-button--primary"


def fresh_member(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def seed(stack: ConsoleStack, member_id: str, points: int) -> None:
    """Points for a new member, and wait until the tiers service knows the member (the worker
    applies the points event), so its lifecycle answers 200."""
    granted = stack.api(stack.operator_key).post("/points/v1/grants", json={
        "grant_id": f"seed-{member_id}", "reason": "console test",
        "items": [{"member_id": member_id, "points": points}]})
    assert granted.status_code == 201, granted.text
    deadline = time.monotonic() + 30
    while stack.api().get(f"/tiers/v1/members/{member_id}/lifecycle").status_code != 200:
        assert time.monotonic() < deadline, "the tiers service never learnt of the member"
        time.sleep(0.2)


def refusals_expected(stack: ConsoleStack, member_id: str) -> list[str]:
    """The parts of the member page the API refuses for this member (each logs one error in
    the browser): the lifecycle of an unknown member, the value score without a value model."""
    return [path for path in (f"/tiers/v1/members/{member_id}/lifecycle",
                              f"/tiers/v1/members/{member_id}/value")
            if stack.api().get(path).status_code >= 400]


def open_member(console: ConsolePage, member_id: str) -> None:
    console.open("members")
    console.field("member-search").fill(member_id)
    console.page.get_by_test_id("member-search-button").click()
    console.page.locator(f'[data-member="{member_id}"]').wait_for()
    console.page.get_by_test_id("balance-available").wait_for()
    console.page.wait_for_load_state("networkidle")


def shown_available(console: ConsolePage) -> int:
    value = console.page.get_by_test_id("balance-available").get_attribute("data-value")
    assert value is not None
    return int(value)


def local(at: str, zone: str) -> str:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def test_a_grant_changes_the_balance_shown_by_exactly_the_points_granted(
        console: ConsolePage) -> None:
    stack = console.stack
    member = fresh_member("grantee")
    seed(stack, member, 120)
    refused = refusals_expected(stack, member)
    console.sign_in(stack.operator_key)
    open_member(console, member)
    console.expect_errors(len(refused))

    before = stack.get(f"/points/v1/members/{member}")
    assert before["available"] == 120
    assert shown_available(console) == 120
    assert console.page.get_by_test_id("balance-available").inner_text() == "120"
    tier = stack.get(f"/tiers/v1/members/{member}/tier")
    assert console.page.get_by_test_id("tier-name").inner_text().strip() == tier["tier"]

    page = console.page
    page.get_by_test_id("grant-open").click()
    # A grant without points is refused in the form, and nothing is sent.
    page.get_by_test_id("grant-submit").click()
    page.get_by_test_id("grant-problem").wait_for()
    console.field("grant-points").fill("37")
    console.field("grant-reason").fill("community event reward")
    page.get_by_test_id("grant-submit").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=balance-available]').dataset.value === '157'")

    after = stack.get(f"/points/v1/members/{member}")
    assert after["available"] == before["available"] + 37 == 157
    assert after["lifetime_earned"] == 157
    newest = stack.get(f"/points/v1/members/{member}/entries", limit=1)["items"][0]
    assert (newest["kind"], newest["points"], newest["balance_after"]) == ("grant", 37, 157)
    # The ledger on the page shows the new entry first, and each expiring lot on the tenant's
    # clock.
    page.get_by_test_id("entries").locator("tbody tr").nth(1).wait_for()
    first_row = page.get_by_test_id("entries").locator("tbody tr").first.inner_text()
    assert "+37" in first_row and "157" in first_row
    zone = stack.get("/points/v1/whoami")["time_zone"]
    expiring = page.get_by_test_id("expiring").inner_text()
    for lot in after["expiring"]:
        assert local(lot["expires_at"], zone) in expiring
    console.screenshot("members-granted")


def test_a_member_fuli_never_heard_of_shows_the_apis_answers(console: ConsolePage) -> None:
    stack = console.stack
    member = fresh_member("stranger")
    balance = stack.get(f"/points/v1/members/{member}")
    assert (balance["available"], balance["lifetime_earned"], balance["expiring"]) == (0, 0, [])
    lifecycle = stack.api().get(f"/tiers/v1/members/{member}/lifecycle")
    assert lifecycle.status_code == 404
    refused = refusals_expected(stack, member)
    console.sign_in(stack.admin_key)
    open_member(console, member)
    console.expect_errors(len(refused))

    page = console.page
    assert shown_available(console) == 0
    page.get_by_test_id("balance-blank").wait_for()
    card = page.get_by_test_id("lifecycle-card").inner_text()
    assert lifecycle.json()["error"]["message"] in card
    assert "unknown_member" in card
    assert page.get_by_test_id("tier-name").inner_text().strip() == "暂无等级"
    value = stack.api().get(f"/tiers/v1/members/{member}/value")
    if value.status_code >= 400:
        assert value.json()["error"]["message"] in page.get_by_test_id("value-card").inner_text()
    assert console.drawer_call("balance") == balance
    console.screenshot("members-unknown")


def perk_to_issue(stack: ConsoleStack) -> dict[str, Any]:
    """A perk of the walkthrough that can still give a coupon (stock and codes left)."""
    for perk in stack.get("/rewards/v1/perks")["items"]:
        if perk["enabled"] and (perk["stock"] is None or perk["stock"] > 0) and (
                perk["fulfilment"] != "code" or (perk["codes_available"] or 0) > 0):
            return dict(perk)
    raise AssertionError("the walkthrough made no perk that can be issued")


def test_an_operator_issues_a_coupon_and_tags_a_member(console: ConsolePage) -> None:
    stack = console.stack
    member = fresh_member("tagged")
    seed(stack, member, 10)
    perk = perk_to_issue(stack)
    refused = refusals_expected(stack, member)
    console.sign_in(stack.operator_key)
    open_member(console, member)
    console.expect_errors(len(refused))
    page = console.page

    page.get_by_test_id("issue-open").click()
    page.get_by_test_id("issue-sku").click()
    page.get_by_role("option", name=f"{perk['name']} ({perk['sku']})").click()
    console.field("issue-reason").fill("welcome gift")
    page.get_by_test_id("issue-submit").click()
    # After the issue the page reads the member's coupons again and lists the new one.
    page.get_by_role("tab", name="优惠券").click()
    page.get_by_test_id("coupons").get_by_text(perk["sku"]).wait_for()
    coupons = stack.get(f"/rewards/v1/members/{member}/coupons")["items"]
    assert [coupon["sku"] for coupon in coupons] == [perk["sku"]]
    page.get_by_test_id("coupons").get_by_text(coupons[0]["coupon_id"]).wait_for()

    # A tag fuli would refuse is refused in the form: nothing is sent.
    console.field("tag-input").fill("Big Spender")
    page.get_by_test_id("tag-add").click()
    assert "小写字母" in page.get_by_test_id("tag-problem").inner_text()
    assert stack.get(f"/tiers/v1/members/{member}/tags")["items"] == []
    console.field("tag-input").fill("console_vip")
    page.get_by_test_id("tag-add").click()
    page.locator('[data-tag="console_vip"]').wait_for()
    tags = stack.get(f"/tiers/v1/members/{member}/tags")["items"]
    assert [(tag["tag"], tag["source"]) for tag in tags] == [("console_vip", "manual")]

    page.locator('[data-tag="console_vip"] .el-tag__close').click()
    page.locator(CONFIRM).click()
    page.locator('[data-tag="console_vip"]').wait_for(state="detached")
    assert stack.get(f"/tiers/v1/members/{member}/tags")["items"] == []
    console.screenshot("members-issued-tagged")


def test_the_ledger_pages_on_with_more(console: ConsolePage) -> None:
    stack = console.stack
    member = fresh_member("ledger")
    seed(stack, member, 1)
    operator = stack.api(stack.operator_key)
    for number in range(2, 23):  # 21 more grants of 2 .. 22 points: 22 entries in all
        granted = operator.post("/points/v1/grants", json={
            "grant_id": f"ledger-{member}-{number}", "reason": "console test",
            "items": [{"member_id": member, "points": number}]})
        assert granted.status_code == 201, granted.text
    entries = stack.get(f"/points/v1/members/{member}/entries", limit=100)["items"]
    assert [entry["points"] for entry in entries] == list(range(22, 0, -1))
    refused = refusals_expected(stack, member)
    console.sign_in(stack.operator_key)
    open_member(console, member)
    console.expect_errors(len(refused))

    page = console.page
    rows = page.get_by_test_id("entries").locator("tbody tr")
    assert rows.count() == 20  # the page's first page
    first_page = console.drawer_call("entries")
    assert [entry["entry_id"] for entry in first_page["items"]] == [
        entry["entry_id"] for entry in entries[:20]]
    assert first_page["next_cursor"] is not None
    page.get_by_test_id("entries-more").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=entries] tbody tr').length === 22")
    shown = [rows.nth(i).locator("td").nth(2).inner_text().strip() for i in range(22)]
    assert shown == [f"+{entry['points']}" for entry in entries]
    # The last page: no more to ask for.
    assert page.get_by_test_id("entries-more").count() == 0
    assert console.drawer_call("entries")["next_cursor"] is None
