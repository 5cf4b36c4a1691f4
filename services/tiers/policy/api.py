"""HTTP handlers of tier policies, members' tiers and stratification."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.openapi import refuses
from services.tiers.policy.policy import Policies


class PolicyController(Controller):
    path = "/policy"
    tags = ["policy"]

    @put(access=allow("admin"))
    async def put_policy(self, data: JSONBody[t.Policy], principal: PrincipalDep,
                         policies: NamedDependency[Policies]) -> t.Policy:
        """The tier ladder: threshold minimums or percentile shares, lowest tier first. A
        changed policy has every member evaluated again in the background (see ``GET``)."""
        return await policies.put(principal.tenant_id, data, datetime.now(UTC))

    @get(access=allow("admin"), opt=refuses(404))
    async def get_policy(self, principal: PrincipalDep,
                         policies: NamedDependency[Policies]) -> t.PolicyView:
        """The policy, and ``reevaluation``: how far re-evaluating every member under it
        has come (``pending``, ``running``, ``done``; members done of the total)."""
        return await policies.get(principal.tenant_id)


class MemberTiersController(Controller):
    path = "/members/{member_id:str}"
    tags = ["members"]

    @get("/tier", access=allow("ingest", member=True))
    async def tier(self, member_id: PathId, principal: PrincipalDep,
                   policies: NamedDependency[Policies]) -> t.MemberTier:
        return await policies.member_tier(principal.tenant_id, member_id, datetime.now(UTC))

    @get("/tier-history", access=allow("ingest", member=True))
    async def tier_history(self, member_id: PathId, principal: PrincipalDep,
                           policies: NamedDependency[Policies]) -> t.TierHistory:
        return await policies.tier_history(principal.tenant_id, member_id)


class StratificationController(Controller):
    tags = ["stratification"]

    @post("/evaluations", access=allow("operator"), status_code=200)
    async def evaluate(self, principal: PrincipalDep,
                       policies: NamedDependency[Policies]) -> t.Evaluation:
        """Stratify the whole tenant by its percentile policy now, in one SQL pass."""
        return await policies.stratify(principal.tenant_id, datetime.now(UTC))

    @get("/distribution", access=allow("operator"))
    async def distribution(self, principal: PrincipalDep,
                           policies: NamedDependency[Policies]) -> t.Distribution:
        """Members and share per tier, and the cut lines of the last stratification."""
        return await policies.distribution(principal.tenant_id)


CONTROLLERS = [PolicyController, MemberTiersController, StratificationController]
