"""Contracts of the tiers service (``/tiers/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.common import Request, Response

TierName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Metric = Literal["points_earned", "points_available", "spend_cents"]
Amount = Annotated[int, Meta(ge=0, le=10**15)]


class Minimums(Request, frozen=True, kw_only=True):
    spend_cents: Amount | None = None
    points_earned: Amount | None = None
    points_available: Amount | None = None


class Benefits(Request, frozen=True, kw_only=True):
    earn_multiplier: Annotated[float, Meta(gt=0, le=100)] | None = None


class ThresholdTier(Request, frozen=True, kw_only=True):
    name: TierName
    min: Minimums | None = None
    match: Literal["any", "all"] = "all"
    benefits: Benefits | None = None


class PercentileTier(Request, frozen=True, kw_only=True):
    name: TierName
    share: Annotated[float, Meta(gt=0, le=1)]
    benefits: Benefits | None = None


class ThresholdPolicy(Request, frozen=True, kw_only=True, tag="threshold", tag_field="mode"):
    window_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    grace_days: Annotated[int, Meta(ge=0, le=3650)] = 0
    tiers: Annotated[list[ThresholdTier], Meta(min_length=1, max_length=20)]


class PercentilePolicy(Request, frozen=True, kw_only=True, tag="percentile", tag_field="mode"):
    metric: Metric
    window_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    grace_days: Annotated[int, Meta(ge=0, le=3650)] = 0
    tiers: Annotated[list[PercentileTier], Meta(min_length=1, max_length=20)]


Policy = ThresholdPolicy | PercentilePolicy


class NextTier(Response, frozen=True, kw_only=True):
    tier: str
    needed: dict[str, int]


class MemberTier(Response, frozen=True, kw_only=True):
    member_id: str
    tier: str | None
    since: datetime | None
    metrics: dict[str, int]
    next: NextTier | None
    grace_until: datetime | None


class TierChange(Response, frozen=True, kw_only=True):
    from_tier: str | None
    to_tier: str
    metrics: dict[str, int]
    at: datetime


class TierHistory(Response, frozen=True, kw_only=True):
    items: list[TierChange]


def policy_json(policy: Policy) -> bytes:
    return msgspec.json.encode(policy)


class CutLine(Response, frozen=True, kw_only=True):
    tier: str
    members: int
    from_value: float | None


class Evaluation(Response, frozen=True, kw_only=True):
    members: int
    changed: int
    cuts: list[CutLine]


class TierShare(Response, frozen=True, kw_only=True):
    tier: str
    members: int
    share: float


class Distribution(Response, frozen=True, kw_only=True):
    members: int
    tiers: list[TierShare]
    cut_lines: list[CutLine]
    evaluated_at: datetime | None
