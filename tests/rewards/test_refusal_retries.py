"""Draws and redemptions refused before anything moved store nothing: the same id and body is
evaluated again and answers the truth of the moment; what moved value replays byte for byte,
and concurrent retries of one id still move value once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from services.runtime.resources import Resources
from tests.rewards.boxes.test_boxes import put_box
from tests.support.api import Rewards, error_code, uid


async def give_ticket(rewards: Rewards, member: str, box_id: str) -> None:
    response = await rewards.client.post("/rewards/v1/tickets", headers=rewards.ingest, json={
        "ticket_grant_id": uid("t"), "member_id": member, "box_id": box_id})
    assert response.status_code == 201, response.text


async def assert_replays(send: Any, first: httpx.Response) -> None:
    replay = await send()
    assert (replay.status_code, replay.content) == (first.status_code, first.content)
    assert replay.headers["idempotent-replayed"] == "true"


async def test_a_draw_refused_no_ticket_succeeds_once_tickets_arrive(rewards: Rewards) -> None:
    box_id = await put_box(rewards)
    member = uid("m")
    body = {"draw_id": uid("d"), "member_id": member, "use_ticket": True}

    async def send() -> httpx.Response:
        return await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                         headers=rewards.ingest, json=body)

    for _ in range(2):
        refused = await send()
        assert (refused.status_code, error_code(refused)) == (409, "no_ticket"), refused.text
        assert "idempotent-replayed" not in refused.headers
    await give_ticket(rewards, member, box_id)
    drawn = await send()
    assert drawn.status_code == 201, drawn.text
    assert "idempotent-replayed" not in drawn.headers
    await assert_replays(send, drawn)
    other = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                      headers=rewards.ingest, json={**body, "use_ticket": False})
    assert (other.status_code, error_code(other)) == (409, "idempotency_conflict")


async def test_a_draw_refused_for_points_or_its_daily_limit_is_evaluated_again(
        rewards: Rewards, resources: Resources) -> None:
    box_id = await put_box(rewards, daily_limit_per_member=1)
    member = uid("m")
    await rewards.points.give(member, 5)
    body = {"draw_id": uid("d"), "member_id": member}

    async def send() -> httpx.Response:
        return await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                         headers=rewards.ingest, json=body)

    short = await send()
    assert (short.status_code, error_code(short)) == (409, "insufficient_points"), short.text
    assert short.json()["error"]["details"] == {"available": 5, "requested": 10}
    assert short.json()["error"]["message"] == "not enough points for this draw"
    await rewards.points.give(member, 15)
    drawn = await send()
    assert drawn.status_code == 201, drawn.text
    await assert_replays(send, drawn)
    second = {"draw_id": uid("d"), "member_id": member}
    limited = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                        headers=rewards.ingest, json=second)
    assert (limited.status_code, error_code(limited)) == (409, "limit_reached"), limited.text
    assert "this box's daily limit" in limited.json()["error"]["message"]
    holds = await resources.pool.fetchval(  # the limit was answered before any hold
        "SELECT count(*) FROM points.holds WHERE tenant_id = $1", rewards.tenant.name)
    assert holds == 1
    await rewards.points.assert_ledger_ok()


async def test_a_redemption_refused_answers_the_current_truth_then_succeeds(
        rewards: Rewards) -> None:
    sku = await rewards.perk(cost_points=140, enabled=False)
    member = uid("m")
    await rewards.points.give(member, 25)
    redemption_id = uid("rd")

    async def send() -> httpx.Response:
        return await rewards.redeem(member, sku, redemption_id=redemption_id)

    closed = await send()
    assert (closed.status_code, error_code(closed)) == (409, "not_available"), closed.text
    await rewards.perk(sku, cost_points=140)
    short = await send()
    assert (short.status_code, error_code(short)) == (409, "insufficient_points"), short.text
    assert short.json()["error"]["details"]["available"] == 25
    await rewards.points.give(member, 100)
    still = await send()
    assert still.json()["error"]["details"]["available"] == 125, still.text
    await rewards.points.give(member, 15)
    done = await send()
    assert done.status_code == 201, done.text
    assert "idempotent-replayed" not in done.headers
    await assert_replays(send, done)
    assert (await rewards.points.member(member))["available"] == 0
    await rewards.points.assert_ledger_ok()


async def test_concurrent_retries_of_one_draw_and_one_redemption_move_value_once(
        rewards: Rewards, resources: Resources) -> None:
    box_id = await put_box(rewards, prizes=[  # no points prize: the balance below is exact
        {"prize_id": "none", "name": "Thanks", "weight": 1, "kind": "nothing"}])
    sku = await rewards.perk(cost_points=30)
    member = uid("m")
    draw = {"draw_id": uid("d"), "member_id": member, "use_ticket": True}
    redemption_id = uid("rd")

    async def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
        draws = [rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                     headers=rewards.ingest, json=draw) for _ in range(30)]
        redeems = [rewards.redeem(member, sku, redemption_id=redemption_id) for _ in range(30)]
        answers = await asyncio.gather(*draws, *redeems)
        return list(answers[:30]), list(answers[30:])

    draws, redeems = await burst()
    # Each is refused, or told to come back while the others are evaluated.
    for answers, code in ((draws, "no_ticket"), (redeems, "insufficient_points")):
        codes = Counter(error_code(r) for r in answers)
        assert set(codes) <= {code, "in_progress"} and codes[code] > 0, codes
    await give_ticket(rewards, member, box_id)
    await give_ticket(rewards, member, box_id)
    await rewards.points.give(member, 50)
    draws, redeems = await burst()
    for answers in (draws, redeems):
        done = [r for r in answers if r.status_code == 201]
        # A retry that finds the first one still under way may be told to come back.
        assert all(error_code(r) == "in_progress" for r in answers if r.status_code != 201)
        assert len({r.content for r in done}) == 1 and done
        assert sum(r.headers.get("idempotent-replayed") != "true" for r in done) <= 1
    drawn = await resources.pool.fetchval(
        "SELECT count(*) FROM rewards.draws WHERE tenant_id = $1", rewards.tenant.name)
    assert drawn == 1
    assert (await rewards.points.member(member))["available"] == 20
    tickets = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                        headers=rewards.ingest, json={**draw, "draw_id": uid("d")})
    assert tickets.status_code == 201, tickets.text  # the second ticket is still there
    await rewards.points.assert_ledger_ok()
