"""Applying the points service's facts to member metrics, and threshold tier moves."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import msgspec

from proto.events import (
    Envelope,
    PointsAwarded,
    PointsExpired,
    PointsRefunded,
    PointsReversed,
    PointsSpent,
    PurchaseRecorded,
    PurchaseReversed,
    TierChanged,
)
from proto.tiers import Policy, ThresholdPolicy
from services.runtime.outbox import emit
from services.tiers import domain, store

_policy_decoder = msgspec.json.Decoder(Policy)


def decode_policy(raw: object) -> Policy | None:
    return None if raw is None else msgspec.convert(raw, Policy)


async def apply_fact(conn: asyncpg.Connection, envelope: Envelope) -> str | None:
    """Fold one points event into the member's metrics; returns the member it concerns."""
    tenant = envelope.tenant_id
    kind = envelope.type
    if kind == "PointsAwarded":
        awarded = msgspec.json.decode(envelope.data, type=PointsAwarded)
        await store.add_day(conn, tenant, awarded.member_id, awarded.occurred_at.date(), 0,
                            awarded.points)
        await store.add_available(conn, tenant, awarded.member_id, awarded.points)
        return awarded.member_id
    if kind == "PurchaseRecorded":
        bought = msgspec.json.decode(envelope.data, type=PurchaseRecorded)
        await store.add_day(conn, tenant, bought.member_id,
                            bought.occurred_at.astimezone(UTC).date(), bought.amount_cents, 0)
        return bought.member_id
    if kind == "PurchaseReversed":
        refunded = msgspec.json.decode(envelope.data, type=PurchaseReversed)
        await store.add_day(conn, tenant, refunded.member_id,
                            refunded.occurred_at.astimezone(UTC).date(), -refunded.amount_cents,
                            0)
        return refunded.member_id
    if kind == "PointsReversed":
        reversed_ = msgspec.json.decode(envelope.data, type=PointsReversed)
        await store.add_day(conn, tenant, reversed_.member_id,
                            reversed_.reversed_at.astimezone(UTC).date(), 0, -reversed_.points)
        await store.add_available(conn, tenant, reversed_.member_id, -reversed_.clawed_back)
        return reversed_.member_id
    if kind in ("PointsSpent", "PointsExpired", "PointsRefunded"):
        fact = msgspec.json.decode(envelope.data,
                                   type={"PointsSpent": PointsSpent,
                                         "PointsExpired": PointsExpired,
                                         "PointsRefunded": PointsRefunded}[kind])
        sign = 1 if kind == "PointsRefunded" else -1
        await store.add_available(conn, tenant, fact.member_id, sign * fact.points)
        return fact.member_id
    return None


async def apply_and_evaluate(conn: asyncpg.Connection, envelope: Envelope) -> None:
    member_id = await apply_fact(conn, envelope)
    if member_id is not None:
        await evaluate(conn, envelope.tenant_id, member_id)


async def evaluate(conn: asyncpg.Connection, tenant_id: str, member_id: str,
                   now: datetime | None = None) -> None:
    """Re-evaluate a member under a threshold policy (percentile tiers move in the job)."""
    policy = decode_policy(await store.policy(conn, tenant_id))
    if not isinstance(policy, ThresholdPolicy):
        return
    now = now or datetime.now(UTC)
    row = await store.locked_member(conn, tenant_id, member_id)
    metrics = await store.metrics(conn, tenant_id, member_id, policy.window_days, now)
    qualified = await store.threshold_tier(conn, msgspec.to_builtins(policy), metrics)
    names = [t.name for t in policy.tiers]
    current = names.index(row["tier"]) if row["tier"] in names else None
    move = domain.next_tier(current, qualified, row["below_since"], policy.grace_days, now)
    tier = names[move.tier_index]
    if not move.changed:
        await store.save_member(conn, tenant_id, member_id, row["tier"], row["since"],
                                move.below_since, metrics)
        return
    await store.save_member(conn, tenant_id, member_id, tier, now, None, metrics)
    await store.add_history(conn, tenant_id, member_id, row["tier"], tier, metrics, now)
    benefits = policy.tiers[move.tier_index].benefits
    await emit(conn, service="tiers", tenant_id=tenant_id, events=[TierChanged(
        member_id=member_id, tier=tier, previous_tier=row["tier"], changed_at=now,
        earn_multiplier=(benefits.earn_multiplier if benefits and benefits.earn_multiplier
                         else 1.0))])
