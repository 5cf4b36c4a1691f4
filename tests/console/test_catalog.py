"""The Catalog page against the rewards API: perks with their stock, a blind box's published
odds, the weight editor's live preview and its Save, and the draws observed against those the
odds expect, with the chi-square test's p-value."""

from __future__ import annotations

import math
import secrets
from fractions import Fraction
from typing import Any

from tests.console.conftest import ConsolePage, ConsoleStack

WEIGHTS = {"gold": 1, "silver": 3, "thanks": 6}
DRAWS = 40


def make_box(stack: ConsoleStack) -> str:
    """A box of its own (other tests share the stack), drawn DRAWS times with tickets."""
    box_id = f"console-box-{secrets.token_hex(4)}"
    operator = stack.api(stack.operator_key)
    made = operator.put(f"/rewards/v1/boxes/{box_id}", json={
        "name": "Console box", "cost_points": 10,
        "prizes": [{"prize_id": prize, "name": prize.title(), "kind": "nothing", "weight": weight}
                   for prize, weight in WEIGHTS.items()]})
    assert made.status_code == 200, made.text
    ingest = stack.api(stack.ingest_key)
    member = f"console-drawer-{box_id}"
    given = ingest.post("/rewards/v1/tickets", json={
        "ticket_grant_id": f"{box_id}-tickets", "member_id": member, "box_id": box_id,
        "count": DRAWS})
    assert given.status_code == 201, given.text
    for i in range(DRAWS):
        drawn = ingest.post(f"/rewards/v1/boxes/{box_id}/draws", json={
            "draw_id": f"{box_id}-draw-{i}", "member_id": member, "use_ticket": True})
        assert drawn.status_code == 201, drawn.text
    return box_id


def shares(weights: dict[str, int]) -> list[float]:
    total = sum(weights.values())
    return [float(Fraction(weight, total)) for weight in weights.values()]


def pie(console: ConsolePage, name: str) -> list[float]:
    (data,) = console.series(name)
    return [slice_["value"] for slice_ in data]


def open_box(console: ConsolePage, key: str, box_id: str) -> None:
    console.sign_in(key)
    console.open("catalog")
    console.page.get_by_test_id(f"box-{box_id}").click()
    console.page.get_by_test_id("selected-box").filter(has_text=box_id).wait_for()
    console.page.wait_for_load_state("networkidle")


def test_perks_show_their_stock_as_the_api_answers(console: ConsolePage) -> None:
    stack = console.stack
    perks = stack.get("/rewards/v1/perks")["items"]
    assert perks, "the walkthrough made a perk"
    console.sign_in(stack.operator_key)
    console.open("catalog")
    for perk in perks:
        cell = console.page.get_by_test_id(f"perk-stock-{perk['sku']}")
        expected = "不限" if perk["stock"] is None else f"{perk['stock']:,}"
        assert cell.inner_text().strip() == expected
    console.screenshot("catalog")


def test_the_odds_pie_is_the_published_odds(console: ConsolePage) -> None:
    stack = console.stack
    box_id = make_box(stack)
    open_box(console, stack.operator_key, box_id)
    odds = stack.get(f"/rewards/v1/boxes/{box_id}/odds")
    assert pie(console, "catalog-odds") == [prize["probability"] for prize in odds["prizes"]] \
        == shares(WEIGHTS) == [0.1, 0.3, 0.6]
    assert console.drawer_call("odds") == odds


def test_the_observed_bars_are_the_draw_statistics(console: ConsolePage) -> None:
    stack = console.stack
    box_id = make_box(stack)
    open_box(console, stack.operator_key, box_id)
    stats = stack.get(f"/rewards/v1/boxes/{box_id}/stats")
    observed, expected = console.series("catalog-observed")
    assert observed == [prize["observed"] for prize in stats["prizes"]]
    assert expected == [prize["expected"] for prize in stats["prizes"]]
    # The figures are those of the draws this test made: DRAWS of them, expected by the weights.
    assert stats["draws"] == DRAWS and stats["pity_draws"] == 0
    assert sum(observed) == DRAWS
    assert expected == [DRAWS * share for share in shares(WEIGHTS)]
    # Pearson's statistic over 3 prizes has 2 degrees of freedom, whose survival function is
    # exp(-x / 2): the p-value shown is that of these counts.
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = math.exp(-statistic / 2)
    shown = console.page.get_by_test_id("chi-square-p")
    assert math.isclose(float(shown.get_attribute("data-p") or "nan"), p_value, rel_tol=1e-9)
    expected_text = "< 0.0001" if p_value < 0.0001 else f"{p_value:.4f}"
    assert shown.inner_text().strip() == expected_text
    assert console.page.get_by_test_id("chi-square-df").inner_text().strip() == "2"
    assert console.page.get_by_test_id("chi-square-statistic").inner_text().strip() \
        == f"{statistic:.3f}"
    console.screenshot("catalog-observed")


def test_editing_weights_previews_at_once_and_saving_publishes_exactly_them(
        console: ConsolePage) -> None:
    stack = console.stack
    box_id = make_box(stack)
    open_box(console, stack.operator_key, box_id)
    before = stack.get(f"/rewards/v1/boxes/{box_id}/odds")
    assert pie(console, "catalog-odds-preview") == shares(WEIGHTS)

    # Each keystroke changes the preview, before anything is saved.
    console.field("weight-gold").fill("5")
    edited = {**WEIGHTS, "gold": 5}
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['catalog-odds-preview']().series[0].data"
        ".map(d => d.value)) === JSON.stringify(want)", arg=shares(edited))
    console.field("weight-silver").fill("15")
    edited = {**edited, "silver": 15}
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['catalog-odds-preview']().series[0].data"
        ".map(d => d.value)) === JSON.stringify(want)", arg=shares(edited))
    assert pie(console, "catalog-odds-preview") == shares(edited) == [5 / 26, 15 / 26, 6 / 26]
    # Nothing is published yet.
    assert pie(console, "catalog-odds") == shares(WEIGHTS)
    assert stack.get(f"/rewards/v1/boxes/{box_id}/odds")["prizes"] == before["prizes"]

    console.page.get_by_test_id("box-save").click()
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['catalog-odds']().series[0].data"
        ".map(d => d.value)) === JSON.stringify(want)", arg=shares(edited))
    published: dict[str, Any] = stack.get(f"/rewards/v1/boxes/{box_id}/odds")
    assert [prize["probability"] for prize in published["prizes"]] == shares(edited)
    assert pie(console, "catalog-odds") == shares(edited)
    # The definition kept everything else, with the new weights.
    definition = stack.get(f"/rewards/v1/boxes/{box_id}")["definition"]
    assert {prize["prize_id"]: prize["weight"] for prize in definition["prizes"]} == edited
    assert definition["name"] == "Console box" and definition["cost_points"] == 10
    # The statistics start over with the new definition: nothing drawn under it yet.
    assert stack.get(f"/rewards/v1/boxes/{box_id}/stats")["draws"] == 0
    console.page.locator('[data-testid="box-stats"] [data-state="empty"]').wait_for()
    console.screenshot("catalog-edited")


def test_weights_stay_within_what_the_api_takes(console: ConsolePage) -> None:
    stack = console.stack
    box_id = make_box(stack)
    open_box(console, stack.operator_key, box_id)
    # 0 is below the API's least weight (1): the input holds 1, and the preview with it.
    console.field("weight-silver").fill("0")
    clamped = {**WEIGHTS, "silver": 1}
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['catalog-odds-preview']().series[0].data"
        ".map(d => d.value)) === JSON.stringify(want)", arg=shares(clamped))
    assert console.page.get_by_test_id("invalid-weights").count() == 0
    # An emptied input keeps the definition's weight until a number is typed: nothing to save.
    console.field("weight-silver").fill("")
    console.page.wait_for_function(
        "want => JSON.stringify(window.__fuliCharts['catalog-odds-preview']().series[0].data"
        ".map(d => d.value)) === JSON.stringify(want)", arg=shares(WEIGHTS))
    assert console.page.get_by_test_id("box-save").is_disabled()
    assert [prize["probability"] for prize in
            stack.get(f"/rewards/v1/boxes/{box_id}/odds")["prizes"]] == shares(WEIGHTS)
