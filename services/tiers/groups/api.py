"""HTTP handlers of community groups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.tiers.groups.groups import Groups
from services.tiers.times import At, moment

Tolerance = Annotated[float, Parameter(ge=0, le=1)]
MoveLimit = Annotated[int, Parameter(ge=1, le=1000)]
PeriodParam = Annotated[t.Period, Parameter(description="week (Monday first) or month")]


class GroupsController(Controller):
    path = "/groups"
    tags = ["groups"]

    @put("/{group_id:str}", guards=[allow("operator")])
    async def put_group(self, group_id: PathId, data: JSONBody[t.GroupBody],
                        principal: PrincipalDep, groups: NamedDependency[Groups]) -> t.Group:
        """Creates or changes a community group; its tier must be one of the policy's."""
        return await groups.put(principal.tenant_id, group_id, data)

    @get("/{group_id:str}", guards=[allow("operator")])
    async def get_group(self, group_id: PathId, principal: PrincipalDep,
                        groups: NamedDependency[Groups]) -> t.Group:
        return await groups.get(principal.tenant_id, group_id)

    @put("/{group_id:str}/members/{member_id:str}", guards=[allow("operator")])
    async def join(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                   groups: NamedDependency[Groups], at: At = None) -> t.Membership:
        """Records a join at ``at`` (default now); a current member is left as they are."""
        return await groups.join(principal.tenant_id, group_id, member_id, moment(at),
                                 datetime.now(UTC))

    @delete("/{group_id:str}/members/{member_id:str}", guards=[allow("operator")],
            status_code=200)
    async def leave(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                    groups: NamedDependency[Groups], at: At = None) -> t.Membership:
        """Records a leave at ``at`` (default now)."""
        return await groups.leave(principal.tenant_id, group_id, member_id, moment(at),
                                  datetime.now(UTC))

    @get("/{group_id:str}/report", guards=[allow("operator")])
    async def report(self, group_id: PathId, principal: PrincipalDep,
                     groups: NamedDependency[Groups], period: PeriodParam = "week",
                     at: At = None) -> t.GroupReport:
        """The group's figures for the local week (Monday first) or month holding ``at``."""
        return await groups.report(principal.tenant_id, group_id, period, moment(at),
                                   datetime.now(UTC))

    @get("/migrations", guards=[allow("operator")])
    async def migrations(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                         limit: MoveLimit = 100, tolerance: Tolerance = 0.1) -> t.Migrations:
        """Suggested moves and the composition of super-user and member groups, now."""
        return await groups.migrations(principal.tenant_id, datetime.now(UTC), limit,
                                       tolerance)


CONTROLLERS = [GroupsController]
