"""The Segments page against the tiers API: the list of segments, the preview count of a
filter composed on the page (as the previews API counts it), saving it and its frozen member
list, and points issued to the segment."""

from __future__ import annotations

from pathlib import Path

from tests.console.conftest import ConsolePage, ConsoleStack


def known_members(stack: ConsoleStack) -> list[str]:
    """Every known member, through a segment of the empty filter."""
    put = stack.api().put("/tiers/v1/segments/everyone", json={"name": "Everyone", "filter": {}})
    assert put.status_code == 200, put.text
    members = stack.get("/tiers/v1/segments/everyone/members", limit=1000)
    return [item["member_id"] for item in members["items"]]


def open_segments(console: ConsolePage) -> None:
    console.sign_in(console.stack.operator_key)
    console.open("segments")
    console.page.get_by_test_id("segment-list").wait_for()
    # The list is there before its rows: they come with the API's answer, all at once.
    console.page.locator("[data-segment-id]").first.wait_for()


def test_the_list_shows_the_segments_the_api_lists(console: ConsolePage) -> None:
    stack = console.stack
    everyone = known_members(stack)
    assert len(everyone) >= 3  # the walkthrough's members
    listed = stack.get("/tiers/v1/segments")["items"]
    open_segments(console)
    cells = console.page.locator("[data-segment-id]")
    assert [cells.nth(i).get_attribute("data-segment-id") for i in range(cells.count())] == [
        segment["segment_id"] for segment in listed]
    counts = console.page.get_by_test_id("segment-count")
    assert [int(counts.nth(i).inner_text()) for i in range(counts.count())] == [
        segment["count"] for segment in listed]
    assert dict(zip((s["segment_id"] for s in listed), (s["count"] for s in listed),
                    strict=True))["everyone"] == len(everyone)

    # Its frozen members, as the API pages them.
    console.page.locator('[data-segment-id="everyone"]').click()
    console.page.get_by_test_id("segment-members").locator("[data-member-id]").first.wait_for()
    shown = console.page.get_by_test_id("segment-members").locator("[data-member-id]")
    assert [shown.nth(i).get_attribute("data-member-id") for i in range(shown.count())] == \
        everyone[:50]
    console.screenshot("segments-list")

    # Its export is the API's CSV, downloaded through the signed-in client.
    with console.page.expect_download() as download:
        console.page.get_by_test_id("segment-export").click()
    assert download.value.suggested_filename == "everyone.csv"
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    csv = stack.api().get("/tiers/v1/segments/everyone/export.csv")
    assert csv.status_code == 200
    assert exported == csv.text
    assert exported.splitlines() == ["member_id", *everyone]


def test_the_preview_count_is_the_previews_api_s(console: ConsolePage) -> None:
    stack = console.stack
    everyone = known_members(stack)
    chosen = everyone[0]
    tagged = stack.api(stack.operator_key).put(f"/tiers/v1/members/{chosen}/tags/console-vip")
    assert tagged.status_code == 200, tagged.text
    open_segments(console)
    page = console.page
    page.get_by_test_id("segment-create").click()

    # The empty filter first: every known member.
    page.get_by_test_id("segment-preview").click()
    page.get_by_test_id("preview-count").wait_for()
    everyone_count = stack.api().post("/tiers/v1/segments/previews", json={"filter": {}})
    assert int(page.get_by_test_id("preview-count").get_attribute("data-count") or "-1") \
        == everyone_count.json()["count"] == len(everyone)

    # Then members with the tag: the count follows the filter.
    page.get_by_test_id("filter-tagsAll").click()
    page.keyboard.type("console-vip")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    with page.expect_response(lambda r: r.url.endswith("/tiers/v1/segments/previews")):
        page.get_by_test_id("segment-preview").click()
    page.locator('[data-testid="preview-count"][data-count="1"]').wait_for()
    answer = stack.api().post("/tiers/v1/segments/previews",
                              json={"filter": {"tags": {"all": ["console-vip"]}}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 1
    assert page.get_by_test_id("preview-count").get_attribute("data-count") == "1"

    # Saved, it freezes that one member.
    console.field("segment-form-id").fill("console-vip")
    console.field("segment-form-name").fill("Console VIP")
    page.get_by_test_id("segment-save").click()
    page.get_by_test_id("segment-members").locator(f'[data-member-id="{chosen}"]').wait_for()
    saved = stack.get("/tiers/v1/segments/console-vip")
    assert saved["filter"]["tags"] == {"all": ["console-vip"], "any": [], "none": []}
    assert saved["count"] == 1
    console.screenshot("segments-preview")


def test_points_issued_to_a_segment_reach_its_members(console: ConsolePage) -> None:
    stack = console.stack
    everyone = known_members(stack)
    before = {m: stack.get(f"/points/v1/members/{m}")["available"] for m in everyone}
    open_segments(console)
    page = console.page
    page.locator('[data-segment-id="everyone"]').click()
    page.get_by_test_id("segment-grant").click()
    console.field("grant-points").fill("7")
    console.field("grant-reason").fill("console thanks")
    with page.expect_response(lambda r: r.url.endswith("/points/v1/grants")) as granted:
        page.get_by_test_id("grant-submit").click()
    assert granted.value.status == 201
    assert granted.value.json()["item_count"] == len(everyone)
    after = {m: stack.get(f"/points/v1/members/{m}")["available"] for m in everyone}
    assert after == {m: points + 7 for m, points in before.items()}
