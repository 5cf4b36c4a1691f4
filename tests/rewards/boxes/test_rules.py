"""The pure rules of blind boxes: published odds are the odds, pity, verification, who may
draw, and what a box may be."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import msgspec
import pytest

from proto.rewards import BoxIn
from services.rewards.boxes import rules
from services.runtime.errors import ValidationFailed

# Chi-square critical values at significance 0.001 by degrees of freedom.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467}
# The draws are HMAC-SHA256 of fixed seeds and ids: with fresh ones, a fair pick still fails at
# 0.001 one run in a thousand (it did: 20.3 against 16.266), so each run tests the same draws.
FIXED_SEEDS = [hashlib.sha256(f"fuli box test seed {n}".encode()).digest() for n in range(2)]


def chi_square(observed: Counter[str], expected: dict[str, float]) -> float:
    return sum((observed[k] - e) ** 2 / e for k, e in expected.items() if e > 0)


PRIZES = [rules.Prize("spa", 1, 3), rules.Prize("kit", 9, None), rules.Prize("coupon", 30, None),
          rules.Prize("points", 60, None), rules.Prize("nothing", 100, None)]


def test_100000_draws_match_the_published_odds() -> None:
    seed = FIXED_SEEDS[0]
    odds = rules.probabilities([rules.Prize(p.prize_id, p.weight, None) for p in PRIZES])
    options = rules.candidates([rules.Prize(p.prize_id, p.weight, None) for p in PRIZES],
                               pity=False)
    n = 100_000
    seen = Counter(rules.pick(options, rules.roll(seed, f"d-{i}")) for i in range(n))
    expected = {k: float(v) * n for k, v in odds.items()}
    assert chi_square(seen, expected) < CHI2_999[4]


def test_a_prize_out_of_stock_gives_its_chance_to_the_others() -> None:
    sold_out = [rules.Prize("spa", 1, 0), *PRIZES[1:]]
    odds = rules.probabilities(sold_out)
    assert odds["spa"] == 0
    assert odds["kit"] == Fraction(9, 199) and sum(odds.values()) == 1
    seed = FIXED_SEEDS[1]
    options = rules.candidates(sold_out, pity=False)
    n = 100_000
    seen = Counter(rules.pick(options, rules.roll(seed, f"d-{i}")) for i in range(n))
    assert seen["spa"] == 0
    assert chi_square(seen, {k: float(v) * n for k, v in odds.items()}) < CHI2_999[3]


def test_pity_is_due_on_the_nth_draw_and_falls_back_when_top_prizes_are_gone() -> None:
    assert not rules.pity_due(8, 10) and rules.pity_due(9, 10) and not rules.pity_due(50, None)
    top = rules.candidates(PRIZES, pity=True, top_prize_ids=["spa", "kit"])
    assert [c.prize_id for c in top] == ["spa", "kit"]
    gone = [rules.Prize("spa", 1, 0), rules.Prize("kit", 9, 0), *PRIZES[2:]]
    assert len(rules.candidates(gone, pity=True, top_prize_ids=["spa", "kit"])) == 3
    assert rules.next_pity(4, "spa", ["spa"]) == 0 and rules.next_pity(4, "kit", ["spa"]) == 5


def test_verification_recomputes_and_rejects_tampering() -> None:
    seed = rules.new_seed()
    options = rules.candidates(PRIZES, pity=False)
    prize = rules.pick(options, rules.roll(seed, "draw-7"))
    commit = rules.commitment(seed)
    assert rules.verify(seed=seed, published_commitment=commit, draw_id="draw-7",
                        options=options, prize_id=prize)
    other = next(c.prize_id for c in options if c.prize_id != prize)
    assert not rules.verify(seed=seed, published_commitment=commit, draw_id="draw-7",
                            options=options, prize_id=other)
    assert not rules.verify(seed=rules.new_seed(), published_commitment=commit,
                            draw_id="draw-7", options=options, prize_id=prize)


def test_pick_refuses_an_empty_box() -> None:
    with pytest.raises(ValueError):
        rules.pick([], 0)


def test_age_bands_decide_who_may_draw() -> None:
    assert rules.age_refusal(None, None, False) is None
    assert rules.age_refusal(8, None, True) == "not_eligible"
    assert rules.age_refusal(8, "under_8", True) == "not_eligible"
    assert rules.age_refusal(8, "8_17", False) == "not_eligible"
    assert rules.age_refusal(8, "8_17", True) is None
    assert rules.age_refusal(18, "8_17", True) == "not_eligible"
    assert rules.age_refusal(18, "adult", False) is None


def test_daily_draws_count_for_their_day_only() -> None:
    today, yesterday = date(2030, 6, 2), date(2030, 6, 1)
    assert rules.draws_on(today, today, 3) == 3
    assert rules.draws_on(today, yesterday, 3) == 0
    assert rules.draws_on(today, None, 0) == 0
    assert rules.over_daily_limit(2, 2) and not rules.over_daily_limit(1, 2)
    assert not rules.over_daily_limit(10_000, None)


def test_a_box_is_open_inside_its_window_while_enabled() -> None:
    now = datetime(2030, 6, 1, tzinfo=UTC)
    assert rules.box_open(True, None, None, now)
    assert rules.box_open(True, now, now + timedelta(hours=1), now)
    assert not rules.box_open(True, None, now, now)
    assert not rules.box_open(False, None, None, now)


def box(**changes: Any) -> BoxIn:
    prize = {"prize_id": "a", "name": "A", "weight": 1, "kind": "nothing"}
    fields: dict[str, Any] = {"name": "B", "cost_points": 1, "prizes": [prize]}
    return msgspec.convert({**fields, **changes}, BoxIn)


def test_boxes_that_cannot_be_drawn_as_written_are_refused() -> None:
    rules.validate_box(box())
    prize = {"prize_id": "a", "name": "A", "weight": 1, "kind": "nothing"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prizes": [prize, prize]}, "prizes"),
        ({"prizes": [{**prize, "kind": "points"}]}, "prizes[0].points"),
        ({"prizes": [{**prize, "points": 5}]}, "prizes[0].points"),
        ({"prizes": [{**prize, "kind": "coupon"}]}, "prizes[0].sku"),
        ({"pity": {"after_draws": 3, "prize_ids": ["zzz"]}}, "pity.prize_ids"),
        ({"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}, "ends_at")]
    for change, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            rules.validate_box(box(**change))
        assert refused.value.details == {"field": field}, change


def test_a_tally_counts_draws_by_the_odds_and_sets_pity_apart() -> None:
    counts = [("a", False, 7), ("b", False, 2), ("a", True, 3), ("gone", False, 4),
              ("gone", True, 1)]
    tally = rules.tally(["a", "b", "c"], counts)
    assert tally == rules.Tally(draws=9, pity_draws=3, observed={"a": 7, "b": 2, "c": 0})
    assert rules.tally(["a"], []) == rules.Tally(draws=0, pity_draws=0, observed={"a": 0})


def plan(draws: list[tuple[str, str]], prizes: list[rules.Prize], *, limit: int | None = None,
         pity_after: int | None = None, top: list[str] | None = None,
         members: dict[str, rules.BoxMember] | None = None) -> rules.PickPlan:
    start = members or {m: rules.BoxMember(0, None, 0) for _, m in draws}
    return rules.plan_picks(draws, start, prizes, seed=FIXED_SEEDS[0], today=date(2026, 5, 1),
                            daily_limit=limit, pity_after=pity_after, top_prize_ids=top)


def test_a_group_is_picked_as_its_draws_would_be_one_after_another() -> None:
    prizes = [rules.Prize("gold", 1000, 1), rules.Prize("none", 1, None)]
    result = plan([("d-1", "a"), ("d-2", "b"), ("d-3", "a"), ("d-4", "a")], prizes, limit=2)
    picks = result.picks
    assert picks[3] == "limit_reached", "a's third draw of the day"
    assert [p.prize_id for p in picks[:3] if isinstance(p, rules.PlannedPick)] == \
        ["gold", "none", "none"], "the gold's one is gone after the first draw"
    assert result.taken == {"gold": 1}
    assert result.members == {"a": rules.BoxMember(0, date(2026, 5, 1), 2),
                              "b": rules.BoxMember(0, date(2026, 5, 1), 1)}
    # Each pick is the verifiable pick of its own candidates.
    for picked in picks[:3]:
        assert isinstance(picked, rules.PlannedPick)
        assert picked.prize_id == rules.pick(picked.options,
                                             rules.roll(FIXED_SEEDS[0], picked.draw_id))
    assert [o.prize_id for o in picks[1].options] == ["none"]  # type: ignore[union-attr]


def test_pity_and_stock_run_on_from_draw_to_draw_of_a_group() -> None:
    prizes = [rules.Prize("top", 1, 1), rules.Prize("none", 10**9, None)]
    result = plan([(f"d-{n}", "a") for n in range(5)], prizes, pity_after=2, top=["top"])
    picks = [p for p in result.picks if isinstance(p, rules.PlannedPick)]
    assert [(p.pity_before, p.pity_applied, p.prize_id) for p in picks] == [
        (0, False, "none"), (1, True, "top"), (0, False, "none"),
        # pity is due again, but the top prize is gone: the draw falls back to the others
        (1, True, "none"), (2, True, "none")]
    assert result.members["a"] == rules.BoxMember(3, date(2026, 5, 1), 5)
    gone = plan([("d-1", "a"), ("d-2", "b")], [rules.Prize("last", 1, 1)])
    assert [isinstance(p, rules.PlannedPick) for p in gone.picks] == [True, False]
    assert gone.picks[1] == "out_of_stock" and gone.taken == {"last": 1}
    assert set(gone.members) == {"a"}, "a member whose draws were all refused is left as it was"
