"""Pure rules of value scores (no servers)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from proto.tiers import ValueModel
from services.runtime.errors import ValidationFailed
from services.tiers.value import rules
from services.tiers.value.store import MemberScores


def model(actions: dict[str, dict[str, object]]) -> ValueModel:
    return msgspec.convert({"window_days": 28, "high_value_line": 20, "actions": actions},
                           ValueModel)


def test_every_action_needs_a_weight_or_an_amount_rate() -> None:
    rules.validate_value_model(model({"speak": {"category": "content", "weight": 2},
                                      "purchase": {"category": "consumption",
                                                   "per_100_cents": 0.1}}))
    with pytest.raises(ValidationFailed) as refused:
        rules.validate_value_model(model({"speak": {"category": "content", "weight": 2},
                                          "survey": {"category": "interaction"}}))
    assert refused.value.details == {"field": "actions.survey"}
    with pytest.raises(ValidationFailed):
        rules.validate_value_model(model({"buy": {"category": "consumption", "weight": 0,
                                                  "per_100_cents": 0}}))


def test_scores_are_rounded_to_four_decimals_and_zero_without_activity() -> None:
    row = MemberScores(member_id="m", consumption=Decimal("72.000049"), content=Decimal(6),
                       interaction=Decimal("0.33333333"), social=Decimal(0),
                       total=Decimal("78.33338233"))
    assert rules.scores(row) == {"consumption": 72.0, "content": 6.0, "interaction": 0.3333,
                                 "social": 0.0, "total": 78.3334}
    assert rules.scores(None) == {"consumption": 0.0, "content": 0.0, "interaction": 0.0,
                                  "social": 0.0, "total": 0.0}


@pytest.mark.parametrize(("share", "population", "count"), [
    (0.1, 20, 2), (0.2, 20, 4), (0.01, 20, 1), (0.01, 0, 0), (0.01, 100, 1), (0.01, 101, 2),
    (0.2, 10**6, rules.MAX_KOCS)])
def test_koc_count_is_the_top_share_rounded_up(share: float, population: int,
                                               count: int) -> None:
    assert rules.koc_count(share, population) == count
