"""HTTP handlers of the tiers service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from litestar import Controller, get, post, put
from litestar.params import JSONBody

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import NotFound
from services.tiers import domain, store
from services.tiers.evaluation import decode_policy


class PolicyController(Controller):
    path = "/policy"
    tags = ["policy"]

    @put(guards=[allow("admin")])
    async def put_policy(self, data: JSONBody[t.Policy], principal: PrincipalDep,
                         resources: ResourcesDep) -> t.Policy:
        """The tier ladder: threshold minimums or percentile shares, lowest tier first."""
        domain.validate_policy(data)
        async with resources.pool.acquire() as conn:
            await store.put_policy(conn, principal.tenant_id, msgspec.to_builtins(data))
        return data

    @get(guards=[allow("admin")])
    async def get_policy(self, principal: PrincipalDep, resources: ResourcesDep) -> t.Policy:
        policy = decode_policy(await store.policy(resources.pool, principal.tenant_id))
        if policy is None:
            raise NotFound("no tier policy yet", code="no_policy")
        return policy


class MemberTiersController(Controller):
    path = "/members/{member_id:str}"
    tags = ["members"]

    @get("/tier", guards=[allow("ingest", "operator", member=True)])
    async def tier(self, member_id: PathId, principal: PrincipalDep,
                   resources: ResourcesDep) -> t.MemberTier:
        policy = decode_policy(await store.policy(resources.pool, principal.tenant_id))
        row = await store.member(resources.pool, principal.tenant_id, member_id)
        now = datetime.now(UTC)
        metrics = await store.metrics(resources.pool, principal.tenant_id, member_id,
                                      policy.window_days if policy else None, now)
        next_tier = None
        grace_until = None
        if isinstance(policy, t.ThresholdPolicy):
            names = [tier.name for tier in policy.tiers]
            index = names.index(row["tier"]) if row and row["tier"] in names else -1
            upcoming = domain.needed_for_next(policy, index, metrics)
            if upcoming:
                next_tier = t.NextTier(tier=upcoming[0], needed=upcoming[1])
        if row and row["below_since"] and policy:
            grace_until = row["below_since"] + timedelta(days=policy.grace_days)
        return t.MemberTier(member_id=member_id, tier=row["tier"] if row else None,
                            since=row["since"] if row else None, metrics=metrics,
                            next=next_tier, grace_until=grace_until)

    @get("/tier-history", guards=[allow("ingest", "operator", member=True)])
    async def tier_history(self, member_id: PathId, principal: PrincipalDep,
                           resources: ResourcesDep) -> t.TierHistory:
        rows = await store.history(resources.pool, principal.tenant_id, member_id)
        return t.TierHistory(items=[t.TierChange(from_tier=r["from_tier"], to_tier=r["to_tier"],
                                                 metrics=r["metrics"], at=r["at"])
                                    for r in rows])


class StratificationController(Controller):
    tags = ["stratification"]

    @post("/evaluations", guards=[allow("operator")], status_code=200)
    async def evaluate(self, principal: PrincipalDep, resources: ResourcesDep) -> t.Evaluation:
        """Stratify the whole tenant by its percentile policy now, in one SQL pass."""
        async with resources.pool.acquire() as conn, conn.transaction():
            row = await store.stratify(conn, principal.tenant_id, datetime.now(UTC))
        return t.Evaluation(members=row["members"], changed=row["changed"],
                            cuts=[t.CutLine(**c) for c in row["cuts"]])

    @get("/distribution", guards=[allow("operator")])
    async def distribution(self, principal: PrincipalDep,
                           resources: ResourcesDep) -> t.Distribution:
        """Members and share per tier, and the cut lines of the last stratification."""
        policy = decode_policy(await store.policy(resources.pool, principal.tenant_id))
        counts = {r["tier"]: r["members"] for r in
                  await store.tier_counts(resources.pool, principal.tenant_id)}
        total = sum(counts.values())
        names = [tier.name for tier in policy.tiers] if policy else sorted(counts)
        last = await store.last_evaluation(resources.pool, principal.tenant_id)
        return t.Distribution(
            members=total,
            tiers=[t.TierShare(tier=name, members=counts.get(name, 0),
                               share=counts.get(name, 0) / total if total else 0.0)
                   for name in names],
            cut_lines=[t.CutLine(**c) for c in last["cuts"]] if last else [],
            evaluated_at=last["at"] if last else None)


CONTROLLERS = [PolicyController, MemberTiersController, StratificationController]
