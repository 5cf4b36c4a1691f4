"""Background work of red packets: finishing opens left half-way, settling ended pools and
expiring packets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.rewards.app import RewardsComponents
from services.rewards.recovery import STUCK_AFTER_S
from services.runtime.worker import WorkerContext

GRACE_S = 5  # late grabs and opens of a just-ended pool or packet land first
BATCH = 200


async def settle_red_packets() -> None:
    """Finish opens left half-way, return ended pools' remainders to the issuance account and
    expired packets' remainders to their makers."""
    red_packets = (await WorkerContext.components("rewards", RewardsComponents)).red_packets
    now = datetime.now(UTC)
    await red_packets.settle_due(stuck_before=now - timedelta(seconds=STUCK_AFTER_S),
                                 ended_before=now - timedelta(seconds=GRACE_S), batch=BATCH)
