"""The bench suite (loadtests/bench.py) end to end in its shortest form, so that it cannot rot:
every scenario against a fresh `fuli up`, each answering without a failure, and the blind box's
limited prize never drawn beyond its stock. Needs Locust (the `bench` extra, which `make test`
and `make bench` install)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parents[2]


def bench(out_dir: Path, *args: str, timeout: float) -> dict[str, Any]:
    """The report of the shortest bench run (two-second phases, eight users) with ``args``."""
    result = subprocess.run(
        [sys.executable, "loadtests/bench.py", "--duration", "2", "--scenario-duration", "2",
         "--users", "8", "--pg-clients", "4", "--out-dir", str(out_dir), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.timeout(240)
def test_every_scenario_answers_without_failures_or_oversell(tmp_path: Path) -> None:
    report = bench(tmp_path, timeout=220)

    assert report["locust"]["requests"] > 0 and report["locust"]["failures"] == 0
    light = report["light"]
    assert light["requests"] > 0 and light["failures"] == 0, light
    assert light["cpu_s"]["load_generator"] > 0 and report["ratio_light"] > 0
    assert report["pgbench"]["tps"] > 0
    assert list(report["scenarios"]) == list(SCENARIOS)
    for name, figures in report["scenarios"].items():
        assert figures["requests"] > 0, name
        assert figures["failures"] == 0, (name, figures.get("failure_samples"))
        assert figures["ratio_to_earn"] > 0, name
        assert "load_generator_cpu_s" in figures, name
    assert report["scenarios"]["batch"]["pgbench"]["events_per_s"] > 0

    box = report["scenarios"]["draw"]["oversell"]
    assert not box["oversold"] and box["adds_up"], box
    assert box["won_database"] <= box["stock"]
    perk = report["scenarios"]["redeem"]["stock"]
    assert not perk["oversold"] and perk["adds_up"], perk
    assert report["zero_oversell"] is True

    assert report["processes"] == {"supervisor": 1, "api": 1, "worker": 1}
    per_process = report["memory"]["per_process"]
    assert set(per_process) == {"supervisor", "api", "worker"}
    assert all(memory["peak_mib"] > 0 for memory in per_process.values())
    assert {goal["figure"] for goal in report["goals"]} >= {
        "scenarios.balance", "scenarios.batch", "scenarios.draw", "scenarios.latency",
        "scenarios.leaderboard", "memory.per_process"}


@pytest.mark.timeout(180)
def test_the_stack_can_run_several_api_processes(tmp_path: Path) -> None:
    report = bench(tmp_path, "--scenarios", "balance", "--no-light", "--api-processes", "2",
                   timeout=160)

    assert report["api_processes"] == 2
    assert report["processes"] == {"supervisor": 1, "api": 2, "worker": 1}
    assert report["locust"]["requests"] > 0 and report["locust"]["failures"] == 0
    balance = report["scenarios"]["balance"]
    assert balance["requests"] > 0 and balance["failures"] == 0
    # Memory is per process: each API process on its own, not the two added up.
    api = report["memory"]["per_process"]["api"]
    assert 0 < api["peak_mib"] < report["memory"]["peak_rss_mib"] - api["peak_mib"]
