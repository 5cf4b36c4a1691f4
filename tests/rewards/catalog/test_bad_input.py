from __future__ import annotations

from typing import Any

import pytest

from services.runtime.resources import Resources
from tests.rewards.helpers import rewards_rows
from tests.support.api import Rewards, error_code, uid

CASES: list[tuple[str, str, Any, int]] = [
    ("redeem", "/rewards/v1/redemptions", {"quantity": 0}, 422),
    ("redeem", "/rewards/v1/redemptions", {"quantity": 10**9}, 422),
    ("redeem", "/rewards/v1/redemptions", {"quantity": "1"}, 422),
    ("redeem", "/rewards/v1/redemptions", {"sku": "no-such-sku"}, 404),
    ("redeem", "/rewards/v1/redemptions", {"surprise": True}, 422),
    ("redeem", "/rewards/v1/redemptions", {"redemption_id": "x" * 200}, 422),
    ("codes", "/rewards/v1/perks/{sku}/codes", {"codes": [f"C{i}" for i in range(10_001)]}, 422),
    ("codes", "/rewards/v1/perks/{sku}/codes", {"codes": []}, 422),
    ("codes", "/rewards/v1/perks/{sku}/codes", {"codes": ["has space"]}, 422),
    ("codes", "/rewards/v1/perks/no-such-sku/codes", {"codes": ["A"]}, 422),
    ("perk", "/rewards/v1/perks/{sku}", {"name": "x", "cost_points": 0}, 422),
    ("perk", "/rewards/v1/perks/{sku}", {"name": "x", "cost_points": 5, "fulfilment": "mail"},
     422),
    ("perk", "/rewards/v1/perks/{sku}", {"name": "x", "cost_points": 5,
                                         "starts_at": "2030-01-02T00:00:00Z",
                                         "ends_at": "2030-01-01T00:00:00Z"}, 422),
]


@pytest.mark.parametrize(("name", "path", "change", "status"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
async def test_bad_input_is_4xx_and_changes_nothing(
        rewards: Rewards, resources: Resources, name: str, path: str, change: Any,
        status: int) -> None:
    member = uid("m")
    await rewards.points.give(member, 100)
    sku = await rewards.perk(cost_points=5, stock=10)
    before = await rewards_rows(resources, rewards.tenant.name)
    url = path.replace("{sku}", sku)
    if name == "redeem":
        body = {"redemption_id": uid("rd"), "member_id": member, "sku": sku, **change}
        response = await rewards.client.post(url, headers=rewards.ingest, json=body)
    elif name == "perk":
        response = await rewards.client.put(url, headers=rewards.operator, json=change)
    else:
        body = {k: (v.replace("{sku}", sku) if isinstance(v, str) else v)
                for k, v in change.items()}
        response = await rewards.client.post(url, headers=rewards.operator, json=body)
    assert response.status_code == status, response.text
    error_code(response)
    assert await rewards_rows(resources, rewards.tenant.name) == before
