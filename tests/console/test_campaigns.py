"""The Campaigns page against the rewards API: red-packet pools with what is left of them and
their latest opens; a team-buy campaign's leaderboard, drawn from the API's answer and read
again every 5 s while the page is visible (and no more once the page is left), and its results,
empty until it is settled."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tests.console.conftest import ConsolePage, ConsoleStack
from tests.e2e.process import wait_for

SPEND = {"alpha": 30_000, "bravo": 12_000, "charlie": 5_000}


def make_campaign(stack: ConsoleStack) -> tuple[str, str]:
    """A campaign of its own with three teams whose captains bought SPEND cents."""
    run = secrets.token_hex(4)
    campaign_id = f"console-cmp-{run}"
    made = stack.api(stack.operator_key).put(f"/rewards/v1/campaigns/{campaign_id}", json={
        "name": "Console team-buy", "team_sizes": [2],
        "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"})
    assert made.status_code == 200, made.text
    ingest = stack.api(stack.ingest_key)
    for team, cents in SPEND.items():
        formed = ingest.post(f"/rewards/v1/campaigns/{campaign_id}/teams", json={
            "team_id": f"{team}-{run}", "captain_member_id": f"{team}-captain-{run}",
            "size": 2, "name": team.title()})
        assert formed.status_code == 201, formed.text
        buy(stack, f"{team}-captain-{run}", cents, f"{team}-order-{run}")
    wait_for(lambda: scores(stack, campaign_id) == sorted(SPEND.values(), reverse=True), 30,
             "the purchases on the leaderboard", every_s=0.25)
    return campaign_id, run


def buy(stack: ConsoleStack, member_id: str, cents: int, event_id: str) -> None:
    bought = stack.api(stack.ingest_key).post("/points/v1/events", json={
        "event_id": event_id, "member_id": member_id, "action": "purchase",
        "amount_cents": cents})
    assert bought.status_code == 201, bought.text


def board(stack: ConsoleStack, campaign_id: str) -> Any:
    return stack.get(f"/rewards/v1/campaigns/{campaign_id}/leaderboard", limit=20)


def scores(stack: ConsoleStack, campaign_id: str) -> list[int]:
    return [row["score"] for row in board(stack, campaign_id)["items"]]


def open_campaign(console: ConsolePage, campaign_id: str) -> None:
    console.page.get_by_test_id(f"campaign-{campaign_id}").click()
    console.page.get_by_test_id("selected-campaign").filter(has_text=campaign_id).wait_for()


def test_the_leaderboard_chart_is_the_leaderboard_and_follows_it(console: ConsolePage) -> None:
    stack = console.stack
    campaign_id, run = make_campaign(stack)
    console.sign_in(stack.operator_key)
    console.open("campaigns")
    open_campaign(console, campaign_id)
    console.page.wait_for_function(
        "want => { const c = window.__fuliCharts['campaigns-leaderboard'];"
        " return c && JSON.stringify(c().series[0].data) === JSON.stringify(want); }",
        arg=[30_000, 12_000, 5_000])
    answer = board(stack, campaign_id)
    (bars,) = console.series("campaigns-leaderboard")
    assert bars == [row["score"] for row in answer["items"]] == [30_000, 12_000, 5_000]
    labels = console.chart("campaigns-leaderboard")["yAxis"][0]["data"]
    assert labels == [f"#{row['rank']} {row['name']}" for row in answer["items"]] \
        == ["#1 Alpha", "#2 Bravo", "#3 Charlie"]
    assert console.drawer_call("leaderboard") == answer
    console.screenshot("campaigns-leaderboard")

    # A purchase moves Charlie to the top; the page shows it by itself within a refresh or two.
    buy(stack, f"charlie-captain-{run}", 50_000, f"charlie-order-2-{run}")
    wait_for(lambda: scores(stack, campaign_id) == [55_000, 30_000, 12_000], 30,
             "the new purchase on the leaderboard", every_s=0.25)
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['campaigns-leaderboard']().series[0].data)"
        " === JSON.stringify(want)", arg=[55_000, 30_000, 12_000], timeout=15_000)
    answer = board(stack, campaign_id)
    (bars,) = console.series("campaigns-leaderboard")
    assert bars == [row["score"] for row in answer["items"]]
    assert console.chart("campaigns-leaderboard")["yAxis"][0]["data"][0] == "#1 Charlie"


def test_leaving_the_page_stops_the_refresh(console: ConsolePage) -> None:
    stack = console.stack
    campaign_id, _ = make_campaign(stack)
    reads: list[float] = []
    console.page.on("request", lambda request: reads.append(time.monotonic())
                    if f"/campaigns/{campaign_id}/leaderboard" in request.url else None)
    console.sign_in(stack.operator_key)
    console.open("campaigns")
    open_campaign(console, campaign_id)
    console.chart("campaigns-leaderboard")
    first = len(reads)
    assert first >= 1
    # Two refreshes: the timer starts when the page mounts, not at the reads opening the
    # campaign makes, so only the time between two of its own reads is its period.
    # Playwright reports requests while it runs: wait in the page, not in time.sleep.
    for _ in range(60):
        if len(reads) > first + 1:
            break
        console.page.wait_for_timeout(250)
    assert len(reads) > first + 1, "the leaderboard was not read again every 5 s"
    assert 4 <= reads[first + 1] - reads[first] <= 7, reads
    console.open("catalog")
    left = len(reads)
    console.page.wait_for_timeout(7_000)  # more than one period of the refresh
    assert len(reads) == left, "the leaderboard was read after the page was left"


def test_results_say_the_campaign_is_not_settled_yet(console: ConsolePage) -> None:
    stack = console.stack
    campaign_id, _ = make_campaign(stack)
    results = stack.get(f"/rewards/v1/campaigns/{campaign_id}/results")
    assert results == {"state": "open", "items": []}
    console.sign_in(stack.operator_key)
    console.open("campaigns")
    open_campaign(console, campaign_id)
    empty = console.page.locator('[data-testid="results"] [data-state="empty"]')
    empty.wait_for()
    assert "尚未结算" in empty.inner_text() and "进行中" in empty.inner_text()
    assert console.drawer_call("results") == results


def test_pools_show_what_is_left_and_their_latest_opens(console: ConsolePage) -> None:
    stack = console.stack
    pool_id = f"console-pool-{secrets.token_hex(4)}"
    made = stack.api(stack.operator_key).post("/rewards/v1/pools", json={
        "pool_id": pool_id, "name": "Console pool", "total_points": 1000, "packets": 10,
        "split": "equal", "ends_at": "2099-01-01T00:00:00Z"})
    assert made.status_code == 201, made.text
    for i in range(3):
        opened = stack.api(stack.ingest_key).post(f"/rewards/v1/pools/{pool_id}/opens", json={
            "open_id": f"{pool_id}-open-{i}", "member_id": f"{pool_id}-member-{i}"})
        assert opened.status_code == 201, opened.text
        assert opened.json()["points"] == 100
    listed = {pool["pool_id"]: pool for pool in stack.get("/rewards/v1/pools")["items"]}
    assert listed[pool_id]["remaining_packets"] == 7
    assert listed[pool_id]["remaining_points"] == 700

    console.sign_in(stack.operator_key)
    console.open("campaigns")
    packets = console.page.get_by_test_id(f"pool-packets-{pool_id}")
    assert "7 / 10" in packets.inner_text() and "70%" in packets.inner_text()
    points = console.page.get_by_test_id(f"pool-points-{pool_id}")
    assert "700 / 1,000" in points.inner_text() and "70%" in points.inner_text()

    console.page.get_by_test_id(f"pool-{pool_id}").click()
    details = stack.get(f"/rewards/v1/pools/{pool_id}")
    rows = console.page.locator('[data-testid="pool-opens"] .el-table__body tr')
    rows.first.wait_for()
    assert rows.count() == len(details["latest_opens"]) == 3
    shown = {rows.nth(i).locator("td").nth(1).inner_text().strip() for i in range(rows.count())}
    assert shown == {opened["member_id"] for opened in details["latest_opens"]}
    assert console.drawer_call("pool") == details
    console.screenshot("campaigns-pool")
