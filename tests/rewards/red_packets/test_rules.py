"""The pure rules of red packets: splits, free shares, what is left, escrow ids."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rewards.ids import digest
from services.rewards.red_packets import rules as splits


@pytest.mark.parametrize("how", ["lucky", "equal"])
def test_splits_add_up_and_give_everyone_a_point(how: str) -> None:
    for total, shares in [(100, 7), (7, 7), (1000, 100), (5, 1), (10_000, 999)]:
        for _ in range(50 if how == "lucky" else 1):
            cut = splits.split(total, shares, how)
            assert len(cut) == shares and sum(cut) == total and min(cut) >= 1
    with pytest.raises(ValueError):
        splits.split(3, 4, how)


@st.composite
def totals_and_shares(draw: st.DrawFn) -> tuple[int, int]:
    shares = draw(st.integers(1, 1000))
    return draw(st.integers(shares, 100_000_000)), shares


@given(totals_and_shares(), st.randoms(use_true_random=False))
def test_a_lucky_split_always_adds_up_with_every_share_at_least_one(
        sizes: tuple[int, int], rng: random.Random) -> None:
    total, shares = sizes
    cut = splits.lucky_split(total, shares, randbelow=rng.randrange)
    assert len(cut) == shares and sum(cut) == total and min(cut) >= 1


@given(totals_and_shares(), st.sampled_from([0.0, 1.0]))
def test_a_lucky_split_holds_with_the_smallest_and_largest_draws(
        sizes: tuple[int, int], where: float) -> None:
    total, shares = sizes
    cut = splits.lucky_split(total, shares, randbelow=lambda n: int(where * (n - 1)))
    assert len(cut) == shares and sum(cut) == total and min(cut) >= 1


@given(totals_and_shares())
def test_an_equal_split_adds_up_and_differs_by_at_most_one(sizes: tuple[int, int]) -> None:
    total, shares = sizes
    cut = splits.equal_split(total, shares)
    assert len(cut) == shares and sum(cut) == total and min(cut) >= 1
    assert max(cut) - min(cut) <= 1


@given(st.integers(0, 20), st.integers(1, 20))
def test_fewer_points_than_shares_is_refused(total: int, shares: int) -> None:
    if total >= shares:
        return
    for how in ("lucky", "equal"):
        with pytest.raises(ValueError):
            splits.split(total, shares, how)


def test_each_share_of_a_lucky_split_stays_under_twice_the_mean_left() -> None:
    cut = splits.lucky_split(100, 4, randbelow=lambda n: n - 1)   # always the largest draw
    left, ceilings = 100, []
    for remaining, share in zip(range(4, 1, -1), cut, strict=False):
        ceilings.append(min(2 * left // remaining, left - (remaining - 1)))
        left -= share
    assert all(share <= ceiling for share, ceiling in zip(cut, ceilings, strict=False))
    assert sum(cut) == 100


@given(st.integers(0, 50), st.sets(st.integers(0, 60)))
def test_free_shares_are_the_ones_not_taken_in_order(count: int, taken: set[int]) -> None:
    free = splits.free_shares(count, taken)
    assert free == sorted(set(range(count)) - taken)


def test_shares_by_member_counts_each_share_taken() -> None:
    assert splits.shares_by_member(["a", "b", "a"]) == {"a": 2, "b": 1}
    assert splits.shares_by_member([]) == {}


@given(st.lists(st.integers(1, 1000), max_size=30), st.data())
def test_left_over_is_what_the_untaken_shares_hold(shares: list[int],
                                                   data: st.DataObject) -> None:
    taken = data.draw(st.sets(st.integers(0, max(len(shares) - 1, 0))))
    assert splits.left_over(shares, taken) == sum(
        points for index, points in enumerate(shares) if index not in taken)
    assert splits.left_over(shares, []) == sum(shares)


def test_escrow_members_are_derived_from_the_owner_id() -> None:
    assert splits.escrow_of("pool", "p-1") == "pool:" + digest("p-1")
    assert splits.escrow_of("packet", "p-1") == "packet:" + digest("p-1")
    assert splits.escrow_of("pool", "p-1") != splits.escrow_of("pool", "p-2")
