"""The operators' reads of blind boxes: the list, one box's definition, and the prize counts of
the draws made under the current definition."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import datetime
from fractions import Fraction
from typing import Any

from services.runtime.pagination import encode_cursor
from services.runtime.times import DATE_TIME_PATTERN
from tests.rewards.boxes.test_boxes import draw, put_box
from tests.support.api import Rewards, error_code, member_token, uid

PRIZES = [{"prize_id": "gold", "name": "Gold", "weight": 1, "kind": "nothing"},
          {"prize_id": "silver", "name": "Silver", "weight": 3, "kind": "points", "points": 2},
          {"prize_id": "none", "name": "Thanks", "weight": 6, "kind": "nothing"}]


async def get(rewards: Rewards, path: str, headers: dict[str, str] | None = None,
              **params: Any) -> Any:
    return await rewards.client.get(f"/rewards/v1{path}", params=params,
                                    headers=headers or rewards.operator)


async def stats(rewards: Rewards, box_id: str) -> dict[str, Any]:
    response = await get(rewards, f"/boxes/{box_id}/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def draw_many(rewards: Rewards, box_id: str, members: list[str], each: int) -> list[str]:
    """Every member draws ``each`` times (members side by side); the prizes the answers gave."""
    async def member_draws(member: str) -> list[str]:
        prizes = []
        for _ in range(each):
            response = await draw(rewards, box_id, member)
            assert response.status_code == 201, response.text
            prizes.append(response.json()["prize"]["prize_id"])
        return prizes
    return [p for prizes in await asyncio.gather(*map(member_draws, members)) for p in prizes]


async def test_the_list_pages_through_every_box_by_id(rewards: Rewards) -> None:
    prefix = uid("lb")
    plain = await put_box(rewards, f"{prefix}-a", cost_points=7)
    with_pity = await put_box(rewards, f"{prefix}-b", prizes=PRIZES,
                              pity={"after_draws": 5, "prize_ids": ["gold"]})
    third = await put_box(rewards, f"{prefix}-c", cost_points=0, enabled=False)
    rotated = await rewards.client.post(f"/rewards/v1/boxes/{plain}/seed/rotate",
                                        headers=rewards.operator)
    assert rotated.status_code == 200

    first = await get(rewards, "/boxes", limit=2)
    assert first.status_code == 200, first.text
    assert [b["box_id"] for b in first.json()["items"]] == [plain, with_pity]
    assert first.json()["next_cursor"]
    second = await get(rewards, "/boxes", headers=rewards.tenant.headers(rewards.tenant.admin),
                       limit=2, cursor=first.json()["next_cursor"])
    assert second.status_code == 200, second.text
    assert [b["box_id"] for b in second.json()["items"]] == [third]
    assert second.json()["next_cursor"] is None

    items = {b["box_id"]: b for b in first.json()["items"] + second.json()["items"]}
    assert {k: v for k, v in items[plain].items() if k != "updated_at"} == {
        "box_id": plain, "name": "Spring box", "cost_points": 7, "prizes": 3, "pity": False,
        "seed_no": 2, "enabled": True}
    assert (items[with_pity]["prizes"], items[with_pity]["pity"], items[with_pity]["seed_no"]) \
        == (3, True, 1)
    assert (items[third]["cost_points"], items[third]["enabled"]) == (0, False)
    box = (await get(rewards, f"/boxes/{with_pity}")).json()
    assert items[with_pity]["updated_at"] == box["updated_at"]


async def test_the_list_refuses_bad_queries_and_other_roles(rewards: Rewards) -> None:
    await put_box(rewards)
    for params in ({"limit": 0}, {"limit": 201}, {"limit": "many"}, {"cursor": "!!!!"},
                   {"cursor": "x" * 201}, {"cursor": encode_cursor("\x00")}):
        response = await get(rewards, "/boxes", **params)
        assert response.status_code == 422, (params, response.text)
        assert error_code(response) == "validation_failed", (params, response.text)
    member = uid("m")
    token = rewards.tenant.headers(await member_token(rewards.client, rewards.tenant, member))
    box_id = await put_box(rewards)
    for path in ("/boxes", f"/boxes/{box_id}", f"/boxes/{box_id}/stats"):
        assert (await get(rewards, path, headers=rewards.ingest)).status_code == 403, path
        assert (await get(rewards, path, headers=token)).status_code == 403, path
    other = await get(rewards, "/boxes")
    assert len(other.json()["items"]) == 2


async def test_a_box_reads_back_as_its_put_and_puts_back_unchanged(rewards: Rewards) -> None:
    body = {"name": "Window box", "cost_points": 3,
            "prizes": [{"prize_id": "kit", "name": "Trial kit", "weight": 2, "stock": 5,
                        "kind": "nothing"},
                       {"prize_id": "pts", "name": "5 points", "weight": 8, "kind": "points",
                        "points": 5}],
            "pity": {"after_draws": 4, "prize_ids": ["kit"]},
            "daily_limit_per_member": 9, "starts_at": "2020-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z", "min_age": 18}
    box_id = await put_box(rewards, **body)
    response = await get(rewards, f"/boxes/{box_id}")
    assert response.status_code == 200, response.text
    box = response.json()
    assert box["box_id"] == box_id and box["seed_no"] == 1
    expected = {**body, "enabled": True, "prizes": [
        {**body["prizes"][0], "points": None, "sku": None},  # type: ignore[index]
        {**body["prizes"][1], "stock": None, "sku": None}]}  # type: ignore[index]
    definition = box["definition"]
    for field in ("starts_at", "ends_at"):
        assert datetime.fromisoformat(definition.pop(field)) == datetime.fromisoformat(
            expected.pop(field))  # type: ignore[arg-type]
    assert definition == expected

    # The kit's stock as it is now; putting the definition back changes nothing else.
    member = uid("m")
    await rewards.points.give(member, 30)
    profile = await rewards.client.put(f"/rewards/v1/members/{member}/eligibility",
                                       headers=rewards.ingest, json={"age_band": "adult"})
    assert profile.status_code == 200, profile.text
    answers = [await draw(rewards, box_id, member) for _ in range(6)]
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    kits = sum(a.json()["prize"]["prize_id"] == "kit" for a in answers)
    again = (await get(rewards, f"/boxes/{box_id}")).json()
    assert again["definition"]["prizes"][0]["stock"] == 5 - kits
    put_back = await rewards.client.put(f"/rewards/v1/boxes/{box_id}", headers=rewards.operator,
                                        json=again["definition"])
    assert put_back.status_code == 200, put_back.text
    after = (await get(rewards, f"/boxes/{box_id}")).json()
    assert after["definition"] == again["definition"]
    assert after["updated_at"] > again["updated_at"]

    unknown = await get(rewards, f"/boxes/{uid('nobox')}")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_box"
    unknown = await get(rewards, f"/boxes/{uid('nobox')}/stats")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_box"


async def test_stats_count_the_draws_under_the_current_definition(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=1, prizes=PRIZES)
    empty = await stats(rewards, box_id)
    assert (empty["draws"], empty["pity_draws"]) == (0, 0)
    assert [p["observed"] for p in empty["prizes"]] == [0, 0, 0]

    members = [uid("m") for _ in range(20)]
    await rewards.points.grant([{"member_id": m, "points": 3} for m in members])
    drawn = Counter(await draw_many(rewards, box_id, members, 3))
    assert sum(drawn.values()) == 60
    balances = await asyncio.gather(*[rewards.points.member(m) for m in members])
    assert sum(b["available"] for b in balances) == 60 - 60 + 2 * drawn["silver"]

    body = await stats(rewards, box_id)
    odds = (await get(rewards, f"/boxes/{box_id}/odds")).json()
    probability = {p["prize_id"]: p["probability"] for p in odds["prizes"]}
    assert probability == {"gold": 0.1, "silver": 0.3, "none": 0.6}
    assert (body["box_id"], body["draws"], body["pity_draws"]) == (box_id, 60, 0)
    assert body["prizes"] == [
        {"prize_id": p["prize_id"], "name": p["name"], "probability": probability[p["prize_id"]],
         "observed": drawn[p["prize_id"]],
         "expected": float(60 * Fraction(p["weight"], 10))} for p in PRIZES]
    assert sum(p["observed"] for p in body["prizes"]) == body["draws"]

    # New weights: the count starts again from the change.
    reweighted = [{**PRIZES[0], "weight": 5}, {**PRIZES[1], "weight": 5}, PRIZES[2]]
    await put_box(rewards, box_id, cost_points=1, prizes=reweighted)
    fresh = await stats(rewards, box_id)
    assert datetime.fromisoformat(fresh["since"]) > datetime.fromisoformat(body["since"])
    assert (fresh["draws"], fresh["pity_draws"]) == (0, 0)
    assert [(p["probability"], p["observed"], p["expected"]) for p in fresh["prizes"]] == [
        (5 / 16, 0, 0.0), (5 / 16, 0, 0.0), (6 / 16, 0, 0.0)]

    await rewards.points.grant([{"member_id": m, "points": 1} for m in members[:8]])
    later = Counter(await draw_many(rewards, box_id, members[:8], 1))
    after = await stats(rewards, box_id)
    assert after["draws"] == 8 and after["since"] == fresh["since"]
    assert {p["prize_id"]: p["observed"] for p in after["prizes"]} == {
        p["prize_id"]: later[p["prize_id"]] for p in PRIZES}
    assert [p["expected"] for p in after["prizes"]] == [8 * 5 / 16, 8 * 5 / 16, 8 * 6 / 16]


async def test_stats_keep_the_draws_pity_decided_apart(rewards: Rewards) -> None:
    box_id = await put_box(rewards, cost_points=1, prizes=[
        {"prize_id": "top", "name": "Top", "weight": 1, "kind": "nothing"},
        {"prize_id": "none", "name": "Thanks", "weight": 99, "kind": "nothing"}],
        pity={"after_draws": 3, "prize_ids": ["top"]})
    members = [uid("m") for _ in range(4)]
    await rewards.points.grant([{"member_id": m, "points": 7} for m in members])
    ids = []
    for member in members:
        for _ in range(7):
            response = await draw(rewards, box_id, member)
            assert response.status_code == 201, response.text
            ids.append(response.json()["draw_id"])
    proofs = [(await get(rewards, f"/boxes/{box_id}/draws/{i}/proof")).json() for i in ids]
    by_pity = sum(p["pity_applied"] for p in proofs)
    by_odds = Counter(p["prize_id"] for p in proofs if not p["pity_applied"])
    assert by_pity > 0
    body = await stats(rewards, box_id)
    assert (body["draws"], body["pity_draws"]) == (28 - by_pity, by_pity)
    assert {p["prize_id"]: p["observed"] for p in body["prizes"]} == {
        "top": by_odds["top"], "none": by_odds["none"]}
    assert [p["expected"] for p in body["prizes"]] == [
        float(body["draws"] * Fraction(1, 100)), float(body["draws"] * Fraction(99, 100))]


async def test_a_box_window_reads_back_within_the_years_a_put_may_send(rewards: Rewards) -> None:
    # The definition is answered in UTC with the request's schema: a time in range as written
    # but not in UTC would come back out of that schema's years.
    box_id = await put_box(rewards, starts_at="1900-01-01T00:00:00Z",
                           ends_at="8999-12-31T23:59:59Z")
    definition = (await get(rewards, f"/boxes/{box_id}")).json()["definition"]
    for field in ("starts_at", "ends_at"):
        assert re.fullmatch(DATE_TIME_PATTERN, definition[field]), definition[field]
    for field, sent in (("starts_at", "1900-01-01T00:00:00+01:00"),
                        ("ends_at", "8999-12-31T23:30:00-01:00")):
        refused = await rewards.client.put(
            f"/rewards/v1/boxes/{uid('box')}", headers=rewards.operator,
            json={"name": "Edge box", "cost_points": 1, "prizes": PRIZES, field: sent})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"]["field"] == field
