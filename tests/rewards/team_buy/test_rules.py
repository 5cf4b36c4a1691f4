"""The pure rules of team-buy: campaign validation, local times, prizes by rank, who is ranked,
board pages, and the sorted-set member that encodes the ranking rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto.team_buy import CampaignIn, Prize
from services.rewards.team_buy import rules
from services.runtime.errors import ValidationFailed

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TEAM_IDS = st.text(alphabet="ABCXYZabcxyz0189._:-", min_size=1, max_size=12)
REACHES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.just(UTC))


def campaign(**fields: Any) -> CampaignIn:
    return CampaignIn(**{"name": "Spring", "team_sizes": [2, 5], "starts_at": START,
                         "ends_at": START + timedelta(days=7), **fields})


def prize(rank_from: int, rank_to: int, points: int | None = 10,
          sku: str | None = None) -> Prize:
    return Prize(rank_from=rank_from, rank_to=rank_to, points=points, sku=sku)


def test_a_valid_campaign_passes() -> None:
    body = campaign(prizes=[prize(4, 10), prize(1, 1, sku="kit"), prize(2, 3, None, "mug")])
    rules.validate_campaign(body, body.starts_at, body.ends_at)


@pytest.mark.parametrize(("fields", "field"), [
    ({"ends_at": START}, "ends_at"),
    ({"ends_at": START - timedelta(seconds=1)}, "ends_at"),
    ({"team_sizes": [2, 2]}, "team_sizes"),
    ({"prizes": [prize(3, 2)]}, "prizes"),
    ({"prizes": [prize(1, 1, None, None)]}, "prizes"),
    ({"prizes": [prize(1, 3), prize(3, 5)]}, "prizes"),
    ({"prizes": [prize(5, 9), prize(1, 5)]}, "prizes"),
])
def test_invalid_campaigns_are_refused_on_their_field(fields: dict[str, Any],
                                                      field: str) -> None:
    body = campaign(**fields)
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_campaign(body, body.starts_at, body.ends_at)
    assert refused.value.details["field"] == field


def test_overlapping_prize_ranges_name_both_ranges() -> None:
    body = campaign(prizes=[prize(1, 3), prize(3, 5)])
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_campaign(body, body.starts_at, body.ends_at)
    assert refused.value.details["details"] == {"ranks": [1, 3, 3, 5]}


def test_times_without_an_offset_are_the_tenants_local_times() -> None:
    local = rules.localise(datetime(2025, 3, 1, 9, 0), "Asia/Shanghai")
    assert local == datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
    given_offset = datetime(2025, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert rules.localise(given_offset, "Asia/Shanghai") is given_offset


def test_prizes_by_rank() -> None:
    prizes = [prize(1, 1, 500, "kit"), prize(2, 3, 100), prize(10, 20, 5)]
    assert [rules.prize_for(rank, prizes) for rank in (1, 2, 3, 4, 9, 10, 20, 21)] == [
        prizes[0], prizes[1], prizes[1], None, None, prizes[2], prizes[2], None]
    assert rules.prize_for(1, []) is None


@given(st.lists(st.tuples(st.integers(1, 50), st.integers(0, 5)), max_size=8),
       st.integers(1, 60))
def test_a_rank_gets_the_prize_whose_range_holds_it(ranges: list[tuple[int, int]],
                                                    rank: int) -> None:
    prizes, next_from = [], 1
    for gap, width in ranges:   # disjoint ranges, as validation guarantees
        start = next_from + gap - 1
        prizes.append(prize(start, start + width))
        next_from = start + width + 1
    expected = [p for p in prizes if p.rank_from <= rank <= p.rank_to]
    assert rules.prize_for(rank, prizes) == (expected[0] if expected else None)


@pytest.mark.parametrize(("score", "minimum", "ranked"), [
    (0, 0, False), (1, 0, True), (999, 1_000, False), (1_000, 1_000, True), (-5, 0, False)])
def test_teams_are_ranked_once_they_spent_the_minimum_and_something(
        score: int, minimum: int, ranked: bool) -> None:
    assert rules.qualifies(score, minimum) is ranked


@pytest.mark.parametrize(("position", "limit", "offset"), [
    (400, 10, 395), (0, 10, 0), (3, 10, 0), (5, 10, 0), (6, 10, 1), (7, 1, 7), (50, 100, 0)])
def test_a_page_around_a_team_puts_it_in_the_middle(position: int, limit: int,
                                                    offset: int) -> None:
    assert rules.page_around(position, limit) == offset
    assert offset <= position < offset + limit


@given(TEAM_IDS, REACHES)
def test_the_board_member_gives_back_its_team(team_id: str, reached_at: datetime) -> None:
    assert rules.team_of(rules.board_member(team_id, reached_at)) == team_id


@given(st.lists(st.tuples(TEAM_IDS, st.integers(-1_000, 1_000), REACHES), min_size=1,
                max_size=40, unique_by=lambda team: team[0]),
       st.sampled_from([0, 1, 2]))
def test_board_order_is_the_ranking_rule(teams: list[tuple[str, int, datetime]],
                                         tie_pool: int) -> None:
    if tie_pool:  # many equal scores and reaches, so the tie-breaks decide
        teams = [(team_id, score % (tie_pool + 1), START + timedelta(
            microseconds=(reached - START).microseconds % 2))
            for team_id, score, reached in teams]
    # The rule: score high first, then earlier reach of the score, then team id (bytes).
    ranking = sorted(teams, key=lambda t: (-t[1], t[2], t[0].encode()))
    # Redis: by score (-cents), equal scores by the member's bytes.
    board = sorted(teams, key=lambda t: (-t[1], rules.board_member(t[0], t[2]).encode()))
    assert [t[0] for t in board] == [t[0] for t in ranking]
