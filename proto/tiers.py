"""Contracts of the tiers service (``/tiers/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.common import ID_PATTERN, PATTERN_END, Request, Response

TierName = Annotated[str, Meta(min_length=1, max_length=64,
                               pattern=r"^[A-Za-z0-9._-]+" + PATTERN_END)]
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


class Reevaluation(Response, frozen=True, kw_only=True):
    """The re-evaluation of every member that the last change of the policy started: ``pending``
    until the worker takes it up, ``running``, then ``done``."""

    state: Literal["pending", "running", "done"]
    members_done: int
    members_total: int | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ThresholdPolicyView(ThresholdPolicy, frozen=True, kw_only=True, tag="threshold",
                          tag_field="mode"):
    """The policy as set, and how far re-evaluating the members under it has come."""

    reevaluation: Reevaluation | None = None


class PercentilePolicyView(PercentilePolicy, frozen=True, kw_only=True, tag="percentile",
                           tag_field="mode"):
    """The policy as set, and how far re-evaluating the members under it has come."""

    reevaluation: Reevaluation | None = None


PolicyView = ThresholdPolicyView | PercentilePolicyView


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


# --- community groups -------------------------------------------------------------------

GroupKind = Literal["super", "member", "fan", "flash"]
GroupStatus = Literal["active", "dissolved"]
Period = Literal["week", "month"]
# A staff member's id, another group's id, and a group label (the pattern of
# services/tiers/tag_names.py TAG_PATTERN).
GroupOwner = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
GroupRef = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]
GroupTag = Annotated[str, Meta(pattern=r"^[a-z0-9_:-]{1,64}" + PATTERN_END)]


class GroupBody(Request, frozen=True, kw_only=True):
    """A group as a whole (PUT replaces it). ``owner``, ``tags`` and ``parent`` left out mean
    none; ``created_at`` (default now) is taken when the PUT creates the group only."""

    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    tier: TierName
    kind: GroupKind
    owner: GroupOwner | None = None
    tags: Annotated[list[GroupTag], Meta(max_length=50)] = []
    parent: GroupRef | None = None
    created_at: datetime | None = None


class Group(Response, frozen=True, kw_only=True):
    group_id: str
    name: str
    tier: str
    kind: GroupKind
    members: int
    created_at: datetime
    updated_at: datetime
    owner: str | None
    tags: list[str]
    parent: str | None
    status: GroupStatus
    dissolved_at: datetime | None


class Membership(Response, frozen=True, kw_only=True):
    group_id: str
    member_id: str
    joined_at: datetime
    left_at: datetime | None


class GroupReport(Response, frozen=True, kw_only=True):
    group_id: str
    period: Period
    start: datetime
    end: datetime
    members: int
    members_in_period: int
    joins: int
    leaves: int
    net_growth: int
    active_members: int
    active_rate: float
    purchasers: int
    conversion_rate: float
    gmv_cents: int
    value_mean: float | None
    high_value_members: int | None
    stage: Literal["golden", "silver"] | None
    activation_watch: bool | None


class MigrationSuggestion(Response, frozen=True, kw_only=True):
    member_id: str
    group_id: str
    group_tier: str
    member_tier: str | None
    value: float | None
    reason: Literal["tier_mismatch", "high_value_in_silver_group"]
    suggested_groups: list[str]


class Composition(Response, frozen=True, kw_only=True):
    group_id: str
    kind: GroupKind
    members: int
    shares: dict[str, float]
    target: dict[str, float]
    balanced: bool


class Migrations(Response, frozen=True, kw_only=True):
    moves: list[MigrationSuggestion]
    truncated: bool
    compositions: list[Composition]


# --- value scores -------------------------------------------------------------------------

Category = Literal["consumption", "content", "interaction", "social"]
Weight = Annotated[float, Meta(ge=0, le=1_000_000)]


class ActionWeight(Request, frozen=True, kw_only=True):
    category: Category
    weight: Weight = 0.0
    per_100_cents: Weight | None = None


class ValueModel(Request, frozen=True, kw_only=True):
    window_days: Annotated[int, Meta(ge=1, le=3650)]
    high_value_line: Annotated[float, Meta(ge=0, le=10**12)]
    actions: Annotated[
        dict[Annotated[str, Meta(min_length=1, max_length=64,
                                 pattern=r"^[a-z][a-z0-9_]*" + PATTERN_END)],
             ActionWeight],
        Meta(min_length=1, max_length=200)]


class MemberValue(Response, frozen=True, kw_only=True):
    member_id: str
    total: float
    consumption: float
    content: float
    interaction: float
    social: float
    high_value: bool
    window_days: int
    last_day: date


class Koc(Response, frozen=True, kw_only=True):
    rank: int
    member_id: str
    total: float
    consumption: float
    content: float
    interaction: float
    social: float


class KocList(Response, frozen=True, kw_only=True):
    share: float
    population: int
    count: int
    last_day: date
    items: list[Koc]


# --- lifecycle (AIPL) ---------------------------------------------------------------------

LifecycleStage = Literal["aware", "interested", "purchased", "loyal"]
EngagementAction = Annotated[str, Meta(min_length=1, max_length=64,
                                       pattern=r"^[a-z][a-z0-9_]*" + PATTERN_END)]
DEFAULT_ENGAGEMENT_ACTIONS = ("speak", "survey", "bind", "referral")


class LifecycleModel(Request, frozen=True, kw_only=True):
    """A tenant's AIPL model: interested = at least ``interested_min_actions`` engagement
    actions in the window of ``window_days`` local days ending on the evaluation day;
    purchased = a purchase in the window; loyal = at least ``loyal_min_purchases`` purchases in
    the window, or the window's latest purchase at most ``repurchase_within_days`` local days
    after the purchase before it."""

    engagement_actions: Annotated[tuple[EngagementAction, ...],
                                  Meta(min_length=1, max_length=50)] = DEFAULT_ENGAGEMENT_ACTIONS
    interested_min_actions: Annotated[int, Meta(ge=1, le=1_000_000)] = 3
    window_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    loyal_min_purchases: Annotated[int, Meta(ge=2, le=1_000_000)] = 3
    repurchase_within_days: Annotated[int, Meta(ge=1, le=3650)] = 30


class LifecycleModelView(Response, frozen=True, kw_only=True):
    """The model in force; ``is_default`` when the tenant has set none (these are the
    defaults)."""

    engagement_actions: list[str]
    interested_min_actions: int
    window_days: int
    loyal_min_purchases: int
    repurchase_within_days: int
    is_default: bool
    updated_at: datetime | None


class LifecycleEvaluationBody(Request, frozen=True, kw_only=True):
    at: datetime | None = None


class StageCounts(Response, frozen=True, kw_only=True):
    aware: int
    interested: int
    purchased: int
    loyal: int


class StageMove(Response, frozen=True, kw_only=True):
    """Members moved from one stage to another (``from_stage`` null: their first stage)."""

    from_stage: LifecycleStage | None
    to_stage: LifecycleStage
    members: int


class LifecycleEvaluation(Response, frozen=True, kw_only=True):
    at: datetime
    day: date
    members: int
    changed: int
    stages: StageCounts
    moves: list[StageMove]


class LifecycleFigures(Response, frozen=True, kw_only=True):
    """A member's figures over the window (local days ``first_day`` .. ``last_day``)."""

    first_day: date
    last_day: date
    engagement_actions: int
    purchases: int
    last_purchase_day: date | None
    repurchase_gap_days: int | None


class LifecycleNeed(Response, frozen=True, kw_only=True):
    """One way up to the next stage: ``count`` more of ``kind`` within ``within_days`` days
    (for a repurchase: a purchase by ``by_day``, the last day it is still one)."""

    kind: Literal["engagement_actions", "purchases", "repurchase"]
    count: int
    within_days: int
    by_day: date | None = None
    description: str


class MemberLifecycle(Response, frozen=True, kw_only=True):
    """A member's stage as of the tenant's last evaluation (null before the first that saw
    them), the figures behind it and what moves the member up (any one of ``needs``)."""

    member_id: str
    stage: LifecycleStage | None
    since: datetime | None
    evaluation_day: date | None
    figures: LifecycleFigures
    next_stage: LifecycleStage | None
    needs: list[LifecycleNeed]


class StageChange(Response, frozen=True, kw_only=True):
    from_stage: LifecycleStage | None
    to_stage: LifecycleStage
    at: datetime


class StageHistory(Response, frozen=True, kw_only=True):
    member_id: str
    items: list[StageChange]
    next_cursor: str | None


class FunnelCounts(Response, frozen=True, kw_only=True):
    """Members per stage; ``none``: members without a stage yet."""

    none: int
    aware: int
    interested: int
    purchased: int
    loyal: int


class FunnelCell(Response, frozen=True, kw_only=True):
    from_stage: Literal["none", "aware", "interested", "purchased", "loyal"]
    to_stage: LifecycleStage
    members: int


class LifecycleFunnel(Response, frozen=True, kw_only=True):
    """Members with a stage at ``to``: their stages at ``from`` and at ``to`` and every cell of
    the transition matrix between them."""

    from_: datetime = msgspec.field(name="from")
    to: datetime
    at_from: FunnelCounts
    at_to: FunnelCounts
    matrix: list[FunnelCell]


# --- groups as an SCRM: dissolution, lists and trends --------------------------------------

TrendStep = Literal["day", "week"]


class DissolutionBody(Request, frozen=True, kw_only=True):
    """When the group was dissolved (default now): every open stay ends then."""

    at: datetime | None = None


class GroupListItem(Response, frozen=True, kw_only=True):
    group_id: str
    name: str
    tier: str
    kind: GroupKind
    owner: str | None
    tags: list[str]
    parent: str | None
    status: GroupStatus
    created_at: datetime
    dissolved_at: datetime | None
    members: int
    active_members_7d: int
    active_rate_7d: float
    stage: Literal["golden", "silver"] | None


class GroupList(Response, frozen=True, kw_only=True):
    items: list[GroupListItem]
    next_cursor: str | None


class TrendGrowth(Response, frozen=True, kw_only=True):
    """(this period - previous) / |previous| per figure, rounded to 4 places; null when the
    previous period's figure is 0."""

    groups: float | None
    new_groups: float | None
    dissolved: float | None
    members: float | None
    joins: float | None
    leaves: float | None
    net_adds: float | None
    speakers: float | None
    purchasers: float | None
    gmv_cents: float | None


class TrendPeriod(Response, frozen=True, kw_only=True):
    first_day: date
    starts_at: datetime
    ends_at: datetime
    groups: int
    new_groups: int
    dissolved: int
    members: int
    joins: int
    leaves: int
    net_adds: int
    speakers: int
    purchasers: int
    gmv_cents: int
    growth: TrendGrowth


class GroupTrends(Response, frozen=True, kw_only=True):
    by: TrendStep
    first_day: date
    last_day: date
    group_count: int
    periods: list[TrendPeriod]


# --- segments -----------------------------------------------------------------------------

# A tag's name, as services/tiers/tag_names.py TAG_PATTERN says.
SegmentTag = Annotated[str, Meta(pattern=r"^[a-z0-9_:-]{1,64}" + PATTERN_END,
                                 description="1-64 characters of [a-z0-9_:-]; group:value")]
SegmentTags = Annotated[list[SegmentTag], Meta(max_length=50)]
SegmentStage = Literal["aware", "interested", "purchased", "loyal"]
Score = Annotated[float, Meta(ge=-10**12, le=10**12)]
SegmentId = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN)]


class TagFilter(Request, frozen=True, kw_only=True):
    """Tags the member has every one of (``all``), at least one of (``any``, when not empty)
    and none of (``none``)."""

    all: SegmentTags = []
    any: SegmentTags = []
    none: SegmentTags = []


class ValueRange(Request, frozen=True, kw_only=True):
    """Bounds (inclusive) of the total value score under the tenant's value model."""

    min: Score | None = None
    max: Score | None = None


class SegmentFilter(Request, frozen=True, kw_only=True):
    """Conditions on the known members, ANDed; a condition left out does not filter."""

    tiers: Annotated[list[TierName], Meta(min_length=1, max_length=20)] | None = None
    stages: Annotated[list[SegmentStage], Meta(min_length=1, max_length=4)] | None = None
    tags: TagFilter | None = None
    value: ValueRange | None = None
    groups: Annotated[list[SegmentId], Meta(min_length=1, max_length=100)] | None = None
    koc: bool | None = None


class SegmentBody(Request, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    filter: SegmentFilter


class Segment(Response, frozen=True, kw_only=True):
    """A saved filter and its frozen member list: ``count`` members as of ``computed_at``."""

    segment_id: str
    name: str
    filter: SegmentFilter
    count: int
    computed_at: datetime
    created_at: datetime
    updated_at: datetime


class SegmentPreviewBody(Request, frozen=True, kw_only=True):
    filter: SegmentFilter


class SegmentPreview(Response, frozen=True, kw_only=True):
    """How many known members a filter selects now; nothing is saved."""

    count: int
    computed_at: datetime


class SegmentList(Response, frozen=True, kw_only=True):
    items: list[Segment]
    next_cursor: str | None


class SegmentMember(Response, frozen=True, kw_only=True):
    member_id: str


class SegmentMembers(Response, frozen=True, kw_only=True):
    """A page of the frozen member list (member id order), with the list's count and
    computation time."""

    segment_id: str
    count: int
    computed_at: datetime
    items: list[SegmentMember]
    next_cursor: str | None


# --- member tags ----------------------------------------------------------------------------

# services.tiers.tag_names.TAG_PATTERN (a test keeps them equal)
Tag = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_:-]{1,64}" + PATTERN_END,
                          description="1-64 characters of [a-z0-9_:-]; `group:value` belongs "
                                      "to the tag group `group`")]
TagSource = Literal["manual", "rule"]
TagAction = Literal["add", "remove"]
# proto.common.Id, spelt out so this block stands alone
PlainId = Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_PATTERN,
                              description="1-128 characters of [A-Za-z0-9._:-]")]
MAX_BULK_MEMBERS = 10_000
Days = Annotated[int, Meta(ge=1, le=3650)]


class TagGroupBody(Request, frozen=True, kw_only=True):
    description: Annotated[str, Meta(max_length=500, pattern=r"^[^\x00]*$")] = ""


class TagCount(Response, frozen=True, kw_only=True):
    tag: str
    members: int


class TagGroup(Response, frozen=True, kw_only=True):
    """A tag group; ``rule`` groups are built in and only rules set their tags."""

    tag_group: str
    description: str
    rule: bool
    tags: list[TagCount]


class TagGroupList(Response, frozen=True, kw_only=True):
    items: list[TagGroup]


class MemberTag(Response, frozen=True, kw_only=True):
    tag: str
    source: TagSource
    since: datetime


class MemberTags(Response, frozen=True, kw_only=True):
    member_id: str
    items: list[MemberTag]


class TagBulkIn(Request, frozen=True, kw_only=True):
    bulk_id: PlainId
    tag: Tag
    action: TagAction
    member_ids: Annotated[list[PlainId], Meta(min_length=1, max_length=MAX_BULK_MEMBERS)]


class TagBulk(Response, frozen=True, kw_only=True):
    """A bulk tagging as done (a repeat of its id answers the same)."""

    bulk_id: str
    tag: str
    action: TagAction
    member_count: int
    changed: int
    at: datetime


class RepurchaserRule(Request, frozen=True, kw_only=True):
    purchases: Annotated[int, Meta(ge=1, le=1000)] = 2
    window_days: Days = 90


class CouponLoverRule(Request, frozen=True, kw_only=True):
    share: Annotated[float, Meta(gt=0, le=1)] = 0.5
    min_purchases: Annotated[int, Meta(ge=1, le=1000)] = 1
    window_days: Days = 90


class NewMemberRule(Request, frozen=True, kw_only=True):
    days: Days = 30


class DormantRule(Request, frozen=True, kw_only=True):
    days: Days = 30


class FirstOrderDaysRule(Request, frozen=True, kw_only=True):
    edges: Annotated[tuple[Annotated[int, Meta(ge=0, le=3650)], ...],
                     Meta(min_length=1, max_length=10,
                          description="last day of each bucket, increasing")] = (0, 7, 30)


class TagRules(Request, frozen=True, kw_only=True):
    """Thresholds of the rule tags; a rule left out keeps its defaults."""

    repurchaser: RepurchaserRule = RepurchaserRule()
    coupon_lover: CouponLoverRule = CouponLoverRule()
    new_member: NewMemberRule = NewMemberRule()
    dormant: DormantRule = DormantRule()
    first_order_days: FirstOrderDaysRule = FirstOrderDaysRule()


class TagEvaluationIn(Request, frozen=True, kw_only=True):
    at: datetime | None = None


class TagEvaluation(Response, frozen=True, kw_only=True):
    """An evaluation of rule tags: as of ``at`` (local ``day``), over ``members`` members."""

    at: datetime
    day: date
    members: int
    rule_tags: int
    added: int
    removed: int
