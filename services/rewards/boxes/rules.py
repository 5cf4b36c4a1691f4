"""Pure rules of blind-box draws: odds, pity, and the verifiable pick.

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
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

ROLL_SPACE = 2**64


@dataclass(frozen=True)
class Prize:
    prize_id: str
    weight: int
    stock_left: int | None  # None: unlimited


@dataclass(frozen=True)
class Candidate:
    prize_id: str
    weight: int


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
               top_prize_ids: Sequence[str] = ()) -> list[Candidate]:
    live = in_stock(prizes)
    if pity:
        top = [p for p in live if p.prize_id in top_prize_ids]
        if top:
            live = top
    return [Candidate(p.prize_id, p.weight) for p in live]


def pick(options: Sequence[Candidate], rolled: int) -> str:
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


def verify(*, seed: bytes, published_commitment: str, draw_id: str,
           options: Sequence[Candidate], prize_id: str) -> bool:
    """True if the seed matches its commitment and the draw picked ``prize_id``."""
    return (hmac.compare_digest(commitment(seed), published_commitment)
            and pick(options, roll(seed, draw_id)) == prize_id)
