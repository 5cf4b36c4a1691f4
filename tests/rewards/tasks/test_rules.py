"""Pure rules of tasks: periods in the tenant's zone, streak runs, matching, chains, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from proto.tasks import TaskIn
from services.rewards.tasks import rules
from services.runtime.errors import ValidationFailed

SHANGHAI = "Asia/Shanghai"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("kind", "moment", "period"), [
    ("daily", "2026-12-06T15:59:59+00:00", "2026-12-06"),
    ("daily", "2026-12-06T16:00:00+00:00", "2026-12-07"),   # midnight in Shanghai
    ("weekly", "2026-12-06T15:59:59+00:00", "2026-W49"),    # Sunday, still week 49
    ("weekly", "2026-12-06T16:00:00+00:00", "2026-W50"),    # Monday starts week 50
    ("weekly", "2027-01-01T04:00:00+00:00", "2026-W53"),    # ISO year of the week
    ("monthly", "2026-11-30T16:00:00+00:00", "2026-12"),
    ("monthly", "2026-11-30T15:59:59+00:00", "2026-11"),
    ("once", "2026-12-06T12:00:00+00:00", "once"),
])
def test_periods_are_the_tenants_local_calendar(kind: str, moment: str, period: str) -> None:
    assert rules.period_of(kind, at(moment), SHANGHAI) == period  # type: ignore[arg-type]


def test_period_ends_at_local_midnight() -> None:
    moment = at("2026-12-06T10:00:00+00:00")  # Sunday 18:00 in Shanghai
    assert rules.period_end("daily", moment, SHANGHAI) == at("2026-12-06T16:00:00+00:00")
    assert rules.period_end("weekly", moment, SHANGHAI) == at("2026-12-06T16:00:00+00:00")
    assert rules.period_end("monthly", moment, SHANGHAI) == at("2026-12-31T16:00:00+00:00")
    assert rules.period_end("monthly", at("2026-12-31T17:00:00+00:00"), SHANGHAI) == \
        at("2027-01-31T16:00:00+00:00")
    assert rules.period_end("once", moment, SHANGHAI) is None
    # Across a daylight-saving change the local day is 23 hours long.
    assert rules.period_end("daily", at("2026-03-08T12:00:00+00:00"), "America/New_York") == \
        at("2026-03-09T04:00:00+00:00")


def days(first: date, *offsets: int) -> list[date]:
    return [first + timedelta(days=n) for n in offsets]


D1 = date(2026, 12, 1)


def test_seven_consecutive_days_complete_a_run() -> None:
    assert rules.completed_runs(days(D1, *range(7)), None, 7) == [(D1, D1 + timedelta(6))]
    assert rules.completed_runs(days(D1, *range(6)), None, 7) == []


def test_a_gap_resets_the_run_and_the_next_run_starts_from_the_next_day() -> None:
    assert rules.completed_runs(days(D1, 0, 1, 2, 4, 5, 6, 7, 8, 9), None, 7) == []
    assert rules.completed_runs(days(D1, 0, 1, 2, *range(4, 11)), None, 7) == [
        (D1 + timedelta(4), D1 + timedelta(10))]


def test_a_late_day_that_fills_the_gap_mends_the_run() -> None:
    arrived = days(D1, 0, 1, 2, 4, 5, 6)
    assert rules.completed_runs(arrived, None, 7) == []
    assert rules.completed_runs([*arrived, D1 + timedelta(3)], None, 7) == [
        (D1, D1 + timedelta(6))]


def test_days_up_to_the_last_completed_run_never_count_again() -> None:
    end = D1 + timedelta(6)
    assert rules.completed_runs(days(D1, *range(13)), end, 7) == []
    assert rules.completed_runs(days(D1, *range(14)), end, 7) == [
        (D1 + timedelta(7), D1 + timedelta(13))]
    # Fourteen days at once: two runs, one after the other.
    assert rules.completed_runs(days(D1, *range(14)), None, 7) == [
        (D1, D1 + timedelta(6)), (D1 + timedelta(7), D1 + timedelta(13))]


def test_the_current_run_is_the_one_alive_today() -> None:
    today = D1 + timedelta(10)
    assert rules.current_run(days(D1, 7, 8, 9, 10), None, today) == (D1 + timedelta(7), 4)
    assert rules.current_run(days(D1, 7, 8, 9), None, today) == (D1 + timedelta(7), 3)
    assert rules.current_run(days(D1, 7, 8), None, today) == (None, 0)   # yesterday missed
    assert rules.current_run(days(D1, 5, 6, 9, 10), None, today) == (D1 + timedelta(9), 2)
    assert rules.current_run(days(D1, 8, 9, 10), D1 + timedelta(8), today) == \
        (D1 + timedelta(9), 2)
    assert rules.current_run([], None, today) == (None, 0)


def test_streak_deadline_is_the_end_of_the_day_after_the_run() -> None:
    today = date(2026, 12, 6)
    assert rules.streak_deadline(today, today, SHANGHAI) == at("2026-12-07T16:00:00+00:00")
    assert rules.streak_deadline(today - timedelta(1), today, SHANGHAI) == \
        at("2026-12-06T16:00:00+00:00")
    assert rules.streak_deadline(None, today, SHANGHAI) == at("2026-12-06T16:00:00+00:00")


def terms(**fields: object) -> rules.TaskTerms:
    base: dict[str, object] = {
        "task_id": "t", "kind": "daily", "action": "check_in", "min_amount_cents": None,
        "attributes": None, "starts_at": None, "ends_at": None, "tiers": None, "enabled": True}
    return msgspec.convert({**base, **fields}, rules.TaskTerms)


def event(**fields: object) -> rules.Occurrence:
    base: dict[str, object] = {"member_id": "m", "action": "check_in",
                               "occurred_at": "2026-12-06T10:00:00+00:00"}
    return msgspec.convert({**base, **fields}, rules.Occurrence)


def test_what_counts_for_a_task() -> None:
    assert rules.counts_for(terms(), event(), None)
    assert not rules.counts_for(terms(enabled=False), event(), None)
    assert not rules.counts_for(terms(), event(action="speak"), None)
    assert not rules.counts_for(terms(min_amount_cents=500), event(), None)
    assert not rules.counts_for(terms(min_amount_cents=500), event(amount_cents=499), None)
    assert rules.counts_for(terms(min_amount_cents=500), event(amount_cents=500), None)
    assert rules.counts_for(terms(tiers=["gold"]), event(), "gold")
    assert not rules.counts_for(terms(tiers=["gold"]), event(), "silver")
    assert not rules.counts_for(terms(tiers=["gold"]), event(), None)
    window = {"starts_at": "2026-12-06T10:00:00+00:00", "ends_at": "2026-12-07T10:00:00+00:00"}
    assert rules.counts_for(terms(**window), event(), None)
    assert not rules.counts_for(terms(**window),
                                event(occurred_at="2026-12-06T09:59:59+00:00"), None)
    assert not rules.counts_for(terms(**window),
                                event(occurred_at="2026-12-07T10:00:00+00:00"), None)


@pytest.mark.parametrize(("required", "actual", "matches"), [
    ({"group_id": "g1"}, {"group_id": "g1", "group_tier": "vip"}, True),
    ({"group_id": "g1"}, {"group_id": "g2"}, False),
    ({"group_id": "g1"}, {}, False),
    ({"n": 1}, {"n": 1.0}, True),
    ({"n": 1}, {"n": True}, False),
    ({"flag": True}, {"flag": 1}, False),
    ({"flag": True}, {"flag": True}, True),
    ({"n": "1"}, {"n": 1}, False),
    (None, {"any": "thing"}, True),
])
def test_attributes_match_exactly(required: dict[str, object] | None,
                                  actual: dict[str, object], matches: bool) -> None:
    assert rules.attributes_match(required, actual) is matches


def test_chains() -> None:
    afters = {"guide": None, "survey": "guide", "group": "survey", "other": None}
    assert rules.makes_cycle("guide", "group", afters)
    assert not rules.makes_cycle("other", "group", afters)
    assert rules.chain_of("survey", afters) == ["guide", "survey", "group"]
    assert rules.chain_of("guide", afters) == ["guide", "survey", "group"]
    assert rules.chain_of("other", afters) == ["other"]
    # Two tasks after one step: the chain stops at the fork.
    assert rules.chain_of("guide", {**afters, "bonus": "guide"}) == ["guide"]


def task_in(**fields: object) -> TaskIn:
    base: dict[str, object] = {"name": "Check in", "kind": "daily",
                               "condition": {"action": "check_in"}, "reward": {"points": 5}}
    return msgspec.convert({**base, **fields}, TaskIn)


@pytest.mark.parametrize(("fields", "code"), [
    ({"condition": {"action": "unheard_of"}}, "unknown_action"),
    ({"kind": "streak"}, "validation_failed"),
    ({"kind": "daily", "streak_days": 7}, "validation_failed"),
    ({"kind": "streak", "streak_days": 7, "condition": {"action": "check_in", "count": 2}},
     "validation_failed"),
    ({"condition": {"action": "group_joined", "min_amount_cents": 100}}, "validation_failed"),
    ({"reward": {}}, "validation_failed"),
    ({"after": "t"}, "chain_cycle"),
])
def test_bad_definitions(fields: dict[str, object], code: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_task("t", task_in(**fields), {"check_in"})
    assert refused.value.code == code


def test_good_definitions_and_windows() -> None:
    rules.validate_task("t", task_in(), {"check_in"})
    rules.validate_task("t", task_in(condition={"action": "coupon_used"}), set())
    rules.validate_task("t", task_in(kind="streak", streak_days=7), {"check_in"})
    now = datetime.now(UTC)
    with pytest.raises(ValidationFailed):
        rules.validate_task("t", task_in(starts_at=now, ends_at=now), {"check_in"})


def test_members_see_started_tasks_until_a_while_after_their_end() -> None:
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert rules.shown_to_member(True, None, None, None, None, now)
    assert not rules.shown_to_member(False, None, None, None, None, now)
    assert not rules.shown_to_member(True, ["gold"], None, None, None, now)
    assert not rules.shown_to_member(True, None, None, now + timedelta(1), None, now)
    assert rules.shown_to_member(True, None, None, None, now - timedelta(1), now)
    assert not rules.shown_to_member(True, None, None, None, now - timedelta(31), now)


def test_status() -> None:
    assert rules.status_of(locked=True, completed=False, rewarded=False, ended=False) == "locked"
    assert rules.status_of(locked=False, completed=True, rewarded=False,
                           ended=True) == "completed"
    assert rules.status_of(locked=False, completed=True, rewarded=True, ended=False) == "claimed"
    assert rules.status_of(locked=False, completed=False, rewarded=False,
                           ended=True) == "expired"
    assert rules.status_of(locked=False, completed=False, rewarded=False, ended=False) == "open"
