"""Pure rules of blind boxes: what a box may be, who may draw, odds, pity, and the verifiable
pick.

A draw's outcome is HMAC-SHA256(seed, draw_id) read as a number in [0, 2^64), scaled onto the
cumulative weights of the candidate prizes in box order. Candidates are the prizes still in
stock; when pity is due (the member's N-th consecutive draw without a top prize) they are the
top prizes still in stock, if any. The seed's SHA-256 is published before it is used and the
seed is revealed when it is rotated, so anyone can recompute every draw.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction

import msgspec

from proto.rewards import BoxIn, WeightedPrize
from services.rewards.windows import check_window, open_at
from services.runtime.errors import ValidationFailed

ROLL_SPACE = 2**64


@dataclass(frozen=True)
class Prize:
    prize_id: str
    weight: int
    stock_left: int | None  # None: unlimited


def new_seed() -> bytes:
    return secrets.token_bytes(32)


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def roll(seed: bytes, draw_id: str) -> int:
    return int.from_bytes(hmac.new(seed, draw_id.encode(), hashlib.sha256).digest()[:8], "big")


def in_stock(prizes: Sequence[Prize]) -> list[Prize]:
    return [p for p in prizes if p.stock_left is None or p.stock_left > 0]


def probabilities(prizes: Sequence[Prize]) -> dict[str, Fraction]:
    """The exact chance of each prize on an ordinary draw (out-of-stock prizes: 0)."""
    live = in_stock(prizes)
    total = sum(p.weight for p in live)
    return {p.prize_id: Fraction(p.weight, total) if total and p in live else Fraction(0)
            for p in prizes}


def pity_due(counter: int, after_draws: int | None) -> bool:
    return after_draws is not None and counter >= after_draws - 1


def candidates(prizes: Sequence[Prize], *, pity: bool,
               top_prize_ids: Sequence[str] = ()) -> list[WeightedPrize]:
    live = in_stock(prizes)
    if pity:
        top = [p for p in live if p.prize_id in top_prize_ids]
        if top:
            live = top
    return [WeightedPrize(prize_id=p.prize_id, weight=p.weight) for p in live]


def pick(options: Sequence[WeightedPrize], rolled: int) -> str:
    total = sum(c.weight for c in options)
    if total <= 0:
        raise ValueError("no prize can be drawn")
    point = rolled * total // ROLL_SPACE
    for candidate in options:
        if point < candidate.weight:
            return candidate.prize_id
        point -= candidate.weight
    raise AssertionError("unreachable: point is below the total weight")


def next_pity(counter: int, prize_id: str, top_prize_ids: Sequence[str] | None) -> int:
    if top_prize_ids is None:
        return 0
    return 0 if prize_id in top_prize_ids else counter + 1


class BoxMember(msgspec.Struct, frozen=True):
    """A member's pity counter and draws on ``day`` (the tenant's day) in one box."""

    pity_counter: int
    day: date | None
    draws_that_day: int


@dataclass(frozen=True)
class PlannedPick:
    draw_id: str
    options: list[WeightedPrize]
    pity_applied: bool
    prize_id: str
    pity_before: int
    member: BoxMember  # the member's state after this draw


@dataclass(frozen=True)
class PickPlan:
    """For each draw, its pick or the code it is refused with (``limit_reached``,
    ``out_of_stock``); how many of each stocked prize the picks take; each member's state after
    its last pick."""

    picks: list[PlannedPick | str]
    taken: dict[str, int]
    members: dict[str, BoxMember]


def plan_picks(draws: Sequence[tuple[str, str]], members: Mapping[str, BoxMember],
               prizes: Sequence[Prize], *, seed: bytes, today: date, daily_limit: int | None,
               pity_after: int | None, top_prize_ids: Sequence[str] | None) -> PickPlan:
    """Picks for ``draws`` (draw id, member id) made one after another in this order, each as
    it would be made alone under its member's lock, with the prizes and the member as the
    draws before it left them."""
    state = dict(members)
    stock = {p.prize_id: p.stock_left for p in prizes}
    taken: dict[str, int] = {}
    picks: list[PlannedPick | str] = []
    for draw_id, member_id in draws:
        member = state[member_id]
        drawn_today = draws_on(today, member.day, member.draws_that_day)
        if over_daily_limit(drawn_today, daily_limit):
            picks.append("limit_reached")
            continue
        due = pity_due(member.pity_counter, pity_after)
        options = candidates([Prize(p.prize_id, p.weight, stock[p.prize_id]) for p in prizes],
                             pity=due, top_prize_ids=top_prize_ids or ())
        if not options:
            picks.append("out_of_stock")
            continue
        prize_id = pick(options, roll(seed, draw_id))
        left = stock[prize_id]
        if left is not None:
            stock[prize_id] = left - 1
            taken[prize_id] = taken.get(prize_id, 0) + 1
        after = BoxMember(next_pity(member.pity_counter, prize_id, top_prize_ids), today,
                            drawn_today + 1)
        state[member_id] = after
        picks.append(PlannedPick(draw_id, options, due, prize_id, member.pity_counter, after))
    return PickPlan(picks, taken, {m: state[m] for m in state if state[m] != members[m]})


def verify(*, seed: bytes, published_commitment: str, draw_id: str,
           options: Sequence[WeightedPrize], prize_id: str) -> bool:
    """True if the seed matches its commitment and the draw picked ``prize_id``."""
    return (hmac.compare_digest(commitment(seed), published_commitment)
            and pick(options, roll(seed, draw_id)) == prize_id)


@dataclass(frozen=True)
class Tally:
    """Draws by the odds (``draws``, each prize's count in ``observed``) and by pity."""

    draws: int
    pity_draws: int
    observed: dict[str, int]


def tally(prize_ids: Sequence[str], counts: Iterable[tuple[str, bool, int]]) -> Tally:
    """``counts`` of (prize id, chosen by pity, draws) into a tally over ``prize_ids``: draws
    the pity rule decided do not follow the odds, and a prize not among ``prize_ids`` (drawn
    under an earlier definition) is not counted."""
    observed = dict.fromkeys(prize_ids, 0)
    pity_draws = 0
    for prize_id, by_pity, draws in counts:
        if prize_id not in observed:
            continue
        if by_pity:
            pity_draws += draws
        else:
            observed[prize_id] += draws
    return Tally(draws=sum(observed.values()), pity_draws=pity_draws, observed=observed)


# --- boxes and who may draw ----------------------------------------------------------------

def validate_box(box: BoxIn) -> None:
    """A 422 for a box definition that cannot be drawn from as written."""
    ids = [p.prize_id for p in box.prizes]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("prize ids must be unique", field="prizes")
    for i, prize in enumerate(box.prizes):
        if (prize.kind == "points") != (prize.points is not None):
            raise ValidationFailed("points prizes, and only they, carry points",
                                   field=f"prizes[{i}].points")
        if (prize.kind in ("perk", "coupon")) != (prize.sku is not None):
            raise ValidationFailed("perk and coupon prizes, and only they, carry a sku",
                                   field=f"prizes[{i}].sku")
    if box.pity and not set(box.pity.prize_ids) <= set(ids):
        raise ValidationFailed("pity prize_ids must be prizes of the box", field="pity.prize_ids")
    check_window(box.starts_at, box.ends_at)


def box_open(enabled: bool, starts_at: datetime | None, ends_at: datetime | None,
             now: datetime) -> bool:
    return enabled and open_at(now, starts_at, ends_at)


def age_refusal(min_age: int | None, age_band: str | None,
                guardian_consent: bool) -> str | None:
    """Under 8 never; 8-17 only with a guardian's consent; unknown never."""
    if min_age is None:
        return None
    if age_band is None or age_band == "under_8":
        return "not_eligible"
    if age_band == "8_17":
        return None if min_age <= 8 and guardian_consent else "not_eligible"
    return None


def draws_on(today: date, day: date | None, draws_that_day: int) -> int:
    """The member's draws so far today: the count is for ``day`` only."""
    return draws_that_day if day == today else 0


def over_daily_limit(drawn_today: int, limit: int | None) -> bool:
    return limit is not None and drawn_today >= limit
