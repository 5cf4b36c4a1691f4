"""The stack of the fault tests, and their table at the end of the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.stack import FaultStack
from tests.faults.suite import Result, table

RESULTS = pytest.StashKey[list[Result]]()
# A short run has little time to settle: events a consumer has not applied are sent again
# after 5 s rather than the default (a setting the services ignore where it does not exist).
SHORT_RUN_ENV = {"FULI_EVENT_RESEND_AFTER_S": "5"}


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    """Its own PostgreSQL and Valkey (the suite kills and flushes them), the API and the
    worker as child processes; RabbitMQ too when FULI_BROKER_URL names one (with
    `rabbitmqctl`, the broker_restart fault then restarts that node). The data directory is
    not under pytest's base directory: pytest takes other users' access to that away, and
    PostgreSQL runs as its own user when the tests run as root."""
    root = Path(tempfile.mkdtemp(prefix="fuli-faults-"))
    stack = FaultStack(root, os.environ.get("FULI_BROKER_URL") or None, SHORT_RUN_ENV)
    try:
        stack.start()
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fault_results(request: pytest.FixtureRequest) -> list[Result]:
    """Where each fault test puts its result, for the table printed at the end."""
    return request.config.stash.setdefault(RESULTS, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, [])
    if results:
        terminalreporter.section("fault injection")
        terminalreporter.write_line(table(results))
