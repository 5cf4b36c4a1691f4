"""Unit tests of the pure segment rules: filter checks against what a tenant has, and the SQL
arguments a filter becomes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from proto.tiers import SegmentFilter, TagFilter
from services.runtime.errors import Conflict, FuliError, ValidationFailed
from services.tiers.segments import rules

LADDER = ["fan", "member", "vip"]


def segment_filter(**fields: Any) -> SegmentFilter:
    return msgspec.convert(fields, SegmentFilter)


def check(found: SegmentFilter, *, ladder: list[str] | None = LADDER,
          tag_groups: set[str] | None = None, groups: set[str] | None = None,
          model: bool = True) -> None:
    rules.check_filter(found, ladder=ladder, known_tag_groups=tag_groups or set(),
                       known_groups=groups or set(), has_value_model=model)


def refusal(found: SegmentFilter, **known: Any) -> FuliError:
    with pytest.raises(FuliError) as raised:
        check(found, **known)
    return raised.value


def test_a_filter_naming_only_what_the_tenant_has_passes() -> None:
    check(segment_filter(tiers=["member", "vip"], stages=["loyal"],
                         tags={"all": ["preference:tea"], "any": ["source:app"],
                               "none": ["dormant", "first_order_days:0-7"]},
                         groups=["g1"], value={"min": 1, "max": 1}, koc=False),
          tag_groups={"preference"}, groups={"g1", "g2"})
    check(segment_filter(), ladder=None, model=False)  # no conditions: no requirements


def test_tiers_must_be_on_the_ladder_and_need_a_policy() -> None:
    unknown = refusal(segment_filter(tiers=["member", "gold"]))
    assert isinstance(unknown, ValidationFailed) and unknown.code == "unknown_tier"
    assert unknown.details["field"] == "filter.tiers[1]"
    none = refusal(segment_filter(tiers=["fan"]), ladder=None)
    assert isinstance(none, Conflict) and none.code == "no_policy"


@pytest.mark.parametrize(("tags", "field", "code"), [
    ({"all": ["taste:sweet"]}, "filter.tags.all[0]", "unknown_tag_group"),
    ({"any": ["dormant", "colour:red"]}, "filter.tags.any[1]", "unknown_tag_group"),
    ({"none": ["Dormant"]}, "filter.tags.none[0]", "validation_failed"),
    ({"none": ["a" * 65]}, "filter.tags.none[0]", "validation_failed"),
])
def test_tags_must_be_names_of_known_groups(tags: dict[str, list[str]], field: str,
                                            code: str) -> None:
    # Built without the decoder (whose pattern refuses bad names first): the rule refuses
    # them on its own.
    found = SegmentFilter(tags=TagFilter(**tags))
    error = refusal(found, tag_groups={"preference"})
    assert isinstance(error, ValidationFailed)
    assert (error.code, error.details["field"]) == (code, field)


def test_built_in_rule_groups_are_always_known() -> None:
    found = segment_filter(tags={"any": ["source:wechat", "first_order_days:8-30"]})
    check(found)
    assert rules.tag_groups_named(found) == set()
    assert rules.tag_groups_named(segment_filter(
        tags={"all": ["preference:tea"], "none": ["dormant"]})) == {"preference"}


def test_unknown_groups_empty_value_ranges_and_missing_models_are_refused() -> None:
    group = refusal(segment_filter(groups=["g1", "g9"]), groups={"g1"})
    assert group.code == "unknown_group" and group.details["field"] == "filter.groups[1]"
    empty = refusal(segment_filter(value={"min": 5, "max": 4}))
    assert empty.code == "validation_failed"
    for found in (segment_filter(value={"min": 1}), segment_filter(koc=True)):
        missing = refusal(found, model=False)
        assert isinstance(missing, Conflict) and missing.code == "no_value_model"


def test_the_query_lists_each_name_once_and_leaves_out_empty_conditions() -> None:
    query = rules.query(segment_filter(
        tiers=["vip", "member", "vip"], stages=["loyal"],
        tags={"all": ["b", "a", "b"], "none": ["dormant"]}), LADDER)
    assert query == rules.Query(
        tiers=["member", "vip"], lowest="fan", stages=["loyal"], all_tags=["a", "b"],
        any_tags=None, no_tags=["dormant"], groups=None, min_value=None, max_value=None,
        koc=None)
    assert not query.needs_scores
    bare = rules.query(segment_filter(), None)
    assert bare.lowest is None and bare.tiers is None and bare.all_tags is None
    assert rules.query(segment_filter(koc=False), LADDER).needs_scores
    assert rules.query(segment_filter(value={"max": 3}), LADDER).max_value == 3


def test_a_cursor_from_another_computation_is_refused() -> None:
    rules.check_page(5, 5)
    with pytest.raises(Conflict) as raised:
        rules.check_page(6, 5)
    assert raised.value.code == "segment_recomputed"
