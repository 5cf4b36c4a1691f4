from __future__ import annotations

from tests.support.api import Points, error_code, uid


async def test_partial_refunds_claw_back_pro_rata(points: Points) -> None:
    member = uid("m")
    purchase = await points.event(member, "purchase", amount_cents=10_000)  # 100 points
    event_id = purchase.json()["event_id"]
    assert purchase.json()["points"] == 100
    first = await points.reverse(event_id, amount_cents=2_500)
    assert first.status_code == 201
    assert first.json() | {"reversal_id": None} == {
        "reversal_id": None, "event_id": event_id, "member_id": member, "refunded_cents": 2_500,
        "points": 25, "clawed_back": 25, "shortfall": 0, "balance": 75}
    second = await points.reverse(event_id, amount_cents=3_333)
    third = await points.reverse(event_id)  # the rest: 4 167 cents
    assert (second.json()["points"], third.json()["points"]) == (33, 42)
    assert third.json()["refunded_cents"] == 4_167 and third.json()["balance"] == 0
    info = await points.member(member)
    assert info["spend_cents"] == 0 and info["reversed"] == 100
    over = await points.reverse(event_id, amount_cents=1)
    assert over.status_code == 409 and error_code(over) == "reversal_exceeds_original"
    await points.assert_ledger_ok()


async def test_refund_after_spending_reports_the_shortfall(points: Points) -> None:
    member = uid("m")
    purchase = await points.event(member, "purchase", amount_cents=5_000)  # 50 points
    assert (await points.debit(member, 45)).status_code == 201
    reversal = await points.reverse(purchase.json()["event_id"])
    assert reversal.status_code == 201
    body = reversal.json()
    assert (body["points"], body["clawed_back"], body["shortfall"], body["balance"]) == \
        (50, 5, 45, 0)
    info = await points.member(member)
    assert info["available"] == 0 and info["held"] == 0 and info["spend_cents"] == 0
    await points.assert_ledger_ok()


async def test_refund_more_than_the_original_is_409_and_changes_nothing(points: Points) -> None:
    member = uid("m")
    purchase = await points.event(member, "purchase", amount_cents=1_000)
    too_much = await points.reverse(purchase.json()["event_id"], amount_cents=1_001)
    assert too_much.status_code == 409
    assert too_much.json()["error"]["details"] == {"refundable_cents": 1_000}
    info = await points.member(member)
    assert info["available"] == 10 and info["spend_cents"] == 1_000


async def test_non_purchase_events_reverse_whole_once(points: Points) -> None:
    member = uid("m")
    event = await points.event(member, "referral")
    event_id = event.json()["event_id"]
    partial = await points.reverse(event_id, amount_cents=10)
    assert partial.status_code == 422 and error_code(partial) == "amount_not_refundable"
    whole = await points.reverse(event_id)
    assert whole.status_code == 201 and whole.json()["clawed_back"] == 50
    twice = await points.reverse(event_id)
    assert twice.status_code == 409 and error_code(twice) == "already_reversed"
    unknown = await points.reverse("no-such-event")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_event"
    await points.assert_ledger_ok()


async def test_the_largest_purchase_reverses_without_overflowing(points: Points) -> None:
    """Points times cents passes a bigint for the largest amounts (10^9 points x 10^11 cents):
    the pro-rata clawback is computed without that limit."""
    member = uid("m")
    purchase = await points.event(member, "purchase", amount_cents=100_000_000_000)
    assert purchase.status_code == 201, purchase.text
    event_id, earned = purchase.json()["event_id"], purchase.json()["points"]
    assert earned == 1_000_000_000
    part = await points.reverse(event_id, amount_cents=33_333_333_333)
    assert part.status_code == 201, part.text
    assert part.json()["points"] == 333_333_333
    rest = await points.reverse(event_id)
    assert rest.status_code == 201, rest.text
    assert rest.json()["points"] == earned - 333_333_333
    assert rest.json()["balance"] == 0
    await points.assert_ledger_ok()
