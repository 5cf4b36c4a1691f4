"""Background work of tasks: progress from events, and rewards a crash left unpaid."""

from __future__ import annotations

from datetime import UTC, datetime

from services.rewards.app import components


async def advance_tasks(bodies: str | list[str]) -> None:
    """Points actions, coupon uses and group joins into task progress; pays what completes."""
    await (await components()).tasks.advance(bodies, datetime.now(UTC))


async def pay_task_rewards() -> None:
    """Pay completed tasks' rewards left unpaid (a crash, the points service unreachable)."""
    await (await components()).tasks.pay_due(datetime.now(UTC))
