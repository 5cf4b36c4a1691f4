"""The supervisor of `fuli up`, driven tick by tick on a clock of the test's own, with real child
processes that exit, are killed, or cannot be started."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import pytest

from services.runtime.supervisor import ProcessChild, Supervisor, backoff_s

EXITS = [sys.executable, "-c", "raise SystemExit(3)"]
SLEEPS = [sys.executable, "-c", "import time; time.sleep(120)"]


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    return [record.fields for record in caplog.records  # type: ignore[attr-defined]
            if record.name == "fuli.supervisor" and record.getMessage() == message]


def dead(child: ProcessChild) -> None:
    assert child.process is not None
    child.process.wait(timeout=30)


def test_backoff_doubles_from_one_second_up_to_thirty() -> None:
    assert [backoff_s(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_child_that_keeps_dying_is_restarted_ever_later_until_it_runs_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fuli.supervisor")
    child = ProcessChild("job", EXITS, os.environ)
    supervisor = Supervisor([child])
    now = 1000.0
    supervisor.start(now)
    pids = [child.pid]
    for expected in (1, 2, 4, 8, 16, 30, 30):
        dead(child)
        supervisor.tick(now)
        died = logged(caplog, "child died; restarting it")[-1]
        assert died["how"] == "exited with status 3" and died["restart_in_s"] == expected
        now += expected - 0.01
        supervisor.tick(now)
        assert child.pid == pids[-1], "restarted before its back-off"
        now += 0.01
        supervisor.tick(now)
        assert child.pid not in pids
        pids.append(child.pid)
    assert [r["restarts"] for r in logged(caplog, "child restarted")] == [1, 2, 3, 4, 5, 6, 7]

    dead(child)
    now += 60  # it ran a minute before dying: back to the first delay
    supervisor.tick(now)
    assert logged(caplog, "child died; restarting it")[-1]["restart_in_s"] == 1


def test_a_killed_child_is_restarted_and_stop_terminates_it(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fuli.supervisor")
    child = ProcessChild("sleeper", SLEEPS, os.environ)
    supervisor = Supervisor([child])
    supervisor.start(0.0)
    first = child.process
    assert first is not None
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    supervisor.tick(0.0)
    assert logged(caplog, "child died; restarting it")[-1]["how"] == "killed by SIGKILL"
    supervisor.tick(1.0)
    assert child.process is not first and child.process is not None
    supervisor.stop()
    assert child.process.returncode == -signal.SIGTERM


def test_a_restart_that_fails_is_tried_again_later(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fuli.supervisor")
    child = ProcessChild("job", EXITS, os.environ)
    supervisor = Supervisor([child])
    supervisor.start(0.0)
    dead(child)
    supervisor.tick(0.0)
    child.argv = ["/nonexistent/fuli"]
    supervisor.tick(1.0)
    failed = logged(caplog, "restart failed; trying again")[-1]
    assert "FileNotFoundError" in failed["error"] and failed["restart_in_s"] == 2
    child.argv = SLEEPS
    supervisor.tick(2.9)
    assert not logged(caplog, "child restarted")
    supervisor.tick(3.0)
    assert logged(caplog, "child restarted")[-1]["restarts"] == 1
    supervisor.stop()
