"""How fast the operators' console shows its first page, and what it weighs.

In one run, on one machine:

1. start `fuli up` on a fresh embedded data directory (bench.py's Stack, as `make run` starts
   it, serving the built console/dist), seeded by examples/walkthrough.sh;
2. (a) baseline: the three API calls behind the Overview page (GET /points/v1/stats/daily,
   /stats/hourly, /stats/overview) sent at once over HTTP, the time until all three answered;
3. (b) first render: in headless Chromium (Playwright), a fresh browser context per run (cold
   cache) opens /console/#/overview already signed in (the key set in sessionStorage), and the
   time from the start of navigation until both Overview charts hold the API's numbers and the
   figures are on screen (`performance.now()` in the page);
4. the JavaScript the browser fetched, gzip-compressed: for the sign-in page alone, and up to the
   drawn Overview;
5. stop the stack and write loadtests/results/console-bench-<UTC time>.json (and print it),
   with medians and the ratio b / a.

    make console && .venv/bin/python loadtests/console_bench.py --runs 15
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, Response, sync_playwright

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests.bench import BenchError, Stack, git_commit, machine, positive  # noqa: E402

OVERVIEW_CALLS = ("/points/v1/stats/daily?days=30", "/points/v1/stats/hourly?hours=48",
                  "/points/v1/stats/overview")
DRAWN = """() => {
  const charts = window.__fuliCharts || {};
  const drawn = (name) => charts[name] && (charts[name]().series || []).length > 0;
  return drawn("daily-points") && drawn("hourly-events")
    && document.querySelector('[data-testid="overview-cards"]') !== null;
}"""


def seed(base_url: str, admin_key: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_URL=base_url, FULI_ADMIN_KEY=admin_key,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run(["bash", str(REPO / "examples" / "walkthrough.sh")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"the walkthrough failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def api_baseline_ms(base_url: str, key: str, runs: int) -> list[float]:
    timings = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http, \
            ThreadPoolExecutor(len(OVERVIEW_CALLS)) as pool:
        for _ in range(runs):
            started = time.perf_counter()
            answers = list(pool.map(http.get, OVERVIEW_CALLS))
            timings.append((time.perf_counter() - started) * 1000)
            for answer in answers:
                if answer.status_code != 200:
                    raise BenchError(f"{answer.request.url} answered {answer.status_code}")
    return timings


def keep_scripts(page: Page) -> dict[str, bytes]:
    """The scripts the page fetches from now on, by URL (filled in as they arrive)."""
    scripts: dict[str, bytes] = {}

    def keep(response: Response) -> None:
        if response.request.resource_type == "script" and response.ok:
            scripts[response.url] = response.body()

    page.on("response", keep)
    return scripts


def gzip_bytes(scripts: dict[str, bytes]) -> int:
    return sum(len(gzip.compress(body, 9)) for body in scripts.values())


def first_render_ms(browser: Browser, console_url: str, key: str) -> tuple[float, int]:
    """(ms from navigation start to the drawn Overview, gzip bytes of the scripts fetched)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('fuli.console.key', {json.dumps(key)})")
    try:
        page = context.new_page()
        scripts = keep_scripts(page)
        page.goto(f"{console_url}#/overview")
        page.wait_for_function(DRAWN, polling="raf", timeout=30_000)
        rendered = float(page.evaluate("performance.now()"))
        page.wait_for_load_state("networkidle")
        return rendered, gzip_bytes(scripts)
    finally:
        context.close()


def sign_in_page_weight(browser: Browser, console_url: str) -> int:
    context = browser.new_context()
    try:
        page = context.new_page()
        scripts = keep_scripts(page)
        page.goto(console_url)
        page.get_by_test_id("api-key").wait_for()
        page.wait_for_load_state("networkidle")
        return gzip_bytes(scripts)
    finally:
        context.close()


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not (REPO / "console" / "dist" / "index.html").is_file():
        raise BenchError("console/dist is not built: run `make console` first")
    chromium = os.environ.get("FULI_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise BenchError("Chromium is missing: apt-get install chromium (or set FULI_CHROMIUM)")
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="fuli-console-bench-") as data_dir:
        stack = Stack(Path(data_dir), Path(data_dir) / "fuli.log", group_commit=True)
        try:
            admin_key, _ = stack.wait_ready()
            seed(stack.base_url, admin_key)
            console_url = f"{stack.base_url}/console/"
            baseline = api_baseline_ms(stack.base_url, admin_key, args.runs)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium)
                try:
                    sign_in_weight = sign_in_page_weight(browser, console_url)
                    first_render_ms(browser, console_url, admin_key)  # warms the server up
                    renders = [first_render_ms(browser, console_url, admin_key)
                               for _ in range(args.runs)]
                finally:
                    browser.close()
        finally:
            stack.stop()
    render_ms = [ms for ms, _ in renders]
    return {
        "bench": "console",
        "started_at": started_at.isoformat(),
        "commit": git_commit(),
        "machine": machine(),
        "runs": args.runs,
        "api_baseline_ms": {"median": median(baseline), "max": round(max(baseline), 1)},
        "overview_first_render_ms": {"median": median(render_ms), "max": round(max(render_ms), 1),
                                     "all": [round(ms, 1) for ms in render_ms]},
        "ratio_render_to_api": round(statistics.median(render_ms) / statistics.median(baseline),
                                     2),
        "javascript_gzip_kb": {"sign_in_page": round(sign_in_weight / 1000, 1),
                               "with_overview": round(renders[-1][1] / 1000, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=positive, default=15, help="page loads measured")
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results",
                        help="where the JSON goes (default loadtests/results)")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except BenchError as error:
        print(f"console bench: {error}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out_dir / f"console-bench-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
