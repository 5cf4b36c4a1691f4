"""Tier policies: the ladder, members' metrics folded from the points service's facts,
threshold moves with downgrade grace, rolling windows, percentile stratification, and what
members and operators read of it."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

import msgspec

from proto import tiers as t
from proto.events import Envelope, TierChanged
from services.runtime.bus import BatchHandler
from services.runtime.db import Conn, Pool
from services.runtime.errors import NotFound
from services.runtime.outbox import emit
from services.tiers import shared_store
from services.tiers.ladder import ladder
from services.tiers.members import is_escrow
from services.tiers.policy import rules, store
from services.tiers.policy.store import MemberKey

log = logging.getLogger("fuli.tiers.policy")

BATCH = 1000
# Days that left a window up to this long ago are still caught, so the hourly roll may miss
# runs for that long.
ROLL_LOOKBACK_DAYS = 31


class Policies:
    """The tier policy of each tenant and the tiers it gives members."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def put(self, tenant_id: str, policy: t.Policy, now: datetime) -> t.Policy:
        """Sets the policy; a changed one has every member of the tenant evaluated again in
        the background (``reevaluate_members``), recorded in the same transaction."""
        rules.validate_policy(policy)
        async with self.pool.acquire() as conn, conn.transaction():
            if await store.put_policy(conn, tenant_id, policy):
                await store.request_reevaluation(conn, tenant_id, now)
        return policy

    async def get(self, tenant_id: str) -> t.PolicyView:
        """The policy, with the progress of re-evaluating the members under it."""
        policy = await shared_store.policy(self.pool, tenant_id)
        if policy is None:
            raise NotFound("no tier policy yet", code="no_policy")
        progress = await store.reevaluation(self.pool, tenant_id)
        view: t.PolicyView = msgspec.convert(
            {**msgspec.to_builtins(policy), "reevaluation": msgspec.to_builtins(progress)},
            t.PolicyView)
        return view

    async def member_tier(self, tenant_id: str, member_id: str, now: datetime) -> t.MemberTier:
        policy = await shared_store.policy(self.pool, tenant_id)
        state = await store.member(self.pool, tenant_id, member_id)
        metrics = await store.metrics(self.pool, tenant_id, member_id,
                                      policy.window_days if policy else None, now)
        tier = state.tier if state else None
        if state is not None and tier is None and policy is not None:
            # Known (a group join, a coupon use) but never evaluated: the lowest tier, as in
            # the distribution and the groups' suggested moves.
            tier = ladder(policy)[0]
        return rules.member_tier(member_id, policy, tier, state.since if state else None,
                                 state.below_since if state else None, metrics)

    async def tier_history(self, tenant_id: str, member_id: str) -> t.TierHistory:
        return t.TierHistory(items=await store.history(self.pool, tenant_id, member_id))

    async def stratify(self, tenant_id: str, now: datetime) -> t.Evaluation:
        """Stratify the whole tenant by its percentile policy, in one SQL pass."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await store.stratify(conn, tenant_id, now)

    async def distribution(self, tenant_id: str) -> t.Distribution:
        policy = await shared_store.policy(self.pool, tenant_id)
        lowest = ladder(policy)[0] if policy else None
        counts = {c.tier: c.members
                  for c in await store.tier_counts(self.pool, tenant_id, lowest)}
        last = await store.last_evaluation(self.pool, tenant_id)
        return rules.distribution(policy, counts, last.cuts if last else [],
                                  last.at if last else None)

    def points_events_handler(self) -> BatchHandler:
        """A ``bus.consume_batches`` handler for one delivery of points facts: folds each fact
        into its member's metrics and re-evaluates the member. Each tenant's policy is read
        once per delivery (a batch). The facts are folded with one statement per table for
        the batch, then each member is evaluated once, except a member of a threshold policy
        with several facts in the batch: each of those facts is folded and evaluated in turn,
        since each may move the member (up, then into a downgrade's grace)."""

        async def apply(conn: Conn, envelopes: list[Envelope]) -> None:
            changes = [(envelope.tenant_id, change) for envelope in envelopes
                       if (change := rules.metric_change(envelope)) is not None
                       and not is_escrow(change.member_id)]
            policies = {tenant_id: await shared_store.policy(conn, tenant_id)
                        for tenant_id in dict.fromkeys(tenant_id for tenant_id, _ in changes)}
            facts = Counter((tenant_id, change.member_id) for tenant_id, change in changes
                            if isinstance(policies[tenant_id], t.ThresholdPolicy))
            in_turn = {key for key, n in facts.items() if n > 1}
            await fold(conn, [(tenant_id, change) for tenant_id, change in changes
                              if (tenant_id, change.member_id) not in in_turn])
            for tenant_id, member_id in dict.fromkeys(
                    (tenant_id, change.member_id) for tenant_id, change in changes):
                if (tenant_id, member_id) not in in_turn:
                    await evaluate(conn, policies[tenant_id], tenant_id, member_id)
                    continue
                for change in (c for tenant, c in changes
                               if tenant == tenant_id and c.member_id == member_id):
                    await fold(conn, [(tenant_id, change)])
                    await evaluate(conn, policies[tenant_id], tenant_id, member_id)

        return apply

    async def roll_windows(self, now: datetime) -> None:
        """Re-evaluate members of windowed threshold policies whose spend or points just left
        the window (or whose grace is running): they move without any new event."""
        after: MemberKey | None = None
        while keys := await store.window_candidates(self.pool, after, now, ROLL_LOOKBACK_DAYS,
                                                    BATCH):
            for key in keys:
                async with self.pool.acquire() as conn, conn.transaction():
                    policy = await shared_store.policy(conn, key.tenant_id)
                    await evaluate(conn, policy, key.tenant_id, key.member_id, now)
            after = keys[-1]

    async def reevaluate_members(self, *, tenant_id: str | None = None, batch: int = BATCH,
                                 max_batches: int | None = None) -> int:
        """Works through the pending re-evaluations (of ``tenant_id``, or of every tenant),
        one batch of members per transaction (the job's row locked, its cursor moved in the
        same commit), so a crash loses at most the batch under way and the next run goes on
        from the cursor. Stops after ``max_batches`` (None: when none is left). Returns the
        batches run."""
        runs = 0
        while max_batches is None or runs < max_batches:
            async with self.pool.acquire() as conn, conn.transaction():
                job = await store.take_reevaluation(conn, tenant_id)
                if job is None:
                    return runs
                now = datetime.now(UTC)
                if job.state == "pending":
                    await store.start_reevaluation(conn, job.tenant_id, now)
                policy = await shared_store.policy(conn, job.tenant_id)
                if isinstance(policy, t.PercentilePolicy):
                    # Percentile tiers move together: one pass over the tenant.
                    evaluation = await store.stratify(conn, job.tenant_id, now)
                    await store.advance_reevaluation(conn, job.tenant_id, "",
                                                     evaluation.members, now)
                else:
                    members = await store.members_after(conn, job.tenant_id,
                                                        job.after_member, batch)
                    for member_id in members:
                        await evaluate(conn, policy, job.tenant_id, member_id, now)
                    await store.advance_reevaluation(
                        conn, job.tenant_id, members[-1] if members else job.after_member,
                        len(members), now if len(members) < batch else None)
            runs += 1
        return runs

    async def stratify_all(self) -> None:
        """Stratify every tenant with a percentile policy, each as of its own pass."""
        for tenant_id in await store.percentile_tenants(self.pool):
            evaluation = await self.stratify(tenant_id, datetime.now(UTC))
            log.info("stratified", extra={"fields": {
                "tenant": tenant_id, "members": evaluation.members,
                "changed": evaluation.changed}})


async def fold(conn: Conn, changes: list[tuple[str, rules.MetricChange]]) -> None:
    """Adds the changes to their members' daily buckets and available points."""
    await store.add_days(conn, [
        store.DayChange(tenant_id, c.member_id, c.at, c.spend_cents, c.points_earned)
        for tenant_id, c in changes if c.at is not None])
    available = [(tenant_id, c.member_id, c.points_available) for tenant_id, c in changes
                 if c.points_available is not None]
    await store.add_available(conn, [a[0] for a in available], [a[1] for a in available],
                              [a[2] for a in available])


async def evaluate(conn: Conn, policy: t.Policy | None, tenant_id: str, member_id: str,
                   now: datetime | None = None) -> None:
    """Re-evaluate a member under the tenant's ``policy`` if it is a threshold policy
    (percentile tiers move in the job)."""
    if not isinstance(policy, t.ThresholdPolicy):
        return
    now = now or datetime.now(UTC)
    state = await store.locked_member(conn, tenant_id, member_id)
    metrics = await store.metrics(conn, tenant_id, member_id, policy.window_days, now)
    qualified = rules.threshold_tier(policy, metrics)
    names = ladder(policy)
    current = names.index(state.tier) if state.tier in names else None
    move = rules.next_tier(current, qualified, state.below_since, policy.grace_days, now)
    if not move.changed:
        await store.save_member(conn, tenant_id, member_id, state.tier, state.since,
                                move.below_since, metrics)
        return
    tier = names[move.tier_index]
    await store.save_member(conn, tenant_id, member_id, tier, now, None, metrics)
    await store.add_history(conn, tenant_id, member_id, state.tier, tier, metrics, now)
    changed = TierChanged(member_id=member_id, tier=tier, previous_tier=state.tier,
                          changed_at=now,
                          earn_multiplier=rules.earn_multiplier(policy, move.tier_index))
    await emit(conn, service="tiers", tenant_id=tenant_id, events=[changed])
