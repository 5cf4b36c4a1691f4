"""Browser tests of the operators' console: headless Chromium (Debian's `chromium`) driven by
Playwright against `fuli up` started as `make run` starts it, in a fresh data directory,
seeded by the README's walkthrough. Every page a test opens must render without errors in the
browser's console; screenshots go to .fuli/console-screenshots/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, sync_playwright

from tests.e2e.process import REPO, WALKTHROUGH, make_run_stack, walkthrough_env

CONSOLE_DIST = REPO / "console" / "dist"
SCREENSHOTS = REPO / ".fuli" / "console-screenshots"


def chromium_path() -> str:
    found = os.environ.get("FULI_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the browser tests need Chromium: `apt-get install chromium` (make test "
                    "installs it where apt-get may be used), or set FULI_CHROMIUM to its path")
    return found


@dataclass
class ConsoleStack:
    url: str
    admin_key: str
    operator_key: str
    ingest_key: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def console_url(self) -> str:
        return f"{self.url}/console/"

    def api(self, key: str | None = None) -> httpx.Client:
        """An HTTP client of the API with ``key`` (the admin key by default)."""
        key = key or self.admin_key
        if key not in self.clients:
            self.clients[key] = httpx.Client(base_url=self.url, timeout=30,
                                             headers={"Authorization": f"Bearer {key}"})
        return self.clients[key]

    def get(self, path: str, key: str | None = None, **params: Any) -> Any:
        """The body of a GET that must answer 200."""
        response = self.api(key).get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture(scope="session")
def console_stack() -> Iterator[ConsoleStack]:
    if not (CONSOLE_DIST / "index.html").is_file():
        pytest.fail("console/dist is not built: `make test` builds it (`make console`)")
    with make_run_stack("fuli-console-") as (server, admin):
        seed = subprocess.run(["bash", str(WALKTHROUGH)], cwd=REPO, capture_output=True,
                              text=True, timeout=300, check=False,
                              env=walkthrough_env(server.base_url, admin))
        assert seed.returncode == 0, seed.stdout + seed.stderr
        keys: dict[str, str] = {}
        with httpx.Client(base_url=server.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"}) as http:
            for role in ("operator", "ingest"):
                made = http.post("/points/v1/keys", json={"role": role, "label": "console"})
                assert made.status_code == 201, made.text
                keys[role] = made.json()["key"]
        stack = ConsoleStack(server.base_url, admin, keys["operator"], keys["ingest"])
        try:
            yield stack
        finally:
            for client in stack.clients.values():
                client.close()


# Per module: Playwright's synchronous API runs an event loop in this thread while it is open,
# and the suite's asynchronous tests that follow need the thread to themselves.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


class ConsolePage:
    """A browser tab on the console that records what the browser's console reports."""

    def __init__(self, page: Page, stack: ConsoleStack) -> None:
        self.page = page
        self.stack = stack
        self.errors: list[str] = []
        # Answers >= 400, to say which request a "Failed to load resource" error was.
        self.refused: list[str] = []
        page.on("console", self._on_console)
        page.on("response", lambda response: self.refused.append(
            f"{response.status} {response.request.method} {response.url}")
            if response.status >= 400 else None)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def expect_errors(self, count: int) -> list[str]:
        """Take the errors logged so far, which the test expected (a refused request logs
        one), so that teardown checks only the rest."""
        taken, self.errors = self.errors, []
        assert len(taken) == count, taken
        return taken

    def sign_in(self, key: str, *, expect_failure: bool = False) -> None:
        self.page.goto(self.stack.console_url)
        self.field("api-key").fill(key)
        self.page.get_by_test_id("sign-in").click()
        if not expect_failure:
            self.page.get_by_test_id("identity").wait_for()

    def field(self, test_id: str) -> Locator:
        """The <input> of an Element Plus field (its test id lands on the input or around it)."""
        return self.page.locator(
            f'input[data-testid="{test_id}"], [data-testid="{test_id}"] input').first

    def open(self, name: str) -> None:
        """Open a page from the menu and wait for it."""
        self.page.locator(f'[data-nav="{name}"]').click()
        self.page.locator(f'[data-page="{name}"]').wait_for()

    def settled(self) -> None:
        """Wait until the page has no request in flight and shows no loading state."""
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function(
            "() => ![...document.querySelectorAll('.el-loading-mask')]"
            ".some(mask => mask.offsetParent !== null)")

    def chart(self, name: str) -> Any:
        """The option ECharts holds for the chart called ``name`` (what it draws), once the
        page's calls have been answered; the chart must have a canvas of some size."""
        self.settled()
        self.page.wait_for_function(
            "name => window.__fuliCharts && window.__fuliCharts[name] "
            "&& window.__fuliCharts[name]()", arg=name)
        size = self.page.evaluate(
            "name => { const c = document.querySelector(`[data-chart='${name}'] canvas`);"
            " return c ? [c.width, c.height] : [0, 0]; }", name)
        assert size[0] > 0 and size[1] > 0, f"chart {name} is drawn on no canvas: {size}"
        return self.page.evaluate("name => window.__fuliCharts[name]()", name)

    def series(self, name: str) -> list[list[Any]]:
        """The data of each series the chart draws."""
        return [list(series["data"]) for series in self.chart(name)["series"]]

    def drawer_call(self, name: str) -> Any:
        """The body the data drawer shows for the call ``name``."""
        self.page.get_by_test_id("data-drawer-button").click()
        section = self.page.locator(f'[data-call="{name}"]')
        section.wait_for()
        body = json.loads(section.get_by_test_id("call-body").inner_text())
        self.page.keyboard.press("Escape")
        section.wait_for(state="hidden")
        return body

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def console(browser: Browser, console_stack: ConsoleStack) -> Iterator[ConsolePage]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                  timezone_id="UTC")
    context.set_default_timeout(15_000)
    tab = ConsolePage(context.new_page(), console_stack)
    try:
        yield tab
        assert tab.errors == [], (tab.errors, tab.refused)
    finally:
        context.close()
