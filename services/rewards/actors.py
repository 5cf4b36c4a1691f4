"""Background work of the rewards service, every actor and periodic job in one list: finishing
redemptions and draws a crash left half-way, keeping the Redis stock mirror and team-buy
leaderboards in step, red packets' and team-buy settlement, team-buy scores, task progress and
task rewards left unpaid, and members' tiers from the tiers service. The actors themselves are
in the features' ``actors`` modules."""

from __future__ import annotations

from services.rewards.boxes.actors import recover_draws
from services.rewards.catalog.actors import apply_tier_changed, recover_redemptions, sync_stock
from services.rewards.red_packets.actors import settle_red_packets
from services.rewards.tasks.actors import advance_tasks, pay_task_rewards
from services.rewards.team_buy.actors import (
    apply_team_purchases,
    settle_campaigns,
    sync_leaderboards,
)
from services.runtime.bus import ActorSpec, PeriodicJob

QUEUE = "rewards"

ACTORS: list[ActorSpec] = [
    ActorSpec("rewards.recover_redemptions", QUEUE, recover_redemptions, max_retries=3),
    ActorSpec("rewards.recover_draws", QUEUE, recover_draws, max_retries=3),
    ActorSpec("rewards.settle_red_packets", QUEUE, settle_red_packets, max_retries=3),
    ActorSpec("rewards.sync_stock", QUEUE, sync_stock, max_retries=3),
    ActorSpec("rewards.apply_tier_changed", QUEUE, apply_tier_changed),
    ActorSpec("rewards.apply_team_purchases", QUEUE, apply_team_purchases),
    ActorSpec("rewards.settle_campaigns", QUEUE, settle_campaigns, max_retries=3),
    ActorSpec("rewards.sync_leaderboards", QUEUE, sync_leaderboards, max_retries=3),
    ActorSpec("rewards.advance_tasks", QUEUE, advance_tasks),
    ActorSpec("rewards.pay_task_rewards", QUEUE, pay_task_rewards, max_retries=3),
]
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("rewards.recover_redemptions", QUEUE, every_s=10),
    PeriodicJob("rewards.recover_draws", QUEUE, every_s=10),
    PeriodicJob("rewards.settle_red_packets", QUEUE, every_s=10),
    PeriodicJob("rewards.sync_stock", QUEUE, every_s=30),
    PeriodicJob("rewards.settle_campaigns", QUEUE, every_s=30),
    PeriodicJob("rewards.sync_leaderboards", QUEUE, every_s=60),
    PeriodicJob("rewards.pay_task_rewards", QUEUE, every_s=10),
]
