"""The pure draw rules: published odds are the odds, pity, verification."""

from __future__ import annotations

import secrets
from collections import Counter
from fractions import Fraction

import pytest

from services.rewards import draws

# Chi-square critical values at significance 0.001 by degrees of freedom.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467}


def chi_square(observed: Counter[str], expected: dict[str, float]) -> float:
    return sum((observed[k] - e) ** 2 / e for k, e in expected.items() if e > 0)


PRIZES = [draws.Prize("spa", 1, 3), draws.Prize("kit", 9, None), draws.Prize("coupon", 30, None),
          draws.Prize("points", 60, None), draws.Prize("nothing", 100, None)]


def test_100000_draws_match_the_published_odds() -> None:
    seed = draws.new_seed()
    odds = draws.probabilities([draws.Prize(p.prize_id, p.weight, None) for p in PRIZES])
    options = draws.candidates([draws.Prize(p.prize_id, p.weight, None) for p in PRIZES],
                               pity=False)
    n = 100_000
    seen = Counter(draws.pick(options, draws.roll(seed, f"d-{i}")) for i in range(n))
    expected = {k: float(v) * n for k, v in odds.items()}
    assert chi_square(seen, expected) < CHI2_999[4]


def test_a_prize_out_of_stock_gives_its_chance_to_the_others() -> None:
    sold_out = [draws.Prize("spa", 1, 0), *PRIZES[1:]]
    odds = draws.probabilities(sold_out)
    assert odds["spa"] == 0
    assert odds["kit"] == Fraction(9, 199) and sum(odds.values()) == 1
    seed = draws.new_seed()
    options = draws.candidates(sold_out, pity=False)
    n = 100_000
    seen = Counter(draws.pick(options, draws.roll(seed, secrets.token_hex(8))) for _ in range(n))
    assert seen["spa"] == 0
    assert chi_square(seen, {k: float(v) * n for k, v in odds.items()}) < CHI2_999[3]


def test_pity_is_due_on_the_nth_draw_and_falls_back_when_top_prizes_are_gone() -> None:
    assert not draws.pity_due(8, 10) and draws.pity_due(9, 10) and not draws.pity_due(50, None)
    top = draws.candidates(PRIZES, pity=True, top_prize_ids=["spa", "kit"])
    assert [c.prize_id for c in top] == ["spa", "kit"]
    gone = [draws.Prize("spa", 1, 0), draws.Prize("kit", 9, 0), *PRIZES[2:]]
    assert len(draws.candidates(gone, pity=True, top_prize_ids=["spa", "kit"])) == 3
    assert draws.next_pity(4, "spa", ["spa"]) == 0 and draws.next_pity(4, "kit", ["spa"]) == 5


def test_verification_recomputes_and_rejects_tampering() -> None:
    seed = draws.new_seed()
    options = draws.candidates(PRIZES, pity=False)
    prize = draws.pick(options, draws.roll(seed, "draw-7"))
    commit = draws.commitment(seed)
    assert draws.verify(seed=seed, published_commitment=commit, draw_id="draw-7",
                        options=options, prize_id=prize)
    other = next(c.prize_id for c in options if c.prize_id != prize)
    assert not draws.verify(seed=seed, published_commitment=commit, draw_id="draw-7",
                            options=options, prize_id=other)
    assert not draws.verify(seed=draws.new_seed(), published_commitment=commit,
                            draw_id="draw-7", options=options, prize_id=prize)


def test_pick_refuses_an_empty_box() -> None:
    with pytest.raises(ValueError):
        draws.pick([], 0)
