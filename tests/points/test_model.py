"""Randomized rounds of concurrent earns, grants, spends, holds and refunds, compared with a model.

Each round sends one operation per member, all at once. Operations on different members race
each other inside the database (shared tables, one pool), while each operation's outcome stays
predictable from the model, so every status and balance can be checked exactly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.points import rules
from services.runtime.resources import Resources
from services.runtime.stack import Stack
from tests.support.api import Points, make_tenant, uid

MEMBERS = 6

operation = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, 50_000)),
    st.tuples(st.just("grant"), st.integers(1, 200)),
    st.tuples(st.just("debit"), st.integers(1, 300)),
    st.tuples(st.just("hold"), st.integers(1, 300)),
    st.tuples(st.just("capture"), st.integers(0, 5)),
    st.tuples(st.just("void"), st.integers(0, 5)),
    st.tuples(st.just("refund"), st.integers(0, 5), st.integers(1, 100)),
)
rounds = st.lists(st.lists(operation, min_size=MEMBERS, max_size=MEMBERS),
                  min_size=1, max_size=6)


@dataclass
class Purchase:
    event_id: str
    points: int
    amount_cents: int
    refunded: int = 0


@dataclass
class MemberModel:
    exists: bool = False
    available: int = 0
    held: int = 0
    holds: list[tuple[str, int]] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)


async def apply(points: Points, member: str, model: MemberModel, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "earn":
        response = await points.event(member, "purchase", amount_cents=op[1])
        assert response.status_code == 201, response.text
        earned = op[1] // 100
        assert response.json()["points"] == earned
        model.available += earned
        model.exists = True
        if op[1] > 0:
            model.purchases.append(Purchase(response.json()["event_id"], earned, op[1]))
        assert response.json()["balance"] == model.available
    elif kind == "grant":
        await points.give(member, op[1])
        model.available += op[1]
        model.exists = True
    elif kind in ("debit", "hold"):
        response = await (points.debit if kind == "debit" else points.hold)(member, op[1])
        if model.available >= op[1]:
            assert response.status_code == 201, response.text
            model.available -= op[1]
            if kind == "hold":
                model.held += op[1]
                model.holds.append((response.json()["hold_id"], op[1]))
        else:  # a member is created by its first event or grant
            assert response.status_code == (409 if model.exists else 404), response.text
    elif kind in ("capture", "void") and model.holds:
        hold_id, held = model.holds.pop(op[1] % len(model.holds))
        response = await (points.capture if kind == "capture" else points.void)(hold_id)
        assert response.status_code == 200, response.text
        model.held -= held
        if kind == "void":
            model.available += held
        assert response.json()["held"] == model.held
    elif kind == "refund" and model.purchases:
        purchase = model.purchases[op[1] % len(model.purchases)]
        left = purchase.amount_cents - purchase.refunded
        amount = max(1, left * op[2] // 100)
        response = await points.reverse(purchase.event_id, amount_cents=amount)
        if left == 0:
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 201, response.text
        claw = rules.clawback(purchase.points, purchase.amount_cents, purchase.refunded, amount)
        taken = min(claw, model.available)
        assert (response.json()["points"], response.json()["clawed_back"]) == (claw, taken)
        purchase.refunded += amount
        model.available -= taken


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(plan=rounds)
async def test_concurrent_rounds_agree_with_the_model(stack: Stack, resources: Resources,
                                                      plan: list[list[tuple[Any, ...]]]) -> None:
    tenant = await make_tenant(resources.pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                 base_url="http://fuli") as client:
        points = Points(client, tenant)
        members = [uid("m") for _ in range(MEMBERS)]
        models = {m: MemberModel() for m in members}
        for round_ in plan:
            await asyncio.gather(*[apply(points, m, models[m], op)
                                   for m, op in zip(members, round_, strict=True)])
            states = await asyncio.gather(*[points.member(m) for m in members])
            for member, state in zip(members, states, strict=True):
                model = models[member]
                assert (state["available"], state["held"]) == (model.available, model.held)
        await points.assert_ledger_ok()
