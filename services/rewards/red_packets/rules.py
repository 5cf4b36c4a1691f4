"""How a red packet's points are cut into shares. Shares always add up to the total and each
is at least 1 point."""

from __future__ import annotations

import secrets
from collections.abc import Callable


def equal_split(total: int, shares: int) -> list[int]:
    if shares < 1 or total < shares:
        raise ValueError("need at least one point per share")
    base, extra = divmod(total, shares)
    return [base + 1 if i < extra else base for i in range(shares)]


def lucky_split(total: int, shares: int,
                randbelow: Callable[[int], int] = secrets.randbelow) -> list[int]:
    """The double-mean method: each share is uniform in [1, 2 x the mean of what is left),
    capped so that every later share can still get 1 point."""
    if shares < 1 or total < shares:
        raise ValueError("need at least one point per share")
    cut: list[int] = []
    left = total
    for remaining in range(shares, 1, -1):
        ceiling = min(2 * left // remaining, left - (remaining - 1))
        share = 1 + randbelow(max(ceiling - 1, 1)) if ceiling > 1 else 1
        cut.append(share)
        left -= share
    cut.append(left)
    return cut


def split(total: int, shares: int, how: str) -> list[int]:
    return lucky_split(total, shares) if how == "lucky" else equal_split(total, shares)
