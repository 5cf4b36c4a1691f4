"""Draws paid with points that arrive together go through points in batches and are picked in
one transaction: against the real servers, each still answers as it would alone."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import asyncpg
import pytest

from tests.rewards.boxes.test_boxes import draw, put_box
from tests.support.api import Rewards, error_code, uid


def nothing(prize_id: str, weight: int, **fields: Any) -> dict[str, Any]:
    return {"prize_id": prize_id, "name": prize_id.title(), "weight": weight, "kind": "nothing",
            **fields}


async def test_concurrent_draws_share_the_calls_to_points(
        rewards: Rewards, caplog: pytest.LogCaptureFixture) -> None:
    box_id = await put_box(rewards, cost_points=1, prizes=[nothing("none", 1)])
    members = [uid("m") for _ in range(60)]
    await rewards.points.grant([{"member_id": m, "points": 1} for m in members])
    with caplog.at_level(logging.INFO, logger="fuli.access"):
        responses = await asyncio.gather(*[draw(rewards, box_id, m) for m in members])
    assert {r.status_code for r in responses} == {201}
    routes = Counter(r.fields["route"] for r in caplog.records  # type: ignore[attr-defined]
                     if r.name == "fuli.access" and r.fields["service"] == "points")
    # Groups hold and capture in one call each; a draw that arrived alone is driven alone.
    holds = routes["/points/v1/holds/batch"] + routes["/points/v1/holds"]
    assert routes["/points/v1/holds/batch"] > 0 and holds < 60, routes
    assert routes["/points/v1/holds/settlements"] == routes["/points/v1/holds/batch"]
    assert routes["/points/v1/holds/{hold_id}/capture"] == routes["/points/v1/holds"]
    for member in members:
        state = await rewards.points.member(member)
        assert (state["available"], state["held"], state["spent"]) == (0, 0, 1)
    await rewards.points.assert_ledger_ok()


async def test_a_daily_limit_holds_for_draws_that_arrive_together(rewards: Rewards) -> None:
    """Six draws at once by a member allowed three a day all pass the check made before the
    hold; the pick, one draw after another under the member's lock, lets three through and
    gives the others' points back, as their final answer."""
    box_id = await put_box(rewards, cost_points=1, daily_limit_per_member=3,
                           prizes=[nothing("none", 1)])
    member = uid("m")
    await rewards.points.give(member, 10)
    bodies = [{"draw_id": uid("d"), "member_id": member} for _ in range(6)]
    responses = await asyncio.gather(*[
        rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws", headers=rewards.ingest,
                            json=body) for body in bodies])
    assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 3
    refused = [(body, r) for body, r in zip(bodies, responses, strict=True)
               if r.status_code == 409]
    assert {error_code(r) for _, r in refused} == {"limit_reached"}
    state = await rewards.points.member(member)
    assert (state["available"], state["held"], state["spent"]) == (7, 0, 3)
    for body, first in refused:  # refused after the points were held: that answer stands
        again = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                          headers=rewards.ingest, json=body)
        assert (again.status_code, again.content) == (409, first.content)
        assert again.headers["Idempotent-Replayed"] == "true"
    stats = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/stats",
                                      headers=rewards.operator)).json()
    assert stats["draws"] == 3
    await rewards.points.assert_ledger_ok()


async def test_pity_counts_on_through_draws_that_arrive_together(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=1, pity={"after_draws": 4, "prize_ids": ["top"]},
                           prizes=[nothing("top", 1), nothing("none", 10**9)])
    member = uid("m")
    await rewards.points.give(member, 12)
    responses = await asyncio.gather(*[draw(rewards, box_id, member) for _ in range(12)])
    assert {r.status_code for r in responses} == {201}
    answers = [r.json() for r in responses]
    assert Counter(a["prize"]["prize_id"] for a in answers) == {"top": 3, "none": 9}
    assert Counter(a["pity_counter"] for a in answers) == {0: 3, 1: 3, 2: 3, 3: 3}
    state = await rewards.points.member(member)
    assert (state["available"], state["spent"]) == (0, 12)


async def test_first_reads_made_together_answer_each_request_its_own(rewards: Rewards) -> None:
    """Draw requests that arrive together are read in one statement: each still finds its own
    box, its member's age band and daily draws, and its own earlier try."""
    open_box = await put_box(rewards, cost_points=1, daily_limit_per_member=1,
                             prizes=[nothing("none", 1)])
    adults_only = await put_box(rewards, cost_points=1, min_age=18, prizes=[nothing("none", 1)])
    members = [uid("m") for _ in range(5)]
    await rewards.points.grant([{"member_id": m, "points": 5} for m in members])
    child, drew_today, fresh, adult, again = members
    await rewards.client.put(f"/rewards/v1/members/{child}/eligibility", headers=rewards.ingest,
                             json={"age_band": "8_17", "guardian_consent": True})
    await rewards.client.put(f"/rewards/v1/members/{adult}/eligibility", headers=rewards.ingest,
                             json={"age_band": "adult"})
    earlier = {"draw_id": uid("d"), "member_id": again}
    first = await rewards.client.post(f"/rewards/v1/boxes/{open_box}/draws",
                                      headers=rewards.ingest, json=earlier)
    assert (await draw(rewards, open_box, drew_today)).status_code == 201
    assert first.status_code == 201

    def post(box_id: str, body: dict[str, Any]) -> Any:
        return rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws", headers=rewards.ingest,
                                   json=body)

    for _ in range(5):
        sent = [(box, {"draw_id": uid("d"), **body}, status, code) for box, body, status, code in [
            # (box, body, status, error code), sent all at once
            (adults_only, {"member_id": child}, 409, "not_eligible"),
            (adults_only, {"member_id": adult}, 201, None),
            (open_box, {"member_id": drew_today}, 409, "limit_reached"),
            (open_box, {"member_id": fresh}, 201, None),
            ("no-such-box", {"member_id": fresh}, 404, "unknown_box"),
            (open_box, earlier, 201, None),  # the earlier draw's replay
            (open_box, {**earlier, "member_id": adult}, 409, "idempotency_conflict"),
        ]]
        responses = await asyncio.gather(*[post(box, body) for box, body, _, _ in sent])
        for (box, body, status, code), response in zip(sent, responses, strict=True):
            assert response.status_code == status, (box, body, response.text)
            assert code is None or error_code(response) == code, (box, body, response.text)
        replay = responses[5]
        assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
        # Each round's new draw is one a day: the next round's is refused before the hold.
        drew_today, fresh = fresh, uid("m")
        await rewards.points.give(fresh, 5)
    await rewards.points.assert_ledger_ok()


async def test_the_first_read_looks_rows_up_by_key_with_its_plan_made_on_empty_tables(
        empty_database: str) -> None:
    """rewards.draw_starts keeps one generic plan a connection (its own setting): one made
    while the tables were empty still looks each request's rows up by key once they hold
    thousands, and reads each request's own."""
    from services.composition.registry import MIGRATIONS
    from services.rewards.boxes import store
    from services.runtime import tenants
    from services.runtime.db import init_connection
    from services.runtime.migrations import migrate

    conn = await asyncpg.connect(empty_database)
    try:
        await init_connection(conn)
        await migrate(conn, MIGRATIONS)
        await tenants.create_tenant(conn, "plans", "Asia/Shanghai")
        config = await conn.fetchval("SELECT proconfig FROM pg_proc"
                                     " WHERE proname = 'draw_starts'")
        assert config == ["plan_cache_mode=force_generic_plan"]
        plans: list[str] = []
        conn.add_log_listener(lambda _conn, message: plans.append(str(message)))
        for setting in ("auto_explain.log_min_duration = 0",
                        "auto_explain.log_nested_statements = on", "client_min_messages = log"):
            await conn.execute(f"SET {setting}")
        await conn.execute("LOAD 'auto_explain'")

        def requests(n: int) -> list[store.DrawRequest]:
            return [store.DrawRequest("plans", "box-1", f"m{i}", f"d{i}") for i in range(n)]

        assert not any(start.setting or start.existing
                       for start in (await store.draw_starts(conn, requests(3))).values())
        await conn.execute(
            "INSERT INTO rewards.boxes (tenant_id, box_id, name, cost_points)"
            " SELECT 'plans', 'box-' || i, 'Box', i FROM generate_series(1, 2000) AS i;"
            " INSERT INTO rewards.box_members (tenant_id, box_id, member_id, pity_counter)"
            " SELECT 'plans', 'box-1', 'm' || i, i FROM generate_series(1, 20000) AS i;"
            " INSERT INTO rewards.member_profiles (tenant_id, member_id, age_band)"
            " SELECT 'plans', 'm' || i, 'adult' FROM generate_series(1, 20000) AS i;"
            " INSERT INTO rewards.draws (tenant_id, draw_id, box_id, member_id, fingerprint,"
            "  paid_with, cost_points, hold_id, status)"
            " SELECT 'plans', 'd' || i, 'box-1', 'm' || i, '\\x00', 'points', 1, 'h' || i,"
            "  'pending' FROM generate_series(0, 20000) AS i")
        plans.clear()
        starts = await store.draw_starts(conn, requests(8))
        await conn.execute("SET client_min_messages = warning")
        for n, key in enumerate(requests(8)):
            start = starts[key]
            assert start.existing is not None and start.existing.draw_id == f"d{n}"
            assert start.setting is not None and start.setting.box.cost_points == 1
            assert start.setting.member.pity_counter == n  # m0 has no row: 0
            assert (start.setting.profile is not None) == (n > 0)
        read = [p for p in plans if "rewards.draws d" in p]
        assert read, plans[:3]
        for plan in read:
            for table in ("draws", "boxes", "member_profiles", "box_members"):
                assert f"Seq Scan on {table} " not in plan, plan
    finally:
        await conn.close()
