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
}


def refused(code: str, **details: Any) -> Conflict:
    """The 409 for ``code``, with its standard message."""
    return Conflict(MESSAGES.get(code, code), code=code, **details)
