"""Pure rules of red packets: how points are cut into shares (each share at least 1 point, all
shares adding up to the total), which shares are still free, and where the points wait."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from services.rewards.ids import digest

Split = Literal["lucky", "equal"]


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


def split(total: int, shares: int, how: Split) -> list[int]:
    return lucky_split(total, shares) if how == "lucky" else equal_split(total, shares)


def escrow_of(kind: Literal["pool", "packet"], owner_id: str) -> str:
    """The points-ledger member holding a pool's or a packet's points until they are handed
    out."""
    return f"{kind}:{digest(owner_id)}"


def free_shares(count: int, taken: Iterable[int]) -> list[int]:
    """Indexes of the ``count`` shares not handed out yet, in order."""
    used = set(taken)
    return [index for index in range(count) if index not in used]


def shares_by_member(member_ids: Iterable[str]) -> dict[str, int]:
    """How many shares each member took, from one member id per share taken."""
    counts: dict[str, int] = {}
    for member_id in member_ids:
        counts[member_id] = counts.get(member_id, 0) + 1
    return counts


def left_over(shares: Sequence[int], handed_out: Iterable[int]) -> int:
    """Points of the shares not handed out."""
    taken = set(handed_out)
    return sum(points for index, points in enumerate(shares) if index not in taken)
