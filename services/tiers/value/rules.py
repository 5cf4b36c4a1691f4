"""Pure rules of value scores: which value models are valid, scores as shown, and how many
members the top share of a population is."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from proto.tiers import ValueModel
from services.runtime.errors import ValidationFailed
from services.tiers.koc import MAX_KOCS, koc_count

__all__ = ["MAX_KOCS", "Scored", "koc_count", "scores", "shown", "validate_value_model"]


class Scored(Protocol):
    """A member's scores per category and in total, as the SQL computes them."""

    @property
    def consumption(self) -> Decimal: ...
    @property
    def content(self) -> Decimal: ...
    @property
    def interaction(self) -> Decimal: ...
    @property
    def social(self) -> Decimal: ...
    @property
    def total(self) -> Decimal: ...


def validate_value_model(model: ValueModel) -> None:
    for action, weight in model.actions.items():
        if weight.weight == 0 and not weight.per_100_cents:
            raise ValidationFailed("an action needs a weight or a per_100_cents above 0",
                                   field=f"actions.{action}")


def shown(score: Decimal | None) -> float:
    """A score as answered: four decimals; no activity is 0."""
    return round(float(score), 4) if score is not None else 0.0


def scores(row: Scored | None) -> dict[str, float]:
    """A member's category scores and total as answered (all 0 without activity)."""
    return {"consumption": shown(row.consumption if row else None),
            "content": shown(row.content if row else None),
            "interaction": shown(row.interaction if row else None),
            "social": shown(row.social if row else None),
            "total": shown(row.total if row else None)}

