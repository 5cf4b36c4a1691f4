"""The tier ladder of a policy: read by the policy feature (moves, distribution) and the
groups feature (a group's tier, tier order, super users)."""

from __future__ import annotations

from proto.tiers import Policy


def ladder(policy: Policy) -> list[str]:
    """The tier names, lowest first."""
    return [tier.name for tier in policy.tiers]
