"""The rewards service's refusal codes and their messages, in one place: a code means the same
to every feature, and a refusal stored as a request's final answer keeps its exact bytes."""

from __future__ import annotations

from typing import Any

from services.runtime.errors import Conflict

MESSAGES = {
    "insufficient_points": "not enough points for this redemption",
    "out_of_stock": "the perk is out of stock",
    "limit_reached": "the member reached this perk's per-member limit",
    "not_eligible": "the member's tier may not redeem this perk",
    "not_available": "the perk is not available now",
    "redemption_failed": "the redemption could not be completed; nothing was charged",
    "draw_failed": "the draw could not be completed; nothing was charged",
    "no_ticket": "the member has no draw ticket for this box",
    "own_packet": "the maker of a red packet may not grab it",
}


# Where a code's standard message names the wrong thing (a perk), what it says for a box, a pool
# or a member's packet: the code stays, so a client handles it the same everywhere.
MESSAGES_OF = {
    "box": {
        "insufficient_points": "not enough points for this draw",
        "out_of_stock": "every prize of this box is out of stock",
        "limit_reached": "the member reached this box's daily limit of draws",
        "not_eligible": "the member's age band may not draw from this box",
        "not_available": "the box is not open now",
    },
    "pool": {
        "insufficient_points": "not enough points to open a packet of this pool",
        "out_of_stock": "every packet of this pool was opened",
        "limit_reached": "the member opened this pool as many times as it allows",
        "not_available": "the pool is not open now",
    },
    "packet": {
        "out_of_stock": "every share was grabbed",
        "not_available": "the packet expired",
        "limit_reached": "the member grabbed a share of this packet already",
    },
}


def refused(code: str, *, of: str | None = None, **details: Any) -> Conflict:
    """The 409 for ``code``, with its standard message, or the one for ``of`` (box, pool,
    packet) where the standard one would name a perk."""
    message = MESSAGES_OF.get(of or "", {}).get(code) or MESSAGES.get(code, code)
    return Conflict(message, code=code, **details)
