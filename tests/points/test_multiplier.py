"""PUT /points/v1/members/{id}/earn-multiplier: rule points of later events are multiplied."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Points, error_code, uid


async def test_a_multiplier_set_over_http_multiplies_the_next_events(points: Points) -> None:
    await points.put_rule("review", points=5)
    member = uid("m")
    before = await points.event(member, "review")
    assert before.json()["points"] == 5
    response = await points.set_multiplier(member, {"earn_multiplier": 2.0})
    assert response.status_code == 200, response.text
    assert response.json() == {"earn_multiplier": 2.0}
    after = await points.event(member, "review")
    assert after.status_code == 201, after.text
    assert after.json()["points"] == 10 and after.json()["balance"] == 15
    purchase = await points.event(member, "purchase", amount_cents=1_250)  # 12 units
    assert purchase.json()["points"] == 24
    info = await points.member(member)
    assert info["earn_multiplier"] == 2.0 and info["lifetime_earned"] == 39
    await points.assert_ledger_ok()


async def test_a_multiplier_applies_to_a_member_never_seen_before(points: Points) -> None:
    member = uid("m")
    response = await points.set_multiplier(member, {"earn_multiplier": 1.5})
    assert response.status_code == 200, response.text
    first = await points.event(member, "referral")  # 50 points by default
    assert first.json()["points"] == 75
    # Set again, later: the newer setting wins.
    assert (await points.set_multiplier(member, {"earn_multiplier": 1.0})).status_code == 200
    assert (await points.event(member, "referral")).json()["points"] == 50


async def test_only_admins_set_multipliers(points: Points) -> None:
    member = uid("m")
    for key in (points.ingest, points.operator):
        response = await points.set_multiplier(member, {"earn_multiplier": 2.0}, headers=key)
        assert response.status_code == 403 and error_code(response) == "forbidden"
    assert (await points.member(member))["earn_multiplier"] == 1.0


@pytest.mark.parametrize("body", [
    {"earn_multiplier": 0}, {"earn_multiplier": -1}, {"earn_multiplier": 100.5},
    {"earn_multiplier": "2"}, {}, {"earn_multiplier": 2, "tier": "vip"}, [2.0],
])
async def test_bad_multiplier_bodies_are_422(points: Points, body: Any) -> None:
    member = uid("m")
    response = await points.set_multiplier(member, body)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert (await points.member(member))["earn_multiplier"] == 1.0
