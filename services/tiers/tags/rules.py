"""Pure rules of member tags: which tags an operator may set (and in which groups), the
first_order_days buckets, the rule thresholds, bulk member lists (JSON or CSV) and the moment
an evaluation of rule tags is as of."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from proto.common import ID_PATTERN
from proto.tiers import MAX_BULK_MEMBERS, TagRules
from services.runtime.errors import Conflict, ValidationFailed
from services.runtime.times import happened
from services.tiers.members import is_escrow
from services.tiers.tag_names import RULE_GROUPS, is_tag, tag_group

# Tags only the daily rules set: these names, and every tag of the rule groups.
RULE_TAGS = ("repurchaser", "coupon_lover", "new_member", "dormant")
RULE_GROUP_DESCRIPTIONS = {
    "source": "the channel attribute of the member's earliest event that has one",
    "first_order_days": "days from first seen to the first purchase, in buckets",
}
CSV_HEADER = "member_id"
_ID = re.compile(ID_PATTERN)
_ID_MAX = 128


def check_manual_tag(tag: str, groups: Iterable[str]) -> None:
    """A tag an operator may set: a well-formed name, not a rule tag, and in a tag group the
    tenant has (``groups``) if it names one."""
    if not is_tag(tag):
        raise ValidationFailed(f"{tag!r} is not a tag name: 1-64 characters of [a-z0-9_:-]",
                               code="bad_tag", field="tag")
    if tag in RULE_TAGS:
        raise ValidationFailed(f"{tag!r} is a rule tag: only the daily rules set it",
                               code="rule_tag", field="tag")
    group = tag_group(tag)
    if group is None:
        return
    if group in RULE_GROUPS:
        raise ValidationFailed(f"the tag group {group!r} is set only by rules",
                               code="rule_tag_group", field="tag", tag_group=group)
    if group not in set(groups):
        raise ValidationFailed(f"no tag group {group!r}: create it first (PUT "
                               f"/tiers/v1/tag-groups/{group})", code="unknown_tag_group",
                               field="tag", tag_group=group)


def check_group_name(group: str) -> None:
    """A tag group operators may create or describe: not a built-in rule group."""
    if group in RULE_GROUPS:
        raise ValidationFailed(f"{group!r} is a built-in rule tag group", code="rule_tag_group",
                               field="tag_group", tag_group=group)


def check_rules(rules: TagRules) -> None:
    edges = rules.first_order_days.edges
    if any(later <= earlier for earlier, later in itertools.pairwise(edges)):
        raise ValidationFailed("first_order_days.edges must be increasing",
                               field="first_order_days.edges")


def bucket_label(first: int, last: int | None) -> str:
    """The name of a bucket of days: ``0``, ``1-7``, or ``31_plus`` for one without end
    (``+`` is not a tag character)."""
    if last is None:
        return f"{first}_plus"
    return str(first) if first == last else f"{first}-{last}"


def buckets(edges: Sequence[int]) -> tuple[list[int], list[str]]:
    """The first_order_days buckets of increasing ``edges`` (the last day of each bucket): the
    first day of every bucket after the first (bucket one starts at day 0), and the names of
    all of them, one more than the edges (the last has no end)."""
    starts = [edge + 1 for edge in edges]
    labels = [bucket_label(first, last) for first, last in zip([0, *starts], edges, strict=False)]
    return starts, [*labels, bucket_label(starts[-1], None)]


def bucket_of(days: int, edges: Sequence[int]) -> str:
    """The bucket ``days`` (from first seen to the first purchase) falls in."""
    starts, labels = buckets(edges)
    return labels[sum(1 for start in starts if max(days, 0) >= start)]


def _checked_id(member_id: str) -> str | None:
    """Why ``member_id`` is not a member id, or None."""
    if not member_id or len(member_id) > _ID_MAX or not _ID.match(member_id):
        return "is not a member id: 1-128 characters of [A-Za-z0-9._:-]"
    if is_escrow(member_id):
        return "is an escrow account of the points ledger, not a member"
    return None


def check_member(member_id: str) -> None:
    """A member named in a path (its form checked by the route): not an escrow account."""
    problem = _checked_id(member_id)
    if problem is not None:
        raise ValidationFailed(f"{member_id!r} {problem}", code="bad_member_id",
                               field="member_id")


def unique(member_ids: Iterable[str]) -> list[str]:
    """Each member once, in the order first given."""
    return list(dict.fromkeys(member_ids))


def listed_members(member_ids: Sequence[str]) -> list[str]:
    """A JSON member list (ids already well-formed): refuses the first escrow id by its
    position; each member once."""
    for index, member_id in enumerate(member_ids):
        problem = _checked_id(member_id)
        if problem is not None:
            raise ValidationFailed(f"member_ids[{index}] {member_id!r} {problem}",
                                   code="bad_member_id", field=f"member_ids[{index}]",
                                   index=index)
    return unique(member_ids)


def csv_members(text: str) -> list[str]:
    """A CSV body: one member id a line (lines end in LF or CRLF; the id may be in double
    quotes), an optional first line ``member_id``, blank lines skipped. The first bad line is
    refused by its number (from 1); each member once."""
    found: list[str] = []
    for line, raw in enumerate(text.split("\n"), start=1):
        cell = raw.removesuffix("\r").strip()
        if len(cell) >= 2 and cell[0] == cell[-1] == '"':
            cell = cell[1:-1].strip()
        if not cell or (line == 1 and cell == CSV_HEADER):
            continue
        if "," in cell:
            raise ValidationFailed(f"line {line}: one member id a line", code="bad_member_id",
                                   line=line)
        problem = _checked_id(cell)
        if problem is not None:
            raise ValidationFailed(f"line {line}: {cell[:140]!r} {problem}",
                                   code="bad_member_id", line=line)
        found.append(cell)
        if len(found) > MAX_BULK_MEMBERS:
            raise ValidationFailed(f"at most {MAX_BULK_MEMBERS} members a call",
                                   code="too_many_members", line=line)
    if not found:
        raise ValidationFailed("the CSV body names no member", code="no_members")
    return unique(found)


def evaluation_moment(at: datetime | None, now: datetime, last: datetime | None) -> datetime:
    """When an evaluation of rule tags is as of: ``at`` (not in the future) or now, never
    before the last evaluation; kept in UTC."""
    moment = happened(at, now, "at").astimezone(UTC)
    if last is not None and moment < last:
        raise Conflict(f"rule tags were last evaluated as of {last.isoformat()}; an evaluation "
                       "cannot go back before it", code="evaluation_out_of_order",
                       last_evaluation_at=last.isoformat())
    return moment
