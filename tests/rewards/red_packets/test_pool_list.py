"""The operators' list of red-packet pools: newest first, by status, paged, with what is
left in each."""

from __future__ import annotations

import asyncio
from typing import Any

from services.rewards.red_packets.actors import settle_red_packets
from services.runtime.settings import Settings
from tests.rewards.helpers import BAD_NEWEST_FIRST_CURSORS
from tests.rewards.red_packets.test_red_packets import later, make_pool, open_pool, run
from tests.support.api import Rewards, error_code, member_token, uid


async def pools(rewards: Rewards, headers: dict[str, str] | None = None,
                **params: Any) -> Any:
    return await rewards.client.get("/rewards/v1/pools", params=params,
                                    headers=headers or rewards.operator)


async def test_pools_newest_first_by_status_with_what_is_left(
        rewards: Rewards, settings: Settings) -> None:
    ended = await make_pool(rewards, ends_at=later(3), total_points=300, packets=3)
    busy = await make_pool(rewards, total_points=500, packets=10, open_cost_points=0)
    fresh = await make_pool(rewards, name="Autumn pool", split="equal", total_points=40,
                            packets=4, open_cost_points=0, per_member_opens=2)
    opened = [await open_pool(rewards, busy, uid("m")) for _ in range(4)]
    assert {o.status_code for o in opened} == {201}
    handed = sum(o.json()["points"] for o in opened)
    await asyncio.sleep(8.5)  # past the end and the settling grace
    await run(settings, settle_red_packets)

    everything = await pools(rewards)
    assert everything.status_code == 200, everything.text
    items = everything.json()["items"]
    assert [p["pool_id"] for p in items] == [fresh, busy, ended]
    assert everything.json()["next_cursor"] is None
    assert {k: v for k, v in items[0].items() if k not in ("ends_at", "created_at")} == {
        "pool_id": fresh, "name": "Autumn pool", "total_points": 40, "packets": 4,
        "split": "equal", "open_cost_points": 0, "per_member_opens": 2, "starts_at": None,
        "status": "open", "remaining_packets": 4, "remaining_points": 40}
    assert (items[1]["remaining_packets"], items[1]["remaining_points"]) == (6, 500 - handed)
    assert (items[2]["status"], items[2]["remaining_packets"], items[2]["remaining_points"]) \
        == ("settled", 0, 0)
    shown = (await rewards.client.get(f"/rewards/v1/pools/{busy}",
                                      headers=rewards.ingest)).json()
    del shown["latest_opens"]
    assert {k: v for k, v in items[1].items() if k != "created_at"} == shown

    open_ones = (await pools(rewards, status="open")).json()
    assert [p["pool_id"] for p in open_ones["items"]] == [fresh, busy]
    settled = (await pools(rewards, status="settled")).json()
    assert [p["pool_id"] for p in settled["items"]] == [ended]

    first = (await pools(rewards, limit=2)).json()
    assert [p["pool_id"] for p in first["items"]] == [fresh, busy] and first["next_cursor"]
    second = (await pools(rewards, headers=rewards.tenant.headers(rewards.tenant.admin),
                          limit=2, cursor=first["next_cursor"])).json()
    assert [p["pool_id"] for p in second["items"]] == [ended] and second["next_cursor"] is None
    one = (await pools(rewards, status="open", limit=1)).json()
    rest = (await pools(rewards, status="open", cursor=one["next_cursor"])).json()
    assert [p["pool_id"] for p in one["items"] + rest["items"]] == [fresh, busy]


async def test_bad_pool_queries_are_422_and_only_operators_list(rewards: Rewards) -> None:
    await make_pool(rewards)
    for params in ({"status": "closed"}, {"status": ""}, {"limit": 0}, {"limit": 500},
                   *({"cursor": cursor} for cursor in BAD_NEWEST_FIRST_CURSORS)):
        response = await pools(rewards, **params)
        assert response.status_code == 422, (params, response.text)
        assert error_code(response) == "validation_failed", (params, response.text)
    token = rewards.tenant.headers(await member_token(rewards.client, rewards.tenant, uid("m")))
    assert (await pools(rewards, headers=rewards.ingest)).status_code == 403
    assert (await pools(rewards, headers=token)).status_code == 403
    assert len((await pools(rewards)).json()["items"]) == 1
