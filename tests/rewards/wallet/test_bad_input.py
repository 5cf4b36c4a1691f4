from __future__ import annotations

from typing import Any

import pytest

from services.runtime.resources import Resources
from tests.rewards.helpers import rewards_rows
from tests.support.api import Rewards, error_code, uid

CASES: list[tuple[str, str, Any, int]] = [
    ("issue", "/rewards/v1/issues", {"issue_id": "i1", "reason": "r", "kind": "coupon",
                                     "member_ids": ["m"]}, 422),
    ("issue", "/rewards/v1/issues", {"issue_id": "i1", "reason": "r", "kind": "tickets",
                                     "member_ids": ["m"]}, 422),
    ("issue", "/rewards/v1/issues", {"issue_id": "i1", "reason": "r", "kind": "coupon",
                                     "sku": "{sku}", "member_ids": ["m"] * 10_001}, 422),
]


# Numbered on from the catalog's cases (tests/rewards/catalog/test_bad_input.py), with which
# they once shared one table, so each case keeps its id.
@pytest.mark.parametrize(("name", "path", "change", "status"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES, start=13)])
async def test_bad_input_is_4xx_and_changes_nothing(
        rewards: Rewards, resources: Resources, name: str, path: str, change: Any,
        status: int) -> None:
    member = uid("m")
    await rewards.points.give(member, 100)
    sku = await rewards.perk(cost_points=5, stock=10)
    before = await rewards_rows(resources, rewards.tenant.name)
    body = {k: (v.replace("{sku}", sku) if isinstance(v, str) else v)
            for k, v in change.items()}
    response = await rewards.client.post(path, headers=rewards.operator, json=body)
    assert response.status_code == status, response.text
    error_code(response)
    assert await rewards_rows(resources, rewards.tenant.name) == before
