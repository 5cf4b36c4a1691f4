"""Pure rules of community groups (no servers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.runtime.errors import Conflict, ValidationFailed
from services.tiers.groups import rules
from services.tiers.groups.rules import GroupValues, Misplaced
from services.tiers.groups.store import GroupRow

ZONE = "Asia/Shanghai"
NOW = datetime(2026, 10, 7, 4, 0, tzinfo=UTC)  # Wednesday 12:00 in Shanghai


def shanghai(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


def test_weeks_start_on_local_mondays_and_months_on_the_first() -> None:
    assert rules.period_bounds("week", NOW, ZONE) == (shanghai("2026-10-05T00:00:00"),
                                                     shanghai("2026-10-12T00:00:00"))
    # Sunday 23:30 local is still the same week; Monday 00:00 local starts the next one.
    assert rules.period_bounds("week", shanghai("2026-10-11T23:30:00"), ZONE)[0] == \
        shanghai("2026-10-05T00:00:00")
    assert rules.period_bounds("week", shanghai("2026-10-12T00:00:00"), ZONE)[0] == \
        shanghai("2026-10-12T00:00:00")
    assert rules.period_bounds("month", NOW, ZONE) == (shanghai("2026-10-01T00:00:00"),
                                                      shanghai("2026-11-01T00:00:00"))
    assert rules.period_bounds("month", shanghai("2026-12-31T08:00:00"), ZONE)[1] == \
        shanghai("2027-01-01T00:00:00")
    # 30 September 20:00 UTC is already 1 October in Shanghai.
    assert rules.period_bounds("month", datetime(2026, 9, 30, 20, tzinfo=UTC), ZONE)[0] == \
        shanghai("2026-10-01T00:00:00")


def test_watch_weeks_are_the_last_moments_of_four_weeks() -> None:
    end = shanghai("2026-10-12T00:00:00")
    moments = rules.watch_weeks(end, ZONE)
    assert moments == [end - timedelta(weeks=n) - rules.JUST_BEFORE for n in range(4)]


def test_in_bottom_counts_whole_groups_and_includes_ties() -> None:
    values = [1.0, 2.0, 2.0, 5.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]
    assert rules.in_bottom(2.0, values, 0.2)   # the 2nd lowest is 2.0: both 2.0s are in
    assert not rules.in_bottom(5.0, values, 0.2)
    assert rules.in_bottom(1.0, values, 0.15) and not rules.in_bottom(2.0, values, 0.15)
    assert not rules.in_bottom(0.0, [1.0, 2.0], 0.2)  # floor(0.4) = no group at all


def test_stage_is_silver_in_the_bottom_or_without_members() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert rules.stage(1.0, values) == "silver"
    assert rules.stage(2.0, values) == "golden"
    assert rules.stage(None, values) == "silver"


def test_group_values_leave_flash_groups_out_of_the_lines() -> None:
    values = GroupValues({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0, "flash": 0.0},
                         {"flash"})
    assert values.community == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert values.stage("flash") == "silver"       # measured against the others
    assert values.stage("b") == "golden" and values.stage("gone") == "silver"
    assert values.in_bottom("flash", 0.2) and values.in_bottom("a", 0.2)
    assert not values.in_bottom("b", 0.2) and not values.in_bottom("gone", 1.0)


def test_composition_against_targets() -> None:
    assert rules.composition("member", 10, 1, 2, 0.1) == (
        {"super": 0.1, "potential": 0.2, "regular": 0.7}, True)
    assert rules.composition("super", 3, 1, 1, 0.1) == (
        {"super": 0.3333, "potential": 0.3333, "regular": 0.3333}, False)
    assert rules.composition("super", 0, 0, 0, 1.0) == (
        {"super": 0.0, "potential": 0.0, "regular": 0.0}, False)


def test_ratio() -> None:
    assert rules.ratio(2, 3) == 0.6667 and rules.ratio(1, 0) == 0.0


def test_moments_need_an_offset_and_may_not_be_in_the_future() -> None:
    assert rules.check_moment(None, NOW) == NOW
    assert rules.check_moment(shanghai("2026-10-07T11:00:00"), NOW) == \
        datetime(2026, 10, 7, 3, tzinfo=UTC)
    assert rules.check_moment(NOW + timedelta(minutes=4), NOW) == NOW + timedelta(minutes=4)
    with pytest.raises(ValidationFailed, match="offset"):
        rules.check_moment(datetime(2026, 10, 7, 11), NOW)
    with pytest.raises(ValidationFailed, match="future"):
        rules.check_moment(NOW + timedelta(minutes=6), NOW)


def test_a_rejoin_starts_at_or_after_the_last_leave() -> None:
    joined, left = NOW - timedelta(days=2), NOW - timedelta(days=1)
    rules.check_rejoin(left, joined, left)
    rules.check_rejoin(NOW, joined, left)
    with pytest.raises(Conflict) as overlap:
        rules.check_rejoin(left - timedelta(seconds=1), joined, left)
    assert overlap.value.code == "overlapping_stay"


def test_a_stay_that_lasted_no_time_takes_its_instant() -> None:
    with pytest.raises(Conflict) as taken:
        rules.check_rejoin(NOW, NOW, NOW)
    assert taken.value.code == "overlapping_stay" and taken.value.status_code == 409
    assert "that very instant" in taken.value.message
    assert taken.value.details == {"details": {"left_at": NOW.isoformat()}}
    rules.check_rejoin(NOW + timedelta(microseconds=1), NOW, NOW)


def test_leaves_come_after_the_join() -> None:
    rules.check_leave(NOW, NOW)
    with pytest.raises(ValidationFailed):
        rules.check_leave(NOW - timedelta(seconds=1), NOW)


def test_reserved_ids_and_unknown_tiers_are_refused() -> None:
    rules.check_group_id("g1")
    with pytest.raises(ValidationFailed):
        rules.check_group_id("migrations")
    rules.check_tier("vip", ["fan", "vip"])
    with pytest.raises(ValidationFailed, match="unknown tier 'gold'"):
        rules.check_tier("gold", ["fan", "vip"])


def test_flash_groups_are_picked_by_kind() -> None:
    groups = [GroupRow("f1", "fan", "fan"), GroupRow("x1", "fan", "flash"),
              GroupRow("v1", "vip", "super"), GroupRow("x2", "vip", "flash")]
    assert rules.flash_groups(groups) == {"x1", "x2"}
    assert rules.flash_groups([]) == set()


def test_invitations_go_to_the_liveliest_groups_of_a_tier() -> None:
    groups = [GroupRow("f1", "fan", "fan"), GroupRow("f2", "fan", "fan"),
              GroupRow("f3", "fan", "flash"), GroupRow("v1", "vip", "super"),
              GroupRow("f0", "fan", "fan")]
    assert rules.invitation_lists(groups, {"f1": 1.0, "f2": 5.0, "f3": 9.0}) == {
        "fan": ["f2", "f1", "f0"], "vip": ["v1"]}


def move(member: str, group: str, reason: rules.Reason = "tier_mismatch",
         member_tier: str | None = "fan", group_tier: str = "vip") -> Misplaced:
    return Misplaced(member_id=member, group_id=group, group_tier=group_tier,
                     member_tier=member_tier, value=None, reason=reason)


def test_first_moves_are_ordered_and_cut() -> None:
    moves = [move("b", "g1"), move("a", "g2", "high_value_in_silver_group"), move("a", "g2"),
             move("a", "g1")]
    first, truncated = rules.first_moves(moves, 3)
    assert [(m.member_id, m.group_id, m.reason) for m in first] == [
        ("a", "g1", "tier_mismatch"), ("a", "g2", "high_value_in_silver_group"),
        ("a", "g2", "tier_mismatch")]
    assert truncated and rules.first_moves(moves, 4) == (sorted(
        moves, key=lambda m: (m.member_id, m.group_id, m.reason)), False)


def test_suggestions_skip_current_groups_and_silver_ones_for_high_value_members() -> None:
    by_tier = {"fan": ["f1", "f2", "f3", "f4", "f5"], "vip": ["v1"]}
    values = GroupValues({"f1": 9.0, "f2": 8.0, "f3": 7.0, "f4": 6.0, "f5": 1.0}, set())
    mismatch = rules.suggestion(move("a", "v1"), by_tier, {"f1"}, values)
    assert mismatch.suggested_groups == ["f2", "f3", "f4"]
    stuck = rules.suggestion(move("b", "f5", "high_value_in_silver_group", member_tier=None,
                                  group_tier="fan"), by_tier, {"f5"}, values)
    assert stuck.suggested_groups == ["f1", "f2", "f3"]
    without_values = rules.suggestion(move("c", "f5", "high_value_in_silver_group"), by_tier,
                                      set(), None)
    assert without_values.suggested_groups == []


def test_dissolved_groups_take_no_invitations() -> None:
    groups = [GroupRow("f1", "fan", "fan"), GroupRow("f2", "fan", "fan", "dissolved")]
    assert rules.invitation_lists(groups, {"f2": 9.0}) == {"fan": ["f1"]}


def test_a_group_is_not_its_own_parent_and_its_labels_are_kept_once_sorted() -> None:
    rules.check_parent("g", None)
    rules.check_parent("g", "h")
    with pytest.raises(ValidationFailed) as refused:
        rules.check_parent("g", "g")
    assert refused.value.code == "parent_cycle" and refused.value.details["field"] == "parent"
    assert rules.group_tags(["vip", "city", "vip"]) == ["city", "vip"]
    assert rules.group_tags([]) == []
    for reserved in ("trends", "trends.csv", "export.csv", "migrations"):
        with pytest.raises(ValidationFailed):
            rules.check_group_id(reserved)


def test_created_at_is_taken_on_creation_and_may_only_be_repeated() -> None:
    assert rules.check_created_at(None, None, NOW) is None
    assert rules.check_created_at(None, NOW, NOW) is None
    early = shanghai("2026-09-01T08:00:00")
    assert rules.check_created_at(early, None, NOW) == early
    assert rules.check_created_at(early, None, NOW).tzinfo == UTC  # type: ignore[union-attr]
    assert rules.check_created_at(early, early.astimezone(UTC), NOW) == early
    with pytest.raises(Conflict) as fixed:
        rules.check_created_at(early, early - timedelta(seconds=1), NOW)
    assert fixed.value.code == "created_at_fixed"
    with pytest.raises(ValidationFailed):
        rules.check_created_at(NOW + timedelta(hours=1), None, NOW)
    with pytest.raises(ValidationFailed):
        rules.check_created_at(datetime(2026, 9, 1), None, NOW)  # no offset


def test_a_dissolution_comes_after_creation_and_the_last_join_or_leave() -> None:
    created = NOW - timedelta(days=10)
    rules.check_dissolution(NOW, created, None)
    rules.check_dissolution(NOW, created, NOW)  # at the instant of the last change
    rules.check_dissolution(created, created, None)
    with pytest.raises(ValidationFailed):
        rules.check_dissolution(created - timedelta(seconds=1), created, None)
    with pytest.raises(Conflict) as late:
        rules.check_dissolution(NOW - timedelta(days=1), created, NOW - timedelta(hours=1))
    assert late.value.code == "activity_after_dissolution"


def test_trend_ranges_cover_whole_days_or_monday_weeks() -> None:
    day = date(2026, 10, 7)  # a Wednesday
    assert rules.trend_range(day, day, "day") == rules.TrendRange("day", day, 1)
    days = rules.trend_range(day, date(2026, 10, 16), "day")
    assert (days.first_day, days.count, days.last_day) == (day, 10, date(2026, 10, 16))
    weeks = rules.trend_range(day, date(2026, 10, 19), "week")  # Wed .. the Monday after next
    assert (weeks.first_day, weeks.count, weeks.last_day) == (
        date(2026, 10, 5), 3, date(2026, 10, 25))
    sunday = rules.trend_range(date(2026, 10, 11), date(2026, 10, 11), "week")
    assert (sunday.first_day, sunday.count) == (date(2026, 10, 5), 1)
    assert weeks.with_previous() == rules.TrendRange("week", date(2026, 9, 28), 4)
    assert days.with_previous() == rules.TrendRange("day", date(2026, 10, 6), 11)
    # At most 366 periods; from after to is refused.
    assert rules.trend_range(date(2024, 1, 1), date(2024, 12, 31), "day").count == 366
    with pytest.raises(ValidationFailed) as many:
        rules.trend_range(date(2024, 1, 1), date(2025, 1, 1), "day")
    assert many.value.code == "too_many_periods"
    assert rules.trend_range(date(2020, 1, 6), date(2027, 1, 3), "week").count == 365
    with pytest.raises(ValidationFailed):
        rules.trend_range(date(2019, 1, 1), date(2026, 1, 5), "week")
    with pytest.raises(ValidationFailed) as backwards:
        rules.trend_range(day, day - timedelta(days=1), "day")
    assert backwards.value.details["field"] == "from"
    # A from and to in one week are one period even when from is after the Monday of to.
    assert rules.trend_range(date(2026, 10, 9), date(2026, 10, 10), "week").count == 1


def test_days_are_dates_in_the_years_fuli_takes() -> None:
    assert rules.parse_day("2026-10-05", "from") == date(2026, 10, 5)
    for bad in ("2026-02-29", "1899-12-31", "9000-01-01", "2026-13-01"):
        with pytest.raises(ValidationFailed) as refused:
            rules.parse_day(bad, "to")
        assert refused.value.details["field"] == "to"


def test_growth_is_against_the_size_of_the_previous_period() -> None:
    assert rules.growth(0, 5) is None
    assert rules.growth(0, 0) is None
    assert rules.growth(4, 5) == 0.25
    assert rules.growth(3, 4) == 0.3333
    assert rules.growth(5, 0) == -1.0
    assert rules.growth(-2, 1) == 1.5  # net adds from -2 to 1: up by 1.5 times its size
    assert rules.growth(-2, -4) == -1.0
    previous = rules.with_net_adds({"groups": 2, "new_groups": 0, "dissolved": 1,
                                    "members": 10, "joins": 4, "leaves": 6, "speakers": 3,
                                    "purchasers": 0, "gmv_cents": 100})
    current = rules.with_net_adds({"groups": 3, "new_groups": 1, "dissolved": 0,
                                   "members": 12, "joins": 5, "leaves": 3, "speakers": 3,
                                   "purchasers": 1, "gmv_cents": 50})
    assert (previous["net_adds"], current["net_adds"]) == (-2, 2)
    assert rules.growth_rates(previous, current) == {
        "groups": 0.5, "new_groups": None, "dissolved": -1.0, "members": 0.2, "joins": 0.25,
        "leaves": -0.5, "net_adds": 2.0, "speakers": 0.0, "purchasers": None,
        "gmv_cents": -0.5}


def test_active_days_are_the_last_seven_local_days() -> None:
    assert rules.active_days(date(2026, 10, 7)) == (date(2026, 10, 1), date(2026, 10, 7))


def test_csv_text_defuses_formulas() -> None:
    assert rules.csv_text("Group A") == "Group A"
    for text in ("=1+1", "+86 123", "-x", "@SUM(A1)", "\tx", "\rx"):
        assert rules.csv_text(text) == "'" + text
