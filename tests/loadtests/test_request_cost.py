"""loadtests/request_cost.py end to end in its shortest form, so that it cannot rot: each route
measured against a fresh `fuli up`, with its statements counted and timed from PostgreSQL's log,
and the statements a draw and a redemption were rid of staying gone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 20


def request_cost(route: str, members: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "loadtests/request_cost.py", "--route", route, "--requests",
         str(REQUESTS), "--members", str(members), "--statements"],
        cwd=REPO, capture_output=True, text=True, timeout=220, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["route"] == route and report["requests"] == REQUESTS
    assert report["worker_paused"]
    cpu = report["cpu_ms_per_request"]
    assert cpu["api"] > 0 and cpu["postgres"] > 0 and report["wall_ms_per_request"] > 0
    # Every counted statement is timed, and nothing is timed that was not run: its parse and
    # bind go with its execute. PostgreSQL's time for them fits in the wall time.
    counted, timed = report["statements_per_request"], report["statement_ms_per_request"]
    assert set(timed) == set(counted)
    assert timed["total"] > 0 and all(ms >= 0 for ms in timed.values()), timed
    assert timed["total"] == pytest.approx(  # each rounded to a thousandth
        sum(ms for words, ms in timed.items() if words != "total"), abs=0.001 * len(timed))
    assert timed["total"] < report["wall_ms_per_request"]
    return report


def first_words(statements: dict[str, float]) -> set[str]:
    return {text for text in statements if text != "total"}


@pytest.mark.timeout(240)
def test_a_draw_reads_once_before_it_pays_and_claims_in_the_ledgers_statement() -> None:
    # Ten members for twenty draws: the second draw of each locks its existing row.
    statements = request_cost("draw", members=10)["statements_per_request"]
    # One read before anything moves: the earlier try, the box, the member and the prizes.
    assert statements["SELECT s.* FROM"] == 1
    # No read of the draw, the prizes or the member's row on their own, and no claim of a
    # points call separate from its ledger function.
    assert not first_words(statements) & {"SELECT draw_id, box_id,", "SELECT prize_id, name,",
                                          "SELECT pity_counter, day,",
                                          "INSERT INTO fuli.idempotency"}
    # The hold and the capture each claim their id and store their answer: two points calls a
    # draw and a grant for a points prize; the worker, paused, ran nothing in between.
    assert statements["WITH claim AS"] == statements["UPDATE fuli.idempotency SET"] >= 2
    assert statements["BEGIN;"] == statements["COMMIT;"] == statements["WITH claim AS"] + 1
    # Fifteen statements a draw (the read, the draw's row, three transactions of four and its
    # completion), and four for each grant of a points prize; give or take a statement the API
    # process runs for itself now and then (such as reading an API key again), not one a draw.
    grants = statements["WITH claim AS"] - 2
    assert statements["total"] == pytest.approx(15 + 4 * grants, abs=0.1), statements


@pytest.mark.timeout(240)
def test_a_redemption_reads_once_before_it_holds() -> None:
    statements = request_cost("redeem", members=2000)["statements_per_request"]
    assert statements["SELECT r.redemption_id AS"] == 1
    assert not first_words(statements) & {"SELECT redemption_id, member_id,", "SELECT tier FROM",
                                          "INSERT INTO fuli.idempotency"}
    assert statements["WITH claim AS"] == statements["UPDATE fuli.idempotency SET"] == 2
    assert statements["BEGIN;"] == statements["COMMIT;"] == 4
