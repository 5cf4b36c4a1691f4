"""HTTP handlers of community groups, value scores and KOCs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, put
from litestar.params import JSONBody, Parameter

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import NotFound, ValidationFailed
from services.tiers import group_health, groups, store, value

At = Annotated[datetime | None, Parameter(description="RFC 3339 time; default now")]
Share = Annotated[float, Parameter(gt=0, le=0.2)]
Tolerance = Annotated[float, Parameter(ge=0, le=1)]
MoveLimit = Annotated[int, Parameter(ge=1, le=1000)]
PeriodParam = Annotated[t.Period, Parameter(description="week (Monday first) or month")]
RESERVED_GROUP_IDS = frozenset({"migrations"})


def as_of(at: datetime | None) -> datetime:
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("times need a time zone offset (RFC 3339)", field="at")
    return at or datetime.now(UTC)


class GroupsController(Controller):
    path = "/groups"
    tags = ["groups"]

    @put("/{group_id:str}", guards=[allow("operator")])
    async def put_group(self, group_id: PathId, data: JSONBody[t.GroupBody],
                        principal: PrincipalDep, resources: ResourcesDep) -> t.Group:
        """Creates or changes a community group; its tier must be one of the policy's."""
        if group_id in RESERVED_GROUP_IDS:
            raise ValidationFailed(f"{group_id!r} is reserved", field="group_id")
        async with resources.pool.acquire() as conn, conn.transaction():
            row = await groups.put_group(conn, principal.tenant_id, group_id, data)
        return t.Group(**dict(row))

    @get("/{group_id:str}", guards=[allow("operator")])
    async def get_group(self, group_id: PathId, principal: PrincipalDep,
                        resources: ResourcesDep) -> t.Group:
        row = await groups.require_group(resources.pool, principal.tenant_id, group_id)
        return t.Group(**dict(row))

    @put("/{group_id:str}/members/{member_id:str}", guards=[allow("operator")])
    async def join(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                   resources: ResourcesDep, at: At = None) -> t.Membership:
        """Records a join at ``at`` (default now); a current member is left as they are."""
        moment = group_health.check_moment(as_of(at), datetime.now(UTC))
        async with resources.pool.acquire() as conn, conn.transaction():
            return await groups.join(conn, principal.tenant_id, group_id, member_id, moment)

    @delete("/{group_id:str}/members/{member_id:str}", guards=[allow("operator")],
            status_code=200)
    async def leave(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                    resources: ResourcesDep, at: At = None) -> t.Membership:
        """Records a leave at ``at`` (default now)."""
        moment = group_health.check_moment(as_of(at), datetime.now(UTC))
        async with resources.pool.acquire() as conn, conn.transaction():
            return await groups.leave(conn, principal.tenant_id, group_id, member_id, moment)

    @get("/{group_id:str}/report", guards=[allow("operator")])
    async def report(self, group_id: PathId, principal: PrincipalDep, resources: ResourcesDep,
                     period: PeriodParam = "week", at: At = None) -> t.GroupReport:
        """The group's figures for the local week (Monday first) or month holding ``at``."""
        return await groups.report(resources.pool, principal.tenant_id, group_id, period,
                                   as_of(at))

    @get("/migrations", guards=[allow("operator")])
    async def migrations(self, principal: PrincipalDep, resources: ResourcesDep,
                         limit: MoveLimit = 100, tolerance: Tolerance = 0.1) -> t.Migrations:
        """Suggested moves and the composition of super-user and member groups, now."""
        return await groups.migrations(resources.pool, principal.tenant_id, datetime.now(UTC),
                                       limit, tolerance)


class ValueController(Controller):
    tags = ["value"]

    @put("/value-model", guards=[allow("admin")])
    async def put_value_model(self, data: JSONBody[t.ValueModel], principal: PrincipalDep,
                              resources: ResourcesDep) -> t.ValueModel:
        """Weights per action and category, the window and the high-value line."""
        group_health.validate_value_model(data)
        async with resources.pool.acquire() as conn:
            await store.put_value_model(conn, principal.tenant_id, msgspec.to_builtins(data))
        return data

    @get("/value-model", guards=[allow("admin")])
    async def get_value_model(self, principal: PrincipalDep,
                              resources: ResourcesDep) -> t.ValueModel:
        model = await store.value_model(resources.pool, principal.tenant_id)
        if model is None:
            raise NotFound("no value model yet", code="no_value_model")
        return msgspec.convert(model, t.ValueModel)

    @get("/members/{member_id:str}/value", guards=[allow("operator", member=True)])
    async def member_value(self, member_id: PathId, principal: PrincipalDep,
                           resources: ResourcesDep, at: At = None) -> t.MemberValue:
        """Value scores over the model's window of local days ending on ``at``'s day."""
        return await value.member_value(resources.pool, principal.tenant_id, member_id,
                                        as_of(at))

    @get("/koc", guards=[allow("operator")])
    async def koc(self, principal: PrincipalDep, resources: ResourcesDep, share: Share = 0.01,
                  at: At = None) -> t.KocList:
        """The top ``share`` of members by total value score, with their sub-scores."""
        return await value.kocs(resources.pool, principal.tenant_id, share, as_of(at))


CONTROLLERS = [GroupsController, ValueController]
