"""loadtests/stratify_bench.py end to end over a few thousand members, so that it cannot rot:
every pass timed in the full run, only the stratifications with --stratify-only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMBERS = 3000
PASSES = ("stratify_first", "stratify_second", "lifecycle_first", "tags_first",
          "lifecycle_next_day", "tags_next_day", "segment_put", "segment_count")


def stratify_bench(*flags: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "loadtests/stratify_bench.py", "--members", str(MEMBERS), *flags],
        cwd=REPO, capture_output=True, text=True, timeout=220, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["members"] == MEMBERS
    return figures


def timed(figures: dict[str, Any]) -> set[str]:
    return {name for name in PASSES if f"{name}_s" in figures}


@pytest.mark.timeout(240)
def test_the_full_run_times_every_pass() -> None:
    figures = stratify_bench()
    assert timed(figures) == set(PASSES)
    assert figures["stratify_first_s"] > 0 and figures["stratify_first_cpu_s"] >= 0
    assert 0 < figures["segment_members"] < MEMBERS
    assert figures["lifecycle_and_tags_vs_stratify"] > 0


@pytest.mark.timeout(240)
def test_stratify_only_times_the_two_stratifications() -> None:
    figures = stratify_bench("--stratify-only")
    assert timed(figures) == {"stratify_first", "stratify_second"}
    assert figures["stratify_first_s"] > 0
