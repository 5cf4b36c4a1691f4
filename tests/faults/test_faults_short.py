"""A short run of every fault: 10 s of mixed traffic each, on one stack of real processes, then
every invariant, derived state included, after at most 60 s of settling (tests/faults/suite.py
says how the settling ends). `make faults` runs the same at length; the table of the run is
printed at the end. The RabbitMQ restart runs when FULI_BROKER_URL is an amqp:// URL and
`rabbitmqctl` is at hand."""

from __future__ import annotations

import pytest

from tests.faults.injection import FAULTS
from tests.faults.stack import FaultStack
from tests.faults.suite import Plan, Result, run_scenario, table

# An operation may keep retrying 40 s after the traffic: a pool open under way when Valkey dies
# answers 409 in_progress until its claim (kept by Valkey's append-only file) lapses, 30 s on.
PLAN = Plan(duration_s=10, users=12, drain_s=40, settle_bound_s=60)
SHORT = ["worker_kill", "api_kill", "pg_terminate", "redis_flushall", "redis_kill",
         "broker_restart"]


@pytest.mark.parametrize("name", SHORT)
async def test_fault(fault_stack: FaultStack, fault_results: list[Result], name: str) -> None:
    fault = FAULTS[name]
    if fault.needs_rabbitmq and not (fault_stack.rabbit and fault_stack.rabbit.restartable):
        pytest.skip("needs FULI_BROKER_URL=amqp://... and rabbitmqctl")
    result = await run_scenario(fault_stack, fault, PLAN)
    fault_results.append(result)
    assert result.ok, f"{fault.summary}: invariants broken\n{table([result])}"
