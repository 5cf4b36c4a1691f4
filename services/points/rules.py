"""Pure rules of the ledger, without I/O: what a request must satisfy before the database sees
it, and the arithmetic the ledger's answers are read with.

Earning, caps, lots and spending run inside PostgreSQL (services/points/sql), so that an event is
one round trip; ``clawback`` states the refund rounding of ``points.reverse_event`` in Python for
the model-based test (tests/points/test_model.py), which checks the database against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from proto.points import GrantIn, GrantItem, RuleIn
from services.runtime.errors import ValidationFailed
from services.runtime.times import with_offset


def validate_rule(rule: RuleIn) -> None:
    if (rule.points_per_unit > 0) != (rule.unit_cents is not None):
        raise ValidationFailed("points_per_unit and unit_cents go together: both or neither",
                               field="unit_cents")
    periods = [limit.period for limit in rule.limits]
    if len(set(periods)) != len(periods):
        raise ValidationFailed("at most one limit per period", field="limits")
    for index, limit in enumerate(rule.limits):
        if limit.max_events is None and limit.max_points is None:
            raise ValidationFailed("a limit needs max_events and/or max_points",
                                   field=f"limits[{index}]")


def stored_limits(rule: RuleIn) -> list[dict[str, Any]]:
    """The rule's limits as stored (points.rules.limits): absent maxima are left out, because the
    SQL tests for a key's presence."""
    stored: list[dict[str, Any]] = []
    for limit in rule.limits:
        item: dict[str, Any] = {"period": limit.period}
        if limit.max_events is not None:
            item["max_events"] = limit.max_events
        if limit.max_points is not None:
            item["max_points"] = limit.max_points
        stored.append(item)
    return stored


def check_grant_expiries(items: Sequence[GrantItem], now: datetime) -> None:
    """A grant item's own expiry has a zone and is in the future."""
    for index, item in enumerate(items):
        if item.expires_at is not None:
            field = f"items[{index}].expires_at"
            if with_offset(item.expires_at, field) <= now:
                raise ValidationFailed("expires_at must be in the future", field=field)


def check_grant_form(body: GrantIn, now: datetime) -> None:
    """Exactly one of ``items`` and ``segment_id``; a grant to a segment says its ``points``
    (and may say ``expires_at``), a grant of items says them per item."""
    if body.segment_id is None:
        if body.items is None:
            raise ValidationFailed("give exactly one of items and segment_id", field="items")
        for field in ("points", "expires_at"):
            if getattr(body, field) is not None:
                raise ValidationFailed(f"{field} goes with segment_id (items carry their own)",
                                       field=field)
        return
    if body.items is not None:
        raise ValidationFailed("give exactly one of items and segment_id", field="segment_id")
    if body.points is None:
        raise ValidationFailed("a grant to a segment needs points", field="points")
    if body.expires_at is not None and with_offset(body.expires_at, "expires_at") <= now:
        raise ValidationFailed("expires_at must be in the future", field="expires_at")


def segment_items(members: Sequence[str], points: int,
                  expires_at: datetime | None) -> list[GrantItem]:
    """The same points for every member of a segment, each once, in member id order."""
    return [GrantItem(member_id=member_id, points=points, expires_at=expires_at)
            for member_id in sorted(set(members))]


def account_change(from_account: str, to_account: str, amount: int, account: str) -> int:
    """What a transfer did to ``account``: + into it, - out of it, 0 if it was not involved."""
    if to_account == account:
        return amount
    if from_account == account:
        return -amount
    return 0


def clawback(points: int, amount_cents: int, refunded_before: int, refund: int) -> int:
    """Points to claw back for a refund of ``refund`` cents after ``refunded_before`` cents were
    refunded already. Rounding is cumulative, so refunds that add up to the whole amount claw
    back exactly the event's points."""
    return (points * (refunded_before + refund)) // amount_cents \
        - (points * refunded_before) // amount_cents
