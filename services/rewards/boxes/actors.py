"""Background work of blind boxes: finishing draws a crash left half-way."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.app import components


async def recover_draws() -> None:
    """Finish draws a crash or an unreachable points service left half-way."""
    await (await components()).boxes.recover(datetime.now(UTC))
