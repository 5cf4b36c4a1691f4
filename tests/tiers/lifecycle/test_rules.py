"""Unit tests of the lifecycle rules: models, stages, windows, ways up and the funnel."""

from __future__ import annotations

from datetime import date

import pytest

from proto import tiers as t
from services.runtime.errors import ValidationFailed
from services.tiers.lifecycle import rules
from services.tiers.lifecycle.rules import Figures

MODEL = t.LifecycleModel(interested_min_actions=3, window_days=10, loyal_min_purchases=3,
                         repurchase_within_days=5)
DAY = date(2026, 10, 20)


def figures(engaged: int = 0, purchases: int = 0, last: date | None = None,
            gap: int | None = None) -> Figures:
    return Figures(engagement_actions=engaged, purchases=purchases, last_purchase_day=last,
                   repurchase_gap_days=gap)


def test_a_model_lists_each_engagement_action_once() -> None:
    rules.validate_model(MODEL)
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_model(t.LifecycleModel(engagement_actions=("speak", "bind", "speak")))
    assert refused.value.details == {"field": "engagement_actions[2]"}


@pytest.mark.parametrize(("seen", "stage"), [
    (figures(), "aware"),
    (figures(engaged=2), "aware"),
    (figures(engaged=3), "interested"),
    (figures(engaged=50, purchases=1, last=DAY), "purchased"),
    (figures(purchases=2, last=DAY, gap=6), "purchased"),
    (figures(purchases=1, last=DAY, gap=5), "loyal"),  # a repurchase within D days
    (figures(purchases=1, last=DAY, gap=0), "loyal"),  # twice on one day
    (figures(purchases=3, last=DAY, gap=9), "loyal"),  # R purchases
    (figures(purchases=0, gap=1), "aware"),  # no purchase in the window: no repurchase
])
def test_the_highest_stage_that_applies_wins(seen: Figures, stage: str) -> None:
    assert rules.stage_of(seen, MODEL) == stage


def test_the_window_ends_on_the_evaluation_day() -> None:
    assert rules.window(MODEL, DAY) == (date(2026, 10, 11), DAY)
    assert rules.window(t.LifecycleModel(window_days=1), DAY) == (DAY, DAY)


def test_the_next_stage() -> None:
    assert [rules.next_stage(s) for s in ("aware", "interested", "purchased", "loyal")] == [
        "interested", "purchased", "loyal", None]


def test_what_moves_a_member_up() -> None:
    aware = rules.needs("aware", figures(engaged=1), MODEL, DAY)
    assert [(n.kind, n.count, n.within_days, n.description) for n in aware] == [
        ("engagement_actions", 2, 10, "2 engagement actions in 10 days")]
    assert rules.needs("interested", figures(engaged=4), MODEL, DAY) == [
        t.LifecycleNeed(kind="purchases", count=1, within_days=10,
                        description="1 purchase in 10 days")]
    # Bought on the 17th: 2 more purchases, or a repurchase by the 22nd (5 days after it).
    purchased = rules.needs("purchased", figures(purchases=1, last=date(2026, 10, 17)), MODEL,
                            DAY)
    assert [(n.kind, n.count, n.within_days, n.by_day) for n in purchased] == [
        ("purchases", 2, 10, None), ("repurchase", 1, 5, date(2026, 10, 22))]
    assert purchased[0].description == "2 more purchases in 10 days"
    # Bought on the 14th: a purchase after the 19th would be more than 5 days after it.
    late = rules.needs("purchased", figures(purchases=2, last=date(2026, 10, 14), gap=8),
                       MODEL, DAY)
    assert [(n.kind, n.count) for n in late] == [("purchases", 1)]
    on_the_edge = rules.needs("purchased", figures(purchases=1, last=date(2026, 10, 15)),
                              MODEL, DAY)
    assert on_the_edge[-1].by_day == DAY
    assert rules.needs("loyal", figures(purchases=5), MODEL, DAY) == []


def test_the_funnel_counts_both_ends_and_every_cell() -> None:
    at_from, at_to, matrix = rules.funnel([
        (None, "aware", 4), ("aware", "aware", 2), ("aware", "loyal", 1),
        ("loyal", "purchased", 3), (None, "interested", 1)])
    assert at_from == {"none": 5, "aware": 3, "interested": 0, "purchased": 0, "loyal": 3}
    assert at_to == {"none": 0, "aware": 6, "interested": 1, "purchased": 3, "loyal": 1}
    assert len(matrix) == 5 * 4
    cells = {(c.from_stage, c.to_stage): c.members for c in matrix}
    assert cells[("none", "aware")] == 4 and cells[("loyal", "purchased")] == 3
    assert sum(cells.values()) == 11
    assert [c.from_stage for c in matrix[:4]] == ["none"] * 4
