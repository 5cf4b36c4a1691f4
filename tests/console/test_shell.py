"""The console's frame: where it is served, signing in and out, the tenant's identity, the
language, every page rendering, the Overview's charts against the API, and its weight."""

from __future__ import annotations

import gzip
import json

import httpx
from playwright.sync_api import Response

from tests.console.conftest import SCREENSHOTS, ConsolePage, ConsoleStack

PAGES = ["overview", "members", "tiers", "groups", "catalog", "campaigns", "tasks", "segments"]


def test_the_console_is_served_at_console(console_stack: ConsoleStack) -> None:
    index = httpx.get(console_stack.console_url)
    assert index.status_code == 200
    assert '<div id="app">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    script = index.text.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/console/assets/")
    asset = httpx.get(console_stack.url + script)
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    assert httpx.get(console_stack.url + "/").json()["console"] == "/console/"
    missing = httpx.get(console_stack.url + "/console/assets/no-such-file.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_signing_in_shows_the_tenant_its_time_zone_and_the_role(console: ConsolePage) -> None:
    stack = console.stack
    me = stack.get("/points/v1/whoami")
    console.sign_in(stack.admin_key)
    page = console.page
    assert page.get_by_test_id("tenant").inner_text() == me["tenant_id"] == "default"
    assert page.get_by_test_id("time-zone").inner_text() == me["time_zone"]
    assert page.get_by_test_id("role").inner_text() == "管理员"
    # The key is in this tab's sessionStorage, never in the address.
    assert stack.admin_key not in page.url
    assert page.evaluate("sessionStorage.getItem('fuli.console.key')") == stack.admin_key
    assert page.evaluate("localStorage.getItem('fuli.console.key')") is None
    page.reload()
    page.get_by_test_id("identity").wait_for()
    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("api-key").wait_for()
    assert page.evaluate("sessionStorage.getItem('fuli.console.key')") is None


WRONG_KEY = "fuli_0000000000000000_wrongwrongwrongwrong"


def test_a_wrong_key_shows_the_401_message(console: ConsolePage) -> None:
    refused = httpx.get(console.stack.url + "/points/v1/whoami",
                        headers={"Authorization": f"Bearer {WRONG_KEY}"})
    assert refused.status_code == 401
    envelope = refused.json()["error"]
    console.sign_in(WRONG_KEY, expect_failure=True)
    error = console.page.get_by_test_id("sign-in-error")
    error.wait_for()
    assert envelope["message"] in error.inner_text()
    assert "401 unauthorized" in error.inner_text()
    console.screenshot("sign-in-refused")
    console.expect_errors(1)  # the browser logs the refused request


def test_an_ingest_key_cannot_sign_in(console: ConsolePage) -> None:
    console.sign_in(console.stack.ingest_key, expect_failure=True)
    error = console.page.get_by_test_id("sign-in-error")
    error.wait_for()
    assert "403 forbidden" in error.inner_text()
    assert "ingest" in error.inner_text()
    assert console.page.evaluate("sessionStorage.getItem('fuli.console.key')") is None


def test_every_page_renders_for_an_admin(console: ConsolePage) -> None:
    console.sign_in(console.stack.admin_key)
    for name in [*PAGES, "webhooks"]:
        console.open(name)
        console.page.wait_for_load_state("networkidle")
        console.screenshot(f"admin-{name}")
    assert sorted(path.stem for path in SCREENSHOTS.glob("admin-*.png")) == sorted(
        f"admin-{name}" for name in [*PAGES, "webhooks"])


def test_an_operator_has_no_webhooks_page(console: ConsolePage) -> None:
    console.sign_in(console.stack.operator_key)
    assert console.page.get_by_test_id("role").inner_text() == "运营"
    menu = console.page.locator("[data-nav]")
    assert [menu.nth(i).get_attribute("data-nav") for i in range(menu.count())] == PAGES
    for name in PAGES:
        console.open(name)
        console.page.wait_for_load_state("networkidle")
        console.screenshot(f"operator-{name}")


def test_the_interface_switches_to_english_and_stays(console: ConsolePage) -> None:
    console.sign_in(console.stack.admin_key)
    nav = console.page.locator('[data-nav="overview"]')
    assert nav.inner_text() == "概览"
    console.page.get_by_test_id("locale").click()
    console.page.get_by_role("option", name="English").click()
    assert nav.inner_text() == "Overview"
    console.page.reload()
    console.page.get_by_test_id("identity").wait_for()
    assert console.page.locator('[data-nav="overview"]').inner_text() == "Overview"
    assert console.page.evaluate("document.documentElement.lang") == "en"
    console.page.evaluate("localStorage.removeItem('fuli.console.locale')")


def test_the_overview_draws_what_the_stats_api_answers(console: ConsolePage) -> None:
    stack = console.stack
    console.sign_in(stack.admin_key)
    console.page.locator('[data-page="overview"]').wait_for()
    issued, spent, expired, held = console.series("daily-points")
    (events,) = console.series("hourly-events")
    daily = console.drawer_call("daily")
    hourly = console.drawer_call("hourly")
    # What is drawn is what the page was answered ...
    assert issued == [day["issued"] for day in daily["days"]]
    assert spent == [-day["spent"] for day in daily["days"]]
    assert expired == [-day["expired"] for day in daily["days"]]
    assert held == [day["held"] for day in daily["days"]]
    assert events == [hour["events"] for hour in hourly["hours"]]
    # ... and what the API answers anyone asking the same.
    assert daily == stack.get("/points/v1/stats/daily", days=30)
    assert hourly["hours"][-1] == stack.get("/points/v1/stats/hourly", hours=48)["hours"][-1]
    # The walkthrough earned and granted points today: the chart is not empty.
    assert daily["days"][-1]["issued"] > 0
    assert len(issued) == 30
    console.screenshot("overview")


def test_the_initial_javascript_weighs_at_most_600_kb_gzipped(console: ConsolePage) -> None:
    scripts: dict[str, bytes] = {}

    def keep(response: Response) -> None:
        if response.request.resource_type == "script" and response.ok:
            scripts[response.url] = response.body()

    console.page.on("response", keep)
    console.page.goto(console.stack.console_url)
    console.page.get_by_test_id("api-key").wait_for()
    console.page.wait_for_load_state("networkidle")
    initial = sum(len(gzip.compress(body, 9)) for body in scripts.values())
    console.sign_in(console.stack.admin_key)
    console.page.locator('[data-page="overview"]').wait_for()
    console.chart("daily-points")
    overview = sum(len(gzip.compress(body, 9)) for body in scripts.values())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "weight.json").write_text(json.dumps(
        {"initial_js_gzip_bytes": initial, "overview_js_gzip_bytes": overview,
         "scripts": len(scripts)}))
    print(f"console JavaScript, gzip: sign-in page {initial / 1000:.1f} kB, "
          f"with Overview {overview / 1000:.1f} kB")
    assert initial <= 600_000
    assert overview <= 600_000
