"""Who counts as a member of the tiers service: anyone the points service or a group names,
except the ledger's escrow members (the rewards service's red-packet pools and packets). Their
events are skipped where they enter the service, so no tier population, stratification, KOC
population, value score or group ever holds them; the schema refuses them too
(``tiers.is_escrow`` in the CHECK constraints of migration 0005)."""

from __future__ import annotations

import re

from proto.common import ESCROW_MEMBER_PATTERN

_ESCROW = re.compile(ESCROW_MEMBER_PATTERN)


def is_escrow(member_id: str) -> bool:
    """Whether ``member_id`` is an escrow member of the points ledger, not a member."""
    return _ESCROW.fullmatch(member_id) is not None
