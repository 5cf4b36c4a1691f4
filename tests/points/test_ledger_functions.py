"""Every ledger function posts through points.post_transfer (or points.post_transfers, many at
once): after one of each, the members' balances and counters are exactly what the transfers
imply, and the ledger check holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.points import actors, rules
from services.runtime.db import Conn
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import Points, uid
from tests.support.bus import worker_context


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_every_ledger_function_keeps_balances_counters_and_the_ledger_check(
        points: Points, resources: Resources, settings: Settings) -> None:
    a, b = uid("a"), uid("b")
    # apply_grant
    await points.give(a, 100)
    # record_event (alone) and record_events (a batch)
    purchase = await points.event(a, "purchase", amount_cents=5_000)
    assert purchase.json()["points"] == 50
    batch = await points.client.post("/points/v1/events/batch", headers=points.ingest, json={
        "events": [{"event_id": uid("e"), "member_id": a, "action": "speak"} for _ in range(2)]})
    assert [i["status_code"] for i in batch.json()["items"]] == [201, 201]
    # place_hold, settle_hold (capture and void)
    captured = (await points.hold(a, 20)).json()["hold_id"]
    assert (await points.capture(captured)).status_code == 200
    voided = (await points.hold(a, 5)).json()["hold_id"]
    assert (await points.void(voided)).status_code == 200
    # debit, refund_hold, reverse_event
    assert (await points.debit(a, 12)).status_code == 201
    assert (await points.refund(captured)).status_code == 201
    reversal = await points.reverse(purchase.json()["event_id"], amount_cents=2_000)
    assert reversal.json()["clawed_back"] == 20
    # move_points, retire_points
    moved = await points.move(a, b, 15)
    assert moved.status_code == 201, moved.text
    assert (moved.json()["from_available"], moved.json()["to_available"]) == (105, 15)
    retired = await points.retire(b, 5)
    assert retired.status_code == 201 and retired.json()["available"] == 10
    # expire_holds (settle_hold 'expire') and sweep_expired_lots: a hold and a lot that expire
    assert (await points.hold(a, 7, expires_in_s=1)).status_code == 201
    await points.give(a, 10, expires_at=soon(1))
    await points.assert_ledger_ok()
    await asyncio.sleep(1.5)
    async with worker_context(settings):
        await actors.expire_holds()
        await actors.sweep_expired_lots()

    info_a, info_b = await points.member(a), await points.member(b)
    counters = ("available", "held", "lifetime_earned", "spent", "expired", "reversed",
                "spend_cents")
    # a: earned 100 + 50 + 2 + 10; spent 20 (captured, then refunded) + 12 (debit) + 15 (moved);
    # reversed 20 (clawed back); expired 10; 3000 cents of purchases left after the refund.
    assert {k: info_a[k] for k in counters} == {
        "available": 105, "held": 0, "lifetime_earned": 162, "spent": 27, "expired": 10,
        "reversed": 20, "spend_cents": 3_000}
    assert {k: info_b[k] for k in counters} == {
        "available": 10, "held": 0, "lifetime_earned": 15, "spent": 0, "expired": 0,
        "reversed": 5, "spend_cents": 0}
    kinds = [e["kind"] for e in (await points.entries(a, limit=500))["items"]]
    assert sorted(set(kinds)) == sorted({"grant", "earn", "hold", "capture", "void", "debit",
                                         "refund", "reversal", "expiry"})
    rows = await resources.pool.fetch(
        "SELECT kind, from_account, to_account FROM points.transfers WHERE tenant_id = $1"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", points.tenant.name)
    assert [tuple(r) for r in rows] == [
        ("capture", "held", "redemption"), ("debit", "available", "redemption"),
        ("earn", "issuance", "available"), ("expiry", "available", "expiry"),
        ("grant", "issuance", "available"), ("hold", "available", "held"),
        ("refund", "redemption", "available"), ("reversal", "available", "issuance"),
        ("void", "held", "available")]
    await points.assert_ledger_ok()


async def test_a_grant_posts_each_item_with_its_balance_after(points: Points) -> None:
    a, b = uid("a"), uid("b")
    response = await points.grant([{"member_id": b, "points": 3}, {"member_id": a, "points": 5},
                                   {"member_id": b, "points": 4}, {"member_id": a, "points": 1}])
    assert response.status_code == 201, response.text
    entries_b = (await points.entries(b))["items"]
    assert [(e["points"], e["balance_after"]) for e in entries_b] == [(4, 7), (3, 3)]
    entries_a = (await points.entries(a))["items"]
    assert [(e["points"], e["balance_after"]) for e in entries_a] == [(1, 6), (5, 5)]
    assert (await points.member(a))["lifetime_earned"] == 6
    await points.assert_ledger_ok()


ACCOUNT_PAIRS = [("issuance", "available"), ("available", "held"), ("held", "redemption"),
                 ("held", "available"), ("available", "redemption"),
                 ("redemption", "available"), ("available", "issuance"),
                 ("available", "expiry")]


async def test_the_sql_transfer_rule_moves_balances_as_entries_are_read(
        resources: Resources) -> None:
    for from_account, to_account in ACCOUNT_PAIRS:
        effect = await resources.pool.fetchrow(
            "SELECT * FROM points.transfer_effect($1, $2, 7)", from_account, to_account)
        assert effect is not None
        assert (effect["available"], effect["held"]) == (
            rules.account_change(from_account, to_account, 7, "available"),
            rules.account_change(from_account, to_account, 7, "held"))
        # the counters keep lifetime_earned - reversed - spent - expired = available + held
        assert (effect["lifetime_earned"] - effect["reversed"] - effect["spent"]
                - effect["expired"]) == effect["available"] + effect["held"]


async def _post(conn: Conn, tenant: str, members: list[str], amounts: list[int], kind: str,
                from_account: str, to_account: str, *, at_once: bool) -> None:
    if at_once:
        await conn.execute("SELECT points.post_transfers($1, $2, $3, $4, $5, $6, 'r', now())",
                           tenant, members, amounts, kind, from_account, to_account)
    else:
        for member, amount in zip(members, amounts, strict=True):
            await conn.execute("SELECT points.post_transfer($1, $2, $3, $4, $5, $6, 'r', now())",
                               tenant, member, kind, from_account, to_account, amount)


async def test_posting_transfers_at_once_is_posting_them_one_by_one(
        resources: Resources) -> None:
    members = ["b", "a", "b", "a", "c"]
    posted: dict[bool, tuple[list[tuple[object, ...]], list[tuple[object, ...]]]] = {}
    for at_once in (True, False):
        tenant = uid("post")
        async with resources.pool.acquire() as conn:
            # rolled back at the end: members without lots or holds would fail a full check
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT points.lock_members($1, $2, true)", tenant, members)
            await _post(conn, tenant, members, [3, 5, 4, 1, 2], "grant", "issuance", "available",
                        at_once=at_once)
            await _post(conn, tenant, members, [2, 1, 1, 5, 2], "hold", "available", "held",
                        at_once=at_once)
            await _post(conn, tenant, members[1:], [1, 3, 5, 2], "capture", "held", "redemption",
                        at_once=at_once)
            transfers = await conn.fetch(
                "SELECT member_id, kind, amount, available_after, held_after"
                " FROM points.transfers WHERE tenant_id = $1 ORDER BY transfer_id", tenant)
            rows = await conn.fetch(
                "SELECT member_id, available, held, lifetime_earned, spent, expired, reversed"
                " FROM points.members WHERE tenant_id = $1 ORDER BY member_id", tenant)
            posted[at_once] = ([tuple(t) for t in transfers], [tuple(r) for r in rows])
            # (no lots or holds here: only what posting answers for is checked)
            problems = await conn.fetch(
                "SELECT problem FROM points.ledger_problems($1) WHERE problem = ANY($2::text[])",
                tenant, ["balance_differs_from_transfers", "balance_after_chain_broken"])
            await tx.rollback()
        assert problems == []
    assert posted[True] == posted[False]
    assert posted[True][1] == [("a", 0, 0, 6, 6, 0, 0), ("b", 4, 0, 7, 3, 0, 0),
                               ("c", 0, 0, 2, 2, 0, 0)]


async def test_posting_to_a_member_who_does_not_exist_is_a_bug(resources: Resources) -> None:
    tenant = uid("post")
    async with resources.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT points.lock_members($1, ARRAY['a'], true)", tenant)
        with pytest.raises(asyncpg.InternalServerError, match="ledger invariant"):
            await conn.execute("SELECT points.post_transfers($1, ARRAY['a', 'ghost'],"
                               " ARRAY[1, 2]::bigint[], 'grant', 'issuance', 'available',"
                               " 'r', now())", tenant)


async def test_the_sql_clawback_is_the_rules_clawback_up_to_the_largest_amounts(
        resources: Resources) -> None:
    cases = [(100, 10_000, 0, 2_500), (100, 10_000, 2_500, 3_333), (10, 3, 0, 1),
             (1_000_000_000, 100_000_000_000, 0, 33_333_333_333),
             (1_000_000_000, 100_000_000_000, 33_333_333_333, 66_666_666_667),
             (999_999_999, 99_999_999_999, 12_345_678_901, 1)]
    for case in cases:
        assert await resources.pool.fetchval(
            "SELECT points.clawback($1, $2, $3, $4)", *case) == rules.clawback(*case), case
