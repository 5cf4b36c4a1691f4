"""/health/ready tells why it is not ready: the worker's heartbeat and the event lag, read from
the real PostgreSQL; /metrics exports both."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import (
    DEFAULT_READY_MAX_HEARTBEAT_AGE_S,
    DEFAULT_READY_MAX_LAG_S,
    Settings,
    SettingsError,
    load_settings,
)
from services.runtime.stack import Stack

WORKER = "health-test-host:1"


@pytest.fixture
async def heartbeats(resources: Resources) -> AsyncIterator[None]:
    # No worker runs during these tests: the table is theirs to set.
    await resources.pool.execute("DELETE FROM fuli.worker_heartbeats")
    yield
    await resources.pool.execute("DELETE FROM fuli.worker_heartbeats")


async def beat(resources: Resources, seconds_ago: float) -> None:
    await resources.pool.execute(
        "INSERT INTO fuli.worker_heartbeats (worker_id, host, pid, last_beat_at)"
        " VALUES ($1, 'health-test-host', 1, now() - make_interval(secs => $2))"
        " ON CONFLICT (worker_id) DO UPDATE SET last_beat_at = excluded.last_beat_at",
        WORKER, seconds_ago)


@pytest.fixture
async def checked(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    """A stack whose readiness checks the worker, as under `fuli up`."""
    ready_settings = msgspec.structs.replace(settings, ready_max_heartbeat_age_s=30.0,
                                             ready_max_lag_s=30.0)
    stack = Stack(ready_settings, SERVICES)
    await stack.open(dataclasses.replace(resources, settings=ready_settings))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                     base_url="http://fuli") as http:
            yield http
    finally:
        await stack.close()


async def test_without_a_worker_beside_it_readiness_checks_the_servers_only(
        client: httpx.AsyncClient, heartbeats: None) -> None:
    answer = await client.get("/health/ready")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_a_stale_heartbeat_makes_readiness_fail_naming_it(
        checked: httpx.AsyncClient, resources: Resources, heartbeats: None) -> None:
    answer = await checked.get("/health/ready")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json()["checks"]["worker"] == "no heartbeat: no worker is running"

    await beat(resources, seconds_ago=45)
    answer = await checked.get("/points/health/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["worker"].startswith(
        "stale heartbeat: the newest is 45."), answer.json()
    assert answer.json()["checks"]["worker"].endswith("s old (limit 30 s)")

    await beat(resources, seconds_ago=1)
    checks = (await checked.get("/health/ready")).json()["checks"]
    assert checks["worker"] == "ok" and checks["postgres"] == "ok"

    metrics = (await checked.get("/metrics")).text
    age = next(line for line in metrics.splitlines()
               if line.startswith("fuli_worker_heartbeat_age_seconds "))
    assert 1 <= float(age.split()[1]) < 30


async def test_an_old_unapplied_event_makes_readiness_fail_naming_the_lag(
        checked: httpx.AsyncClient, resources: Resources, heartbeats: None) -> None:
    await beat(resources, seconds_ago=0)
    event_id = await resources.pool.fetchval(
        "INSERT INTO fuli.outbox (service, tenant_id, event_type, payload, created_at)"
        " VALUES ('health-test', 'health-test', 'Unrouted', '{}'::bytea,"
        " now() - interval '10 minutes') RETURNING event_id")
    try:
        answer = await checked.get("/health/ready")
        assert answer.status_code == 503
        assert answer.json()["checks"]["event_lag"].startswith(
            "behind: the oldest unapplied event is "), answer.json()
        assert answer.json()["checks"]["worker"] == "ok"
        metrics = (await checked.get("/metrics")).text
        lag = next(line for line in metrics.splitlines()
                   if line.startswith("fuli_outbox_lag_seconds "))
        assert float(lag.split()[1]) >= 600
    finally:
        await resources.pool.execute("DELETE FROM fuli.outbox WHERE event_id = $1", event_id)


def test_fuli_up_fills_in_the_readiness_limits_that_were_left_unset() -> None:
    unset = load_settings({})
    assert unset.ready_max_heartbeat_age_s is None and unset.ready_max_lag_s is None
    filled = unset.with_worker_readiness()
    assert filled.ready_max_heartbeat_age_s == DEFAULT_READY_MAX_HEARTBEAT_AGE_S
    assert filled.ready_max_lag_s == DEFAULT_READY_MAX_LAG_S
    chosen = load_settings({"FULI_READY_MAX_HEARTBEAT_AGE_S": "0",
                            "FULI_READY_MAX_LAG_S": "120"}).with_worker_readiness()
    assert chosen.ready_max_heartbeat_age_s == 0 and chosen.ready_max_lag_s == 120


def test_a_heartbeat_limit_below_the_heartbeat_interval_is_refused() -> None:
    with pytest.raises(SettingsError, match="FULI_READY_MAX_HEARTBEAT_AGE_S"):
        load_settings({"FULI_READY_MAX_HEARTBEAT_AGE_S": "2", "FULI_WORKER_HEARTBEAT_S": "3"})
    with pytest.raises(SettingsError, match="FULI_HTTP_KEEP_ALIVE_S"):
        load_settings({"FULI_HTTP_KEEP_ALIVE_S": "0"})
