"""Pure rules of segments: which filters are valid for a tenant (its tier ladder, tag groups,
groups and value model), and the arguments of the one SQL statement that selects a filter's
members."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from proto.tiers import SegmentFilter
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.tiers.tag_names import RULE_GROUPS, is_tag, tag_group

# Rule tags the tags feature writes in these groups (`source:<channel>`,
# `first_order_days:<bucket>`) without any tag group row, so they are always known.
# The largest page of a segment's member list: the issuing services read a whole segment that
# fits their item limit (10 000) in one page, one consistent read.
MAX_MEMBERS_PAGE = 10_000


@dataclass(frozen=True)
class Query:
    """The arguments of ``tiers.segment_select``: None leaves a condition out."""

    tiers: list[str] | None
    lowest: str | None
    stages: list[str] | None
    all_tags: list[str] | None
    any_tags: list[str] | None
    no_tags: list[str] | None
    groups: list[str] | None
    min_value: float | None
    max_value: float | None
    koc: bool | None

    @property
    def needs_scores(self) -> bool:
        return self.min_value is not None or self.max_value is not None or self.koc is not None


def tags_of(segment_filter: SegmentFilter) -> list[str]:
    tags = segment_filter.tags
    return [] if tags is None else [*tags.all, *tags.any, *tags.none]


def tag_groups_named(segment_filter: SegmentFilter) -> set[str]:
    """The tag groups the filter's ``group:value`` tags belong to, built-in groups left out."""
    groups = {tag_group(tag) for tag in tags_of(segment_filter)}
    return {group for group in groups if group is not None} - set(RULE_GROUPS)


def needs_value_model(segment_filter: SegmentFilter) -> bool:
    return segment_filter.value is not None or segment_filter.koc is not None


def check_filter(segment_filter: SegmentFilter, *, ladder: Sequence[str] | None,
                 known_tag_groups: Collection[str], known_groups: Collection[str],
                 has_value_model: bool) -> None:
    """Refuses a filter naming what the tenant does not have: a tier outside its ladder (or
    any tier without a policy), a tag of an unknown group, an unknown group, value or KOC
    conditions without a value model; and malformed tags or an empty value range."""
    if segment_filter.tiers is not None:
        if ladder is None:
            raise Conflict("set a tier policy before filtering on tiers", code="no_policy")
        for index, tier in enumerate(segment_filter.tiers):
            if tier not in ladder:
                raise ValidationFailed(f"{tier!r} is not a tier of the policy",
                                       code="unknown_tier", field=f"filter.tiers[{index}]",
                                       tiers=list(ladder))
    tags = segment_filter.tags
    if tags is not None:
        for kind, names in (("all", tags.all), ("any", tags.any), ("none", tags.none)):
            for index, tag in enumerate(names):
                field = f"filter.tags.{kind}[{index}]"
                if not is_tag(tag):
                    raise ValidationFailed(f"{tag!r} is not a tag name ([a-z0-9_:-]{{1,64}})",
                                           field=field)
                group = tag_group(tag)
                if group is not None and group not in RULE_GROUPS \
                        and group not in known_tag_groups:
                    raise ValidationFailed(f"tag group {group!r} of {tag!r} is unknown",
                                           code="unknown_tag_group", field=field,
                                           tag_group=group)
    if segment_filter.groups is not None:
        for index, group_id in enumerate(segment_filter.groups):
            if group_id not in known_groups:
                raise ValidationFailed(f"no group {group_id!r}", code="unknown_group",
                                       field=f"filter.groups[{index}]")
    value = segment_filter.value
    if value is not None and value.min is not None and value.max is not None \
            and value.min > value.max:
        raise ValidationFailed("value.min is above value.max", field="filter.value")
    if needs_value_model(segment_filter) and not has_value_model:
        raise Conflict("set a value model first (PUT /tiers/v1/value-model)",
                       code="no_value_model")


def _listed(names: Sequence[str] | None) -> list[str] | None:
    """Each name once, in a stable order; an empty list is no condition."""
    return sorted(set(names)) if names else None


def query(segment_filter: SegmentFilter, ladder: Sequence[str] | None) -> Query:
    """The SQL arguments of a checked filter; members without a tier are at the lowest."""
    tags = segment_filter.tags
    value = segment_filter.value
    return Query(
        tiers=_listed(segment_filter.tiers),
        lowest=ladder[0] if ladder else None,
        stages=_listed(segment_filter.stages),
        all_tags=_listed(tags.all if tags else None),
        any_tags=_listed(tags.any if tags else None),
        no_tags=_listed(tags.none if tags else None),
        groups=_listed(segment_filter.groups),
        min_value=value.min if value else None,
        max_value=value.max if value else None,
        koc=segment_filter.koc)


def unknown_segment(segment_id: str) -> NotFound:
    return NotFound(f"no segment {segment_id!r}", code="unknown_segment")


def check_page(segment_computed: int, cursor_computed: int) -> None:
    """A cursor of a list computed before the current one: the pages would mix two lists."""
    if segment_computed != cursor_computed:
        raise Conflict("the segment was computed again since this cursor: start over",
                       code="segment_recomputed")
