"""The faults, each injected while the traffic runs and then repaired the way an operator's
supervisor would (a killed process is started again after a short pause).

Each fault is an async function of the stack and the traffic's duration; it returns what it did,
with times relative to the start of the traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tests.faults.stack import FaultStack

# A killed process stays down this long before it is started again, as under a supervisor
# with back-off.
RESTART_PAUSE_S = 2.0
REDIS_OUTAGE_S = 3.0
# A process is killed once in a short run, twice in a longer one (a restart takes a few
# seconds, which a short run cannot give twice).
TWICE_FROM_S = 30
BROKER_OUTAGE_S = 3.0


class Timeline:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lines: list[str] = []

    def note(self, what: str) -> None:
        self.lines.append(f"{time.monotonic() - self.start:5.1f}s {what}")

    async def until(self, fraction: float, duration_s: float) -> None:
        await asyncio.sleep(max(0.0, self.start + fraction * duration_s - time.monotonic()))


Inject = Callable[[FaultStack, float, Timeline], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    inject: Inject
    needs_rabbitmq: bool = False


async def _none(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    timeline.note("no fault")


def _kill_times(duration_s: float) -> tuple[float, ...]:
    return (0.3, 0.65) if duration_s >= TWICE_FROM_S else (0.3,)


async def _worker_kill(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    for at in _kill_times(duration_s):
        await timeline.until(at, duration_s)
        timeline.note("SIGKILL the worker")
        await asyncio.to_thread(stack.kill_worker)
        await asyncio.sleep(RESTART_PAUSE_S)
        await asyncio.to_thread(stack.start_worker)
        timeline.note("worker started again")


async def _api_kill(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    for at in _kill_times(duration_s):
        await timeline.until(at, duration_s)
        timeline.note("SIGKILL the API's process group")
        await asyncio.to_thread(stack.kill_api)
        await asyncio.sleep(RESTART_PAUSE_S)
        await asyncio.to_thread(stack.start_api)
        timeline.note("API started again, answering")


async def _pg_terminate(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    for at in (0.25, 0.5, 0.75):
        await timeline.until(at, duration_s)
        terminated = await stack.terminate_backends()
        timeline.note(f"pg_terminate_backend: {terminated} 'fuli%' backends")


async def _redis_flushall(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    for at in (0.3, 0.6):
        await timeline.until(at, duration_s)
        timeline.note("FLUSHALL")
        await asyncio.to_thread(stack.flushall)


async def _redis_kill(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    await timeline.until(0.3, duration_s)
    timeline.note("SIGKILL Valkey")
    await asyncio.to_thread(stack.kill_redis)
    await asyncio.sleep(REDIS_OUTAGE_S)
    await asyncio.to_thread(stack.start_redis)
    timeline.note("Valkey started again (same socket and data)")


async def _broker_restart(stack: FaultStack, duration_s: float, timeline: Timeline) -> None:
    assert stack.rabbit is not None
    await timeline.until(0.3, duration_s)
    timeline.note("RabbitMQ stop_app")
    await asyncio.to_thread(stack.rabbit.stop_app)
    await asyncio.sleep(BROKER_OUTAGE_S)
    await asyncio.to_thread(stack.rabbit.start_app)
    timeline.note("RabbitMQ start_app")


FAULTS: dict[str, Fault] = {fault.name: fault for fault in [
    Fault("none", "baseline: the same traffic without a fault", _none),
    Fault("worker_kill", "SIGKILL the worker (twice from 30 s of traffic), start it again "
          "after 2 s", _worker_kill),
    Fault("api_kill", "SIGKILL the API's process group (twice from 30 s), start it again after 2 s",
          _api_kill),
    Fault("pg_terminate", "pg_terminate_backend of every 'fuli%' backend, three times",
          _pg_terminate),
    Fault("redis_flushall", "FLUSHALL twice", _redis_flushall),
    Fault("redis_kill", "SIGKILL Valkey, start it again after 3 s (same socket, same data)",
          _redis_kill),
    Fault("broker_restart", "RabbitMQ stop_app, start_app after 3 s", _broker_restart,
          needs_rabbitmq=True),
]}
