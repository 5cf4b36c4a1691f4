from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest

from proto.rewards import WeightedPrize
from services.rewards.boxes import rules
from tests.support.api import Rewards, error_code, member_token, uid
from tests.support.bus import worker_context


async def put_box(rewards: Rewards, box_id: str | None = None, **fields: Any) -> str:
    box_id = box_id or uid("box")
    body = {"name": "Spring box", "cost_points": 10, "prizes": [
        {"prize_id": "spa", "name": "Counter SPA", "weight": 5, "stock": 3, "kind": "nothing"},
        {"prize_id": "pts", "name": "20 points", "weight": 45, "kind": "points", "points": 20},
        {"prize_id": "none", "name": "Thanks", "weight": 50, "kind": "nothing"}], **fields}
    response = await rewards.client.put(f"/rewards/v1/boxes/{box_id}", headers=rewards.operator,
                                        json=body)
    assert response.status_code == 200, response.text
    return box_id


async def draw(rewards: Rewards, box_id: str, member: str, **fields: Any) -> Any:
    return await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws", headers=rewards.ingest,
                                     json={"draw_id": uid("d"), "member_id": member, **fields})


async def assert_proofs_verify(rewards: Rewards, box_id: str, draw_ids: list[str],
                               commitment: str) -> None:
    """Each draw's proof, once its seed is revealed, recomputes to its prize."""
    for draw_id in draw_ids:
        proof = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/draws/{draw_id}/proof",
                                          headers=rewards.ingest)).json()
        options = [WeightedPrize(prize_id=c["prize_id"], weight=c["weight"])
                   for c in proof["candidates"]]
        assert rules.verify(seed=bytes.fromhex(proof["seed"]), published_commitment=commitment,
                            draw_id=draw_id, options=options, prize_id=proof["prize_id"])


async def test_500_concurrent_draws_award_the_top_prize_exactly_its_stock(
        rewards: Rewards) -> None:
    box_id = await put_box(rewards)
    members = [uid("m") for _ in range(100)]
    await rewards.points.grant([{"member_id": m, "points": 50} for m in members])
    responses = await asyncio.gather(*[draw(rewards, box_id, members[i % 100])
                                       for i in range(500)])
    assert {r.status_code for r in responses} == {201}, \
        Counter((r.status_code, r.text[:80]) for r in responses)
    prizes = Counter(r.json()["prize"]["prize_id"] for r in responses)
    assert prizes["spa"] == 3 and sum(prizes.values()) == 500
    odds = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                     headers=rewards.ingest)).json()
    spa = next(p for p in odds["prizes"] if p["prize_id"] == "spa")
    assert spa["stock_left"] == 0 and spa["probability"] == 0
    assert abs(sum(p["probability"] for p in odds["prizes"]) - 1) < 1e-9
    states = await asyncio.gather(*[rewards.points.member(m) for m in members])
    paid = sum(50 - s["available"] for s in states)
    assert paid == 500 * 10 - 20 * prizes["pts"]
    await rewards.points.assert_ledger_ok()


async def test_draws_racing_for_the_last_of_a_prize_pick_again_and_still_verify(
        rewards: Rewards) -> None:
    # Nearly every pick lands on the gold while any is left, so concurrent draws that picked
    # it from prizes read a moment before find its last one taken and pick again.
    box_id = await put_box(rewards, cost_points=1, prizes=[
        {"prize_id": "gold", "name": "Gold", "weight": 1000, "stock": 4, "kind": "nothing"},
        {"prize_id": "none", "name": "Thanks", "weight": 1, "kind": "nothing"}])
    members = [uid("m") for _ in range(40)]
    await rewards.points.grant([{"member_id": m, "points": 1} for m in members])
    commitment = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                           headers=rewards.ingest)).json()["commitment"]
    responses = await asyncio.gather(*[draw(rewards, box_id, m) for m in members])
    assert {r.status_code for r in responses} == {201}, \
        Counter((r.status_code, r.text[:80]) for r in responses)
    assert Counter(r.json()["prize"]["prize_id"] for r in responses) == {"gold": 4, "none": 36}
    odds = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                     headers=rewards.ingest)).json()
    assert next(p for p in odds["prizes"] if p["prize_id"] == "gold")["stock_left"] == 0
    await rewards.client.post(f"/rewards/v1/boxes/{box_id}/seed/rotate",
                              headers=rewards.operator)
    await assert_proofs_verify(rewards, box_id, [r.json()["draw_id"] for r in responses],
                               commitment)
    await rewards.points.assert_ledger_ok()


async def test_pity_guarantees_a_top_prize_every_n_draws(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=1, prizes=[
        {"prize_id": "top", "name": "Top", "weight": 1, "kind": "nothing"},
        {"prize_id": "none", "name": "Thanks", "weight": 999, "kind": "nothing"}],
        pity={"after_draws": 4, "prize_ids": ["top"]})
    member = uid("m")
    await rewards.points.give(member, 20)
    token = rewards.tenant.headers(await member_token(rewards.client, rewards.tenant, member))
    since_top = 0
    for _ in range(20):
        response = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws", headers=token,
                                             json={"draw_id": uid("d"), "member_id": member})
        assert response.status_code == 201, response.text
        since_top = 0 if response.json()["prize"]["prize_id"] == "top" else since_top + 1
        assert since_top < 4
        assert response.json()["pity_counter"] == since_top
    odds = await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds", headers=token)
    assert odds.json()["pity_counter"] == since_top


async def test_draws_verify_after_the_seed_is_revealed(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=1)
    members = [uid("m") for _ in range(12)]
    await rewards.points.grant([{"member_id": m, "points": 1} for m in members])
    commitment = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                           headers=rewards.ingest)).json()["commitment"]
    ids = [(await draw(rewards, box_id, m)).json()["draw_id"] for m in members]
    hidden = await rewards.client.get(f"/rewards/v1/boxes/{box_id}/draws/{ids[0]}/proof",
                                      headers=rewards.ingest)
    assert hidden.json()["seed"] is None and hidden.json()["commitment"] == commitment
    rotated = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/seed/rotate",
                                        headers=rewards.operator)
    assert rotated.json()["revealed_seed_no"] == 1 and rotated.json()["seed_no"] == 2
    await assert_proofs_verify(rewards, box_id, ids, commitment)


async def test_tickets_daily_limits_and_age(rewards: Rewards) -> None:
    box_id = await put_box(rewards, daily_limit_per_member=2, min_age=18)
    member = uid("m")
    no_profile = await draw(rewards, box_id, member, use_ticket=True)
    assert error_code(no_profile) == "not_eligible"
    profile = await rewards.client.put(f"/rewards/v1/members/{member}/eligibility",
                                       headers=rewards.ingest,
                                       json={"age_band": "8_17", "guardian_consent": True})
    assert profile.status_code == 200
    assert error_code(await draw(rewards, box_id, member, use_ticket=True)) == "not_eligible"
    await rewards.client.put(f"/rewards/v1/members/{member}/eligibility",
                             headers=rewards.ingest, json={"age_band": "adult"})
    assert error_code(await draw(rewards, box_id, member, use_ticket=True)) == "no_ticket"
    granted = await rewards.client.post("/rewards/v1/tickets", headers=rewards.ingest, json={
        "ticket_grant_id": uid("t"), "member_id": member, "box_id": box_id, "count": 3})
    assert granted.status_code == 201
    results = [await draw(rewards, box_id, member, use_ticket=True) for _ in range(3)]
    assert [r.status_code for r in results] == [201, 201, 409]
    assert error_code(results[2]) == "limit_reached"
    assert {r.json()["paid_with"] for r in results[:2]} == {"ticket"}
    assert (await rewards.points.member(member))["spent"] == 0


async def test_age_bands(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=0, min_age=8)
    for band, consent, ok in [("under_8", True, False), ("8_17", False, False),
                              ("8_17", True, True), ("adult", False, True)]:
        member = uid("m")
        await rewards.client.put(f"/rewards/v1/members/{member}/eligibility",
                                 headers=rewards.ingest,
                                 json={"age_band": band, "guardian_consent": consent})
        await rewards.client.post("/rewards/v1/tickets", headers=rewards.ingest, json={
            "ticket_grant_id": uid("t"), "member_id": member, "box_id": box_id})
        response = await draw(rewards, box_id, member)
        assert (response.status_code == 201) is ok, (band, consent, response.text)
        assert response.status_code == 201 or error_code(response) == "not_eligible"


async def test_bad_boxes_are_422_and_change_nothing(rewards: Rewards) -> None:
    box_id = await put_box(rewards)
    before = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                       headers=rewards.ingest)).json()
    prize = {"prize_id": "a", "name": "A", "weight": 1, "kind": "nothing"}
    for change in [{"prizes": [{**prize, "weight": 0}]}, {"prizes": [{**prize, "weight": -3}]},
                   {"prizes": [prize, prize]}, {"prizes": [{**prize, "kind": "points"}]},
                   {"prizes": [prize], "pity": {"after_draws": 3, "prize_ids": ["zzz"]}},
                   {"prizes": [prize], "surprise": 1}, {"prizes": []}]:
        response = await rewards.client.put(f"/rewards/v1/boxes/{box_id}",
                                            headers=rewards.operator,
                                            json={"name": "B", "cost_points": 1, **change})
        assert response.status_code == 422, (change, response.text)
    after = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                      headers=rewards.ingest)).json()
    assert after == before
    unknown = await draw(rewards, "no-such-box", uid("m"))
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_box"


async def test_the_shipped_verifier_confirms_every_revealed_draw(
        rewards: Rewards, configured_env: dict[str, str], resources: Any,
        tmp_path: Any) -> None:
    from tests.points.test_grants import fuli_cli

    box_id = await put_box(rewards, cost_points=1)
    members = [uid("m") for _ in range(30)]
    await rewards.points.grant([{"member_id": m, "points": 1} for m in members])
    await asyncio.gather(*[draw(rewards, box_id, m) for m in members])
    await rewards.client.post(f"/rewards/v1/boxes/{box_id}/seed/rotate",
                              headers=rewards.operator)
    env = {**configured_env, "FULI_DATA_DIR": str(tmp_path)}
    ok = fuli_cli(env, "draws", "verify", "--tenant", rewards.tenant.name, "--box", box_id)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "30 revealed draw(s)" in ok.stdout and "30 confirmed, 0 mismatched" in ok.stdout
    # A tampered record is caught.
    await resources.pool.execute(
        "UPDATE rewards.draws SET prize_id = CASE prize_id WHEN 'none' THEN 'pts' ELSE 'none' END"
        " WHERE tenant_id = $1 AND draw_id = (SELECT min(draw_id) FROM rewards.draws"
        " WHERE tenant_id = $1 AND box_id = $2)", rewards.tenant.name, box_id)
    bad = fuli_cli(env, "draws", "verify", "--tenant", rewards.tenant.name, "--box", box_id)
    assert bad.returncode == 1 and "1 mismatched" in bad.stdout


async def test_a_draw_whose_capture_fails_gives_the_prize_back(
        rewards: Rewards, resources: Any, settings: Any, stack: Any) -> None:
    from datetime import UTC, datetime

    from proto.rewards import DrawIn
    from services.rewards.boxes import actors
    from services.rewards.boxes.boxes import Boxes
    from services.rewards.points_client import PointsUnavailable
    from tests.rewards.helpers import points_client_with

    box_id = await put_box(rewards, prizes=[
        {"prize_id": "spa", "name": "SPA", "weight": 1, "stock": 1, "kind": "nothing"}])
    member = uid("m")
    await rewards.points.give(member, 10)
    broken = points_client_with(stack,
                                lambda path: path.endswith(("/capture", "/settlements")))
    boxes = Boxes(resources.pool, broken)
    body = DrawIn(draw_id=uid("d"), member_id=member)
    try:
        await boxes.draw(rewards.tenant.name, box_id, body, datetime.now(UTC))
        raise AssertionError("capture should have failed")
    except PointsUnavailable:
        pass
    hold_id = (await resources.pool.fetchval(
        "SELECT hold_id FROM rewards.draws WHERE tenant_id = $1 AND draw_id = $2",
        rewards.tenant.name, body.draw_id))
    assert (await rewards.points.void(hold_id)).status_code == 200
    await resources.pool.execute(
        "UPDATE rewards.draws SET updated_at = now() - interval '1 hour' WHERE tenant_id = $1",
        rewards.tenant.name)
    async with worker_context(settings):
        await actors.recover_draws()
    odds = (await rewards.client.get(f"/rewards/v1/boxes/{box_id}/odds",
                                     headers=rewards.ingest)).json()
    assert odds["prizes"][0]["stock_left"] == 1
    info = await rewards.points.member(member)
    assert (info["available"], info["held"], info["spent"]) == (10, 0, 0)
    replay = await rewards.client.post(f"/rewards/v1/boxes/{box_id}/draws",
                                       headers=rewards.ingest,
                                       json={"draw_id": body.draw_id, "member_id": member})
    assert replay.status_code == 409 and error_code(replay) == "draw_failed"


async def test_every_change_of_prizes_is_audited(rewards: Rewards, resources: Any) -> None:
    box_id = await put_box(rewards)
    await put_box(rewards, box_id, prizes=[
        {"prize_id": "spa", "name": "Counter SPA", "weight": 9, "stock": 3, "kind": "nothing"}])
    bad = await rewards.client.put(f"/rewards/v1/boxes/{box_id}", headers=rewards.operator,
                                   json={"name": "x", "cost_points": 1, "prizes": []})
    assert bad.status_code == 422
    rows = await resources.pool.fetch(
        "SELECT key_id, definition FROM rewards.box_audit WHERE tenant_id = $1 AND box_id = $2"
        " ORDER BY change_id", rewards.tenant.name, box_id)
    assert [len(r["definition"]["prizes"]) for r in rows] == [3, 1]
    assert rows[1]["definition"]["prizes"][0]["weight"] == 9
    assert {r["key_id"] for r in rows} == {rewards.tenant.operator.split("_")[1]}


async def test_the_calls_a_draw_makes_to_points_carry_its_request_id(
        rewards: Rewards, caplog: pytest.LogCaptureFixture) -> None:
    box_id = await put_box(rewards)
    member = uid("m")
    await rewards.points.grant([{"member_id": member, "points": 50}])
    request_id = uid("trace")
    with caplog.at_level(logging.INFO, logger="fuli.access"):
        response = await rewards.client.post(
            f"/rewards/v1/boxes/{box_id}/draws", json={"draw_id": uid("d"), "member_id": member},
            headers={**rewards.ingest, "X-Request-Id": request_id})
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == request_id
    access = [r.fields for r in caplog.records  # type: ignore[attr-defined]
              if r.name == "fuli.access"]
    logged = [(f["service"], f["route"]) for f in access if f["request_id"] == request_id]
    # A lone draw is driven alone: its own hold and capture, under its id.
    assert ("points", "/points/v1/holds") in logged
    assert ("points", "/points/v1/holds/{hold_id}/capture") in logged
    assert logged[-1] == ("rewards", "/rewards/v1/boxes/{box_id}/draws")
