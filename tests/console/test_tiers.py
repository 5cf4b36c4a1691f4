"""The Tiers page: the distribution chart against the API, the ladder and its editor for admins
only, and a percentile policy set in the editor then stratified from the page."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Request

from tests.console.conftest import ConsolePage, ConsoleStack

CONFIRM = ".el-message-box__btns .el-button--primary"


def open_tiers(console: ConsolePage) -> None:
    console.open("tiers")
    console.chart("tiers-distribution")
    console.page.wait_for_load_state("networkidle")


def shown_evaluated_at(console: ConsolePage, distribution: dict[str, Any]) -> None:
    """evaluated_at on the tenant's clock ("never" before a stratification)."""
    shown = console.page.get_by_test_id("evaluated-at").inner_text()
    if distribution["evaluated_at"] is None:
        assert shown == "尚未分层"
        return
    zone = console.stack.get("/points/v1/whoami")["time_zone"]
    at = datetime.fromisoformat(distribution["evaluated_at"]).astimezone(ZoneInfo(zone))
    assert shown == at.strftime("%Y-%m-%d %H:%M")


def test_the_distribution_chart_draws_what_the_api_answers(console: ConsolePage) -> None:
    stack = console.stack
    console.sign_in(stack.operator_key)
    open_tiers(console)
    distribution = stack.get("/tiers/v1/distribution")
    assert console.series("tiers-distribution") == [
        [tier["members"] for tier in distribution["tiers"]]]
    assert console.drawer_call("distribution") == distribution
    # The walkthrough's members are in the chart, under the ladder's tier names.
    assert sum(tier["members"] for tier in distribution["tiers"]) == distribution["members"] > 0
    names = console.chart("tiers-distribution")["xAxis"][0]["data"]
    assert [name.split("\n")[0] for name in names] == [t["tier"] for t in distribution["tiers"]]
    assert console.page.get_by_test_id("total-members").inner_text() == \
        f"{distribution['members']:,}"
    shown_evaluated_at(console, distribution)
    console.screenshot("tiers-operator")


def test_an_operator_sees_no_ladder_editor_and_an_admin_does(console: ConsolePage) -> None:
    stack = console.stack
    asked: list[str] = []

    def note(request: Request) -> None:
        asked.append(request.url)

    console.page.on("request", note)
    console.sign_in(stack.operator_key)
    open_tiers(console)
    page = console.page
    page.get_by_test_id("ladder-admin-only").wait_for()
    assert page.get_by_test_id("admin-editor").count() == 0
    # The page does not ask for what the key may not read.
    assert not any("/tiers/v1/policy" in url for url in asked)
    assert any(url.endswith("/tiers/v1/distribution") for url in asked)

    page.get_by_test_id("sign-out").click()
    console.sign_in(stack.admin_key)
    open_tiers(console)
    page.get_by_test_id("admin-editor").wait_for()
    assert page.get_by_test_id("ladder-admin-only").count() == 0
    policy = stack.get("/tiers/v1/policy")
    ladder = page.get_by_test_id("ladder").locator("xpath=following-sibling::ol[1]/li")
    assert [ladder.nth(i).get_attribute("data-tier") for i in range(ladder.count())] == [
        tier["name"] for tier in policy["tiers"]]
    names = page.get_by_test_id("tier-name")
    assert [names.nth(i).input_value() for i in range(names.count())] == [
        tier["name"] for tier in policy["tiers"]]
    console.screenshot("tiers-admin")


def test_stratifying_under_a_threshold_ladder_shows_the_refusal(console: ConsolePage) -> None:
    stack = console.stack
    assert stack.get("/tiers/v1/policy")["mode"] == "threshold"
    before = stack.get("/tiers/v1/distribution")
    console.sign_in(stack.operator_key)
    open_tiers(console)
    page = console.page
    page.get_by_test_id("evaluate").click()
    page.locator(CONFIRM).click()
    result = page.get_by_test_id("evaluation-result")
    result.wait_for()
    assert "not a percentile policy" in result.inner_text()
    assert "409 not_percentile" in result.inner_text()
    console.expect_errors(1)  # the browser logs the refused request
    assert stack.get("/tiers/v1/distribution") == before


def policy_body(view: dict[str, Any]) -> dict[str, Any]:
    """The PUT body of a policy as GET answers it."""
    return {key: value for key, value in view.items() if key != "reevaluation"}


def restore(stack: ConsoleStack, policy: dict[str, Any]) -> None:
    """Put the walkthrough's policy back and wait for every member to be evaluated under it,
    so the other browser tests see the tenant as the walkthrough left it."""
    put = stack.api().put("/tiers/v1/policy", json=policy)
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 60
    while True:
        again = stack.get("/tiers/v1/policy")
        if again["reevaluation"] is None or again["reevaluation"]["state"] == "done":
            break
        assert time.monotonic() < deadline, again["reevaluation"]
        time.sleep(0.5)


def stratified_counts(shares: list[float], members: int) -> list[int]:
    """Members per tier of a percentile ladder: the member at position p of n is in the lowest
    tier whose cumulative share s has p <= round(s x n) (rounding half up)."""
    ends, cumulative = [], 0.0
    for share in shares:
        cumulative += share
        ends.append(math.floor(cumulative * members + 0.5))
    return [end - start for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def test_an_admin_sets_a_percentile_ladder_and_stratifies(console: ConsolePage) -> None:
    stack = console.stack
    original = policy_body(stack.get("/tiers/v1/policy"))
    names = [tier["name"] for tier in original["tiers"]]
    assert len(names) == 3, original
    shares = [0.5, 0.3, 0.2]
    console.sign_in(stack.admin_key)
    open_tiers(console)
    page = console.page
    try:
        page.get_by_test_id("policy-mode").get_by_text("比例分层").click()
        fields = page.locator('[data-testid="tier-share"] input')
        assert fields.count() == 3
        for index, share in enumerate([0.5, 0.3, 0.1]):
            fields.nth(index).fill(str(share))
            fields.nth(index).blur()
        # Shares that do not add up to 1 are refused in the form; nothing is sent.
        page.get_by_test_id("policy-save").click()
        assert "0.9" in page.get_by_test_id("policy-problems").inner_text()
        assert stack.get("/tiers/v1/policy")["mode"] == "threshold"
        fields.nth(2).fill("0.2")
        fields.nth(2).blur()
        page.get_by_test_id("policy-save").click()
        page.locator(CONFIRM).click()
        page.get_by_test_id("ladder").get_by_text("比例分层").wait_for()
        saved = stack.get("/tiers/v1/policy")
        assert saved["mode"] == "percentile"
        assert saved["metric"] == "points_earned"
        assert [(tier["name"], tier["share"]) for tier in saved["tiers"]] == list(
            zip(names, shares, strict=True))
        assert saved["window_days"] == original["window_days"]

        page.get_by_test_id("evaluate").click()
        page.locator(CONFIRM).click()
        page.get_by_test_id("evaluation-result").wait_for()
        distribution = stack.get("/tiers/v1/distribution")
        members = distribution["members"]
        counts = stratified_counts(shares, members)
        assert [tier["members"] for tier in distribution["tiers"]] == counts
        assert int(page.get_by_test_id("evaluation-members").inner_text()) == members
        assert [(cut["tier"], cut["members"]) for cut in distribution["cut_lines"]] == list(
            zip(names, counts, strict=True))
        # The page read the distribution again: the chart draws the new one.
        page.wait_for_function(
            "want => JSON.stringify(window.__fuliCharts['tiers-distribution']().series[0].data)"
            " === JSON.stringify(want)", arg=counts)
        rows = page.get_by_test_id("cut-lines").locator("tbody tr")
        assert rows.count() == len(distribution["cut_lines"])
        for index, cut in enumerate(distribution["cut_lines"]):
            row = rows.nth(index).inner_text()
            assert cut["tier"] in row and str(cut["members"]) in row
        shown_evaluated_at(console, distribution)
        console.screenshot("tiers-stratified")
    finally:
        restore(stack, original)
