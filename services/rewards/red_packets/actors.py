"""Background work of red packets: finishing opens left half-way, settling ended pools and
expiring packets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.rewards.app import components
from services.rewards.recovery import ENDED_GRACE_S, RECOVERY_BATCH, STUCK_AFTER_S


async def settle_red_packets() -> None:
    """Finish opens left half-way, return ended pools' remainders to the issuance account and
    expired packets' remainders to their makers."""
    now = datetime.now(UTC)
    await (await components()).red_packets.settle_due(
        stuck_before=now - timedelta(seconds=STUCK_AFTER_S),
        ended_before=now - timedelta(seconds=ENDED_GRACE_S), batch=RECOVERY_BATCH)
