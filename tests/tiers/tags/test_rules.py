"""Unit tests of the pure rules of member tags (and the channel an event names)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from proto import tiers as t
from services.runtime.errors import Conflict, ValidationFailed
from services.tiers.activity import channel_of
from services.tiers.tag_names import TAG_PATTERN
from services.tiers.tags import rules

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def code_of(call: object, *args: object) -> str:
    with pytest.raises((ValidationFailed, Conflict)) as refused:
        call(*args)  # type: ignore[operator]
    return refused.value.code


def test_the_contract_tag_pattern_is_the_shared_one() -> None:
    schema = msgspec.json.schema(t.TagBulkIn)
    assert schema["$defs"]["TagBulkIn"]["properties"]["tag"]["pattern"] == TAG_PATTERN


@pytest.mark.parametrize("tag", ["vip", "preference:tea", "a", "x" * 64, "preference:d-1_x",
                                 "dormant:x", "new_member_gift"])
def test_manual_tags_operators_may_set(tag: str) -> None:
    rules.check_manual_tag(tag, ["preference", "dormant"])


@pytest.mark.parametrize(("tag", "code"), [
    ("VIP", "bad_tag"), ("", "bad_tag"), ("x" * 65, "bad_tag"), ("tea time", "bad_tag"),
    ("café", "bad_tag"), ("vip\n", "bad_tag"),
    ("repurchaser", "rule_tag"), ("coupon_lover", "rule_tag"), ("new_member", "rule_tag"),
    ("dormant", "rule_tag"),
    ("source:web", "rule_tag_group"), ("first_order_days:0", "rule_tag_group"),
    ("source:", "rule_tag_group"),
    ("brand:x", "unknown_tag_group"), (":x", "unknown_tag_group"),
])
def test_manual_tags_refused(tag: str, code: str) -> None:
    assert code_of(rules.check_manual_tag, tag, ["preference"]) == code


def test_rule_groups_cannot_be_made_by_hand() -> None:
    for group in rules.RULE_GROUPS:
        assert code_of(rules.check_group_name, group) == "rule_tag_group"
    rules.check_group_name("preference")
    assert set(rules.RULE_GROUP_DESCRIPTIONS) == set(rules.RULE_GROUPS)


def test_default_buckets_of_days_to_the_first_order() -> None:
    assert rules.buckets([0, 7, 30]) == ([1, 8, 31], ["0", "1-7", "8-30", "31_plus"])
    expected = {0: "0", 1: "1-7", 7: "1-7", 8: "8-30", 30: "8-30", 31: "31_plus",
                400: "31_plus", -2: "0"}
    for days, label in expected.items():
        assert rules.bucket_of(days, [0, 7, 30]) == label, days


def test_configured_buckets() -> None:
    assert rules.buckets([2, 10]) == ([3, 11], ["0-2", "3-10", "11_plus"])
    assert rules.buckets([5]) == ([6], ["0-5", "6_plus"])
    assert rules.bucket_of(3, [2, 10]) == "3-10"
    for label in rules.buckets([0, 1, 2, 3650])[1]:
        assert msgspec.json.decode(b'"first_order_days:' + label.encode() + b'"', type=t.Tag)


def test_rules_need_increasing_edges() -> None:
    rules.check_rules(t.TagRules())
    rules.check_rules(t.TagRules(first_order_days=t.FirstOrderDaysRule(edges=(0, 1, 2))))
    for edges in [(7, 7), (30, 7), (0, 10, 5)]:
        with pytest.raises(ValidationFailed):
            rules.check_rules(t.TagRules(first_order_days=t.FirstOrderDaysRule(edges=edges)))


def test_defaults_of_the_rules() -> None:
    defaults = msgspec.json.decode(b"{}", type=t.TagRules)
    assert msgspec.json.decode(msgspec.json.encode(defaults)) == {
        "repurchaser": {"purchases": 2, "window_days": 90},
        "coupon_lover": {"share": 0.5, "min_purchases": 1, "window_days": 90},
        "new_member": {"days": 30}, "dormant": {"days": 30},
        "first_order_days": {"edges": [0, 7, 30]}}
    partial = msgspec.json.decode(b'{"dormant": {"days": 14}}', type=t.TagRules)
    assert partial.dormant.days == 14 and partial.new_member.days == 30


def test_listed_members_refuse_escrow_accounts_by_position_and_keep_first_order() -> None:
    assert rules.listed_members(["b", "a", "b", "c"]) == ["b", "a", "c"]
    with pytest.raises(ValidationFailed) as refused:
        rules.listed_members(["a", "b", "pool:" + "0" * 40])
    assert refused.value.code == "bad_member_id"
    assert refused.value.details == {"field": "member_ids[2]", "index": 2}


def test_csv_members() -> None:
    assert rules.csv_members("member_id\na\nb\n\na\n") == ["a", "b"]
    assert rules.csv_members("a\r\nb") == ["a", "b"]
    assert rules.csv_members('"a"\n  b  \n" c "\r\n') == ["a", "b", "c"]
    assert rules.csv_members('"member_id"\na') == ["a"]
    assert rules.csv_members("x\nmember_id\n") == ["x", "member_id"]  # a header only first


@pytest.mark.parametrize(("text", "line", "code"), [
    ("member_id\na\nnot an id\n", 3, "bad_member_id"),
    ("a\npacket:" + "f" * 40 + "\n", 2, "bad_member_id"),
    ("a,b\n", 1, "bad_member_id"),
    ('"a,b"\n', 1, "bad_member_id"),
    ("a\n" + "x" * 129 + "\n", 2, "bad_member_id"),
    ("a\rb\n", 1, "bad_member_id"),
    ("ok\n" + "x" * 200_000, 2, "bad_member_id"),
    ("a\x00b", 1, "bad_member_id"),
    ('"abc', 1, "bad_member_id"),
    ('a\n"b\nc"\n', 2, "bad_member_id"),
    ("a\u2028b", 1, "bad_member_id"),
])
def test_csv_lines_refused_by_number(text: str, line: int, code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        rules.csv_members(text)
    assert refused.value.code == code and refused.value.details["line"] == line


def test_csv_needs_members_and_at_most_ten_thousand() -> None:
    assert code_of(rules.csv_members, "member_id\n\n") == "no_members"
    assert code_of(rules.csv_members, "") == "no_members"
    many = "\n".join(f"m{i}" for i in range(t.MAX_BULK_MEMBERS + 1))
    assert code_of(rules.csv_members, many) == "too_many_members"
    assert len(rules.csv_members("\n".join(f"m{i}" for i in range(t.MAX_BULK_MEMBERS)))) \
        == t.MAX_BULK_MEMBERS


def test_evaluation_moment() -> None:
    assert rules.evaluation_moment(None, NOW, None) == NOW
    earlier = NOW - timedelta(days=2)
    assert rules.evaluation_moment(earlier, NOW, earlier) == earlier
    shanghai = datetime.fromisoformat("2026-12-06T10:00:00+08:00")
    assert rules.evaluation_moment(shanghai, NOW, None).tzinfo == UTC
    assert code_of(rules.evaluation_moment, earlier, NOW, earlier + timedelta(seconds=1)) \
        == "evaluation_out_of_order"
    with pytest.raises(ValidationFailed):
        rules.evaluation_moment(NOW + timedelta(hours=1), NOW, None)


@pytest.mark.parametrize(("attributes", "channel"), [
    ({"channel": "WeChat"}, "wechat"), ({"channel": 7}, "7"), ({"channel": "live:room-3"},
                                                               "live:room-3"),
    ({"channel": "x" * 57}, "x" * 57), ({"channel": "x" * 58}, None),
    ({"channel": True}, None), ({"channel": 1.5}, None), ({"channel": ""}, None),
    ({"channel": "Has Space"}, None), ({"channel": "café"}, None), ({}, None),
    ({"group_id": "g1"}, None),
])
def test_the_channel_an_event_names(attributes: dict[str, object], channel: str | None) -> None:
    assert channel_of(attributes) == channel
