"""Red-packet pools through a Redis outage: while Redis is down, opens answer 503 with
Retry-After and charge nothing; when it is back (empty, without the scripts) they work again
without restarting anything, the shares' state rebuilt from PostgreSQL, no packet paid twice.

The app under test runs on a Valkey of its own, stopped and started by the test; the session's
Valkey stays up for every other test."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from services.composition.registry import SERVICES
from services.rewards.red_packets.actors import settle_red_packets
from services.rewards.red_packets.rules import escrow_of
from services.rewards.red_packets.shares import keys
from services.runtime.embedded import EmbeddedValkey
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.rewards.red_packets.test_red_packets import make_packet, make_pool, run
from tests.support.api import Rewards, Tenant, error_code, make_tenant, uid

COST = 2


@dataclass
class OwnRedisApp:
    valkey: EmbeddedValkey
    rewards: Rewards
    resources: Resources
    settings: Settings


@pytest.fixture
async def own_redis_app(settings: Settings, resources: Resources
                        ) -> AsyncIterator[OwnRedisApp]:
    with tempfile.TemporaryDirectory(prefix="fuli-valkey-") as data_dir:
        valkey = EmbeddedValkey(Path(data_dir), durable=False)
        await asyncio.to_thread(valkey.start)
        own = msgspec.structs.replace(settings, redis_url=valkey.url)
        app_resources = await Resources.open(
            own, application_name=f"fuli-redis-outage-{secrets.token_hex(4)}")
        stack = Stack(own, SERVICES)
        await stack.open(app_resources)
        tenant: Tenant = await make_tenant(resources.pool)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                         base_url="http://fuli", timeout=60) as client:
                yield OwnRedisApp(valkey, Rewards(client, tenant), app_resources, own)
        finally:
            await stack.close()
            await app_resources.close()
            await asyncio.to_thread(valkey.stop)


async def open_pool(rewards: Rewards, pool_id: str, member: str,
                    open_id: str | None = None) -> Any:
    return await rewards.client.post(f"/rewards/v1/pools/{pool_id}/opens",
                                     headers=rewards.ingest,
                                     json={"open_id": open_id or uid("o"), "member_id": member})


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert error_code(response) == "service_unavailable"
    assert int(response.headers["retry-after"]) >= 1


async def test_pool_opens_answer_503_while_redis_is_down_and_recover_when_it_is_back(
        own_redis_app: OwnRedisApp) -> None:
    app, rewards = own_redis_app, own_redis_app.rewards
    packets = 20
    pool_id = await make_pool(rewards, total_points=packets * 5, packets=packets,
                              open_cost_points=COST, per_member_opens=1)
    members = [uid("m") for _ in range(40)]
    granted = await rewards.points.grant([{"member_id": m, "points": 100} for m in members])
    assert granted.status_code == 201, granted.text
    before = await asyncio.gather(*(open_pool(rewards, pool_id, m) for m in members[:5]))
    assert [r.status_code for r in before] == [201] * 5

    await asyncio.to_thread(app.valkey.stop)
    during = {m: uid("o") for m in members[5:25]}
    down = await asyncio.gather(*(open_pool(rewards, pool_id, m, o) for m, o in during.items()))
    for response in down:
        assert_unavailable(response)
    view = await rewards.client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)
    assert view.status_code == 200 and view.json()["remaining_packets"] == packets - 5
    states = await asyncio.gather(*(rewards.points.member(m) for m in during))
    assert {s["available"] for s in states} == {100}, "a refused open charges nothing"

    await asyncio.to_thread(app.valkey.start)  # empty: no shares' state, no scripts
    # The opens refused during the outage, sent again with their ids, and more members.
    again = await asyncio.gather(*(open_pool(rewards, pool_id, m, o) for m, o in during.items()),
                                 *(open_pool(rewards, pool_id, m) for m in members[25:]))
    assert sorted(r.status_code for r in again) == [201] * (packets - 5) + [409] * 20, \
        [r.text for r in again if r.status_code not in (201, 409)]
    assert {error_code(r) for r in again if r.status_code == 409} == {"out_of_stock"}
    paid = [r.json() for r in [*before, *again] if r.status_code == 201]
    assert len(paid) == packets and sum(p["points"] for p in paid) == packets * 5
    assert len({p["member_id"] for p in paid}) == packets
    view = await rewards.client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)
    assert (view.json()["remaining_packets"], view.json()["remaining_points"]) == (0, 0)
    escrow = await rewards.points.member(escrow_of("pool", pool_id))
    assert escrow["available"] == 0
    await rewards.points.assert_ledger_ok()


async def test_member_packets_answer_503_while_redis_is_down_and_recover(
        own_redis_app: OwnRedisApp) -> None:
    app, rewards = own_redis_app, own_redis_app.rewards
    _, packet_id = await make_packet(rewards, funds=100, total_points=60, shares=6,
                                     expires_in_s=600)
    url = f"/rewards/v1/packets/{packet_id}/grabs"
    first = await rewards.client.post(url, headers=rewards.ingest, json={"member_id": uid("g")})
    assert first.status_code == 201, first.text

    await asyncio.to_thread(app.valkey.stop)
    grabbers = [uid("g") for _ in range(10)]
    down = await asyncio.gather(*(rewards.client.post(url, headers=rewards.ingest,
                                                      json={"member_id": g})
                                  for g in grabbers))
    for response in down:
        assert_unavailable(response)

    await asyncio.to_thread(app.valkey.start)
    up = await asyncio.gather(*(rewards.client.post(url, headers=rewards.ingest,
                                                    json={"member_id": g}) for g in grabbers))
    assert sorted(r.status_code for r in up) == [201] * 5 + [409] * 5
    assert sum(r.json()["points"] for r in [first, *up] if r.status_code == 201) == 60
    await rewards.points.assert_ledger_ok()


async def test_a_share_lost_to_redis_is_found_again_from_postgresql(
        own_redis_app: OwnRedisApp) -> None:
    """A share taken from Redis by an open that never recorded it (its connection or process
    died in between), or never put back (Redis was unreachable then), is missing from the free
    list while PostgreSQL still has it: the pool must not answer out_of_stock for it forever."""
    app, rewards = own_redis_app, own_redis_app.rewards
    pool_id = await make_pool(rewards, total_points=30, packets=3, per_member_opens=1)
    assert (await open_pool(rewards, pool_id, uid("m"))).status_code == 201
    free_list = keys(rewards.tenant.name, "pool", pool_id)[0]
    lost = await app.resources.redis.lpop(free_list, 2)
    assert lost is not None and len(lost) == 2

    late = [await open_pool(rewards, pool_id, uid("m")) for _ in range(3)]
    assert [r.status_code for r in late] == [201, 201, 409], [r.text for r in late]
    assert error_code(late[2]) == "out_of_stock"
    view = await rewards.client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)
    assert (view.json()["remaining_packets"], view.json()["remaining_points"]) == (0, 0)
    await rewards.points.assert_ledger_ok()


async def test_ended_pools_are_settled_while_redis_is_down(own_redis_app: OwnRedisApp) -> None:
    """Settling needs only PostgreSQL and the points service; Redis being down (its state
    cannot be dropped then) leaves nothing unsettled and stops no other step."""
    app, rewards = own_redis_app, own_redis_app.rewards
    pools = [await make_pool(rewards, total_points=100, packets=10) for _ in range(2)]
    opened = [await open_pool(rewards, pool_id, uid("m")) for pool_id in pools]
    assert [r.status_code for r in opened] == [201, 201]
    await app.resources.pool.execute(
        "UPDATE rewards.pools SET ends_at = now() - interval '1 minute'"
        " WHERE tenant_id = $1 AND pool_id = any($2::text[])", rewards.tenant.name, pools)

    await asyncio.to_thread(app.valkey.stop)
    await run(app.settings, settle_red_packets)
    for pool_id, answer in zip(pools, opened, strict=True):
        view = await rewards.client.get(f"/rewards/v1/pools/{pool_id}", headers=rewards.ingest)
        assert view.json()["status"] == "settled"
        escrow = await rewards.points.member(escrow_of("pool", pool_id))
        assert escrow["available"] == 0
        assert escrow["reversed"] == 100 - answer.json()["points"]
    await asyncio.to_thread(app.valkey.start)
    await rewards.points.assert_ledger_ok()
