"""loadtests/request_cost.py end to end in its shortest form, so that it cannot rot: each route
measured against a fresh `fuli up`, with its statements counted from PostgreSQL's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("route", ["draw", "redeem"])
def test_each_route_is_measured_with_its_statements(route: str) -> None:
    result = subprocess.run(
        [sys.executable, "loadtests/request_cost.py", "--route", route, "--requests", "20",
         "--statements"], cwd=REPO, capture_output=True, text=True, timeout=220, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["route"] == route and report["requests"] == 20 and report["worker_paused"]
    cpu = report["cpu_ms_per_request"]
    assert cpu["api"] > 0 and cpu["postgres"] > 0 and report["wall_ms_per_request"] > 0
    statements = report["statements_per_request"]
    # Every request opens and commits transactions and claims a points hold; the paused
    # worker runs nothing, and the logging switched on and off is not counted.
    assert statements["BEGIN;"] >= 1 and statements["COMMIT;"] == statements["BEGIN;"]
    assert any(text.startswith("WITH claim AS") for text in statements)
    assert not any(text.startswith(("ALTER SYSTEM", "SELECT pg_reload_conf"))
                   for text in statements)
    parts = [n for text, n in statements.items() if text != "total"]
    assert statements["total"] == pytest.approx(sum(parts), abs=0.005 * len(parts))
