"""Pure rules of the AIPL lifecycle: which models are valid, the stage a member's figures give
(the rule ``tiers.lifecycle_stages`` applies in SQL, kept here for one member), the window of
an evaluation day, what moves a member up, and the funnel from (from, to) stage pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from proto import tiers as t
from services.runtime.errors import ValidationFailed
from services.tiers.tag_names import STAGES, Stage

NONE = "none"  # the funnel's name for "no stage yet"


@dataclass(frozen=True)
class Figures:
    """A member's figures over a window: engagement actions, purchases, the day of the
    window's latest purchase and its gap in local days to the purchase before it."""

    engagement_actions: int
    purchases: int
    last_purchase_day: date | None
    repurchase_gap_days: int | None


def validate_model(model: t.LifecycleModel) -> None:
    seen: set[str] = set()
    for index, action in enumerate(model.engagement_actions):
        if action in seen:
            raise ValidationFailed(f"engagement action {action!r} is listed twice",
                                   field=f"engagement_actions[{index}]")
        seen.add(action)


def window(model: t.LifecycleModel, last_day: date) -> tuple[date, date]:
    """The first and last local day of the window ending on ``last_day``."""
    return last_day - timedelta(days=model.window_days - 1), last_day


def is_loyal(figures: Figures, model: t.LifecycleModel) -> bool:
    return figures.purchases >= model.loyal_min_purchases or (
        figures.purchases >= 1 and figures.repurchase_gap_days is not None
        and figures.repurchase_gap_days <= model.repurchase_within_days)


def stage_of(figures: Figures, model: t.LifecycleModel) -> Stage:
    """The highest stage the figures reach."""
    if is_loyal(figures, model):
        return "loyal"
    if figures.purchases >= 1:
        return "purchased"
    if figures.engagement_actions >= model.interested_min_actions:
        return "interested"
    return "aware"


def next_stage(stage: Stage) -> Stage | None:
    index = STAGES.index(stage)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def needs(stage: Stage, figures: Figures, model: t.LifecycleModel,
          last_day: date) -> list[t.LifecycleNeed]:
    """The ways up from ``stage`` (any one suffices), counted against the figures of the
    window ending on ``last_day``: interested needs the engagement actions still missing,
    purchased a purchase, loyal the purchases still missing or, while the last purchase is at
    most D days back, a repurchase by its D-th day. Loyal has no way up."""
    w = model.window_days
    if stage == "aware":
        missing = max(model.interested_min_actions - figures.engagement_actions, 1)
        return [t.LifecycleNeed(kind="engagement_actions", count=missing, within_days=w,
                                description=f"{_plural(missing, 'engagement action')} in {w} days")]
    if stage == "interested":
        return [t.LifecycleNeed(kind="purchases", count=1, within_days=w,
                                description=f"1 purchase in {w} days")]
    if stage == "purchased":
        missing = max(model.loyal_min_purchases - figures.purchases, 1)
        found = [t.LifecycleNeed(kind="purchases", count=missing, within_days=w,
                                 description=f"{_plural(missing, 'more purchase')} in {w} days")]
        d = model.repurchase_within_days
        if figures.last_purchase_day is not None:
            by_day = figures.last_purchase_day + timedelta(days=d)
            if by_day >= last_day:
                found.append(t.LifecycleNeed(
                    kind="repurchase", count=1, within_days=d, by_day=by_day,
                    description=f"a repurchase within {d} days of the last purchase"
                                f" (by {by_day.isoformat()})"))
        return found
    return []


def funnel(pairs: Iterable[tuple[str | None, str, int]]) -> tuple[
        dict[str, int], dict[str, int], list[t.FunnelCell]]:
    """Counts per stage at ``from`` and at ``to`` and the full transition matrix (every
    from-stage, ``none`` first, by every to-stage) from (from stage or None, to stage,
    members) rows."""
    cells: dict[tuple[str, str], int] = {}
    for before, after, members in pairs:
        key = (before or NONE, after)
        cells[key] = cells.get(key, 0) + members
    at_from = {name: 0 for name in (NONE, *STAGES)}
    at_to = {name: 0 for name in (NONE, *STAGES)}
    for (before, after), members in cells.items():
        at_from[before] += members
        at_to[after] += members
    matrix = [t.FunnelCell(from_stage=before, to_stage=after,  # type: ignore[arg-type]
                           members=cells.get((before, after), 0))
              for before in (NONE, *STAGES) for after in STAGES]
    return at_from, at_to, matrix
