"""Who the KOCs are, shared by the value feature (``GET /koc``) and segments (``koc``): the
top share of the tenant's known members by total value score, members with a score above 0
only, ties by member id; the share of a population is rounded up and capped."""

from __future__ import annotations

import math

# The share ``GET /koc`` lists by default and the one a segment's ``koc`` condition uses.
DEFAULT_SHARE = 0.01
MAX_KOCS = 10_000


def koc_count(share: float, population: int) -> int:
    """How many members the top ``share`` of ``population`` is (at least one when there are
    members), capped at ``MAX_KOCS``."""
    return min(math.ceil(share * population - 1e-9), MAX_KOCS)
