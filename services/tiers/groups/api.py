"""HTTP handlers of community groups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter, QueryParameter
from litestar.response import Stream

from proto import tiers as t
from proto.common import ID_PATTERN, PATTERN_END
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.openapi import refuses
from services.runtime.times import DATE_PATTERN
from services.tiers.groups import export, rules
from services.tiers.groups.groups import Groups
from services.tiers.groups.store import ListFilter
from services.tiers.tag_names import TAG_PATTERN
from services.tiers.times import At, moment

Tolerance = Annotated[float, Parameter(ge=0, le=1)]
MoveLimit = Annotated[int, Parameter(ge=1, le=1000)]
PeriodParam = Annotated[t.Period, Parameter(description="week (Monday first) or month")]
TagParam = Annotated[str | None, Parameter(pattern=TAG_PATTERN, description="a group label")]
OwnerParam = Annotated[str | None, Parameter(min_length=1, max_length=128, pattern=ID_PATTERN,
                                             description="the staff member running the group")]
ParentParam = Annotated[str | None, Parameter(min_length=1, max_length=128, pattern=ID_PATTERN,
                                              description="a group id")]
StatusParam = Annotated[t.GroupStatus | None, Parameter(description="active or dissolved")]
TierParam = Annotated[str | None, Parameter(min_length=1, max_length=64,
                                            pattern=r"^[A-Za-z0-9._-]+" + PATTERN_END)]
KindParam = Annotated[t.GroupKind | None, Parameter(description="super, member, fan or flash")]
Cursor = Annotated[str | None, Parameter(max_length=200)]
PageLimit = Annotated[int, Parameter(ge=1, le=200)]
FromParam = Annotated[str, QueryParameter(name="from", pattern=DATE_PATTERN,
                                          description="first local day (YYYY-MM-DD)")]
ToParam = Annotated[str, QueryParameter(name="to", pattern=DATE_PATTERN,
                                        description="last local day (YYYY-MM-DD), not before from")]
ByParam = Annotated[t.TrendStep, Parameter(description="day, or week (ISO, Monday first)")]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV = {200: ResponseSpec(data_container=str, media_type=CSV_MEDIA_TYPE,
                         description="CSV with a header line", generate_examples=False)}


class GroupsController(Controller):
    path = "/groups"
    tags = ["groups"]

    @put("/{group_id:str}", access=allow("operator"))
    async def put_group(self, group_id: PathId, data: JSONBody[t.GroupBody],
                        principal: PrincipalDep, groups: NamedDependency[Groups]) -> t.Group:
        """Creates or replaces a community group: its tier must be one of the policy's, its
        parent an existing group that is not the group or below it (422 ``unknown_parent``,
        ``parent_cycle``); ``created_at`` (default now) is taken when the PUT creates the
        group, and on an existing group may only repeat it (409 ``created_at_fixed``)."""
        return await groups.put(principal.tenant_id, group_id, data, datetime.now(UTC))

    @post("/{group_id:str}/dissolution", access=allow("operator"), status_code=200)
    async def dissolve(self, group_id: PathId, principal: PrincipalDep,
                       groups: NamedDependency[Groups],
                       data: JSONBody[t.DissolutionBody | None] = None) -> t.Group:
        """Dissolves the group at ``at`` (default now; not before its creation nor before its
        last join or leave): every open stay ends then, and the group takes no more joins
        (409 ``group_dissolved``). It stays readable; dissolving it again changes nothing."""
        return await groups.dissolve(principal.tenant_id, group_id,
                                     data.at if data is not None else None, datetime.now(UTC))

    @get("/", access=allow("operator"), opt=refuses(404))
    async def list_groups(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                          tag: TagParam = None, owner: OwnerParam = None,
                          status: StatusParam = None, tier: TierParam = None,
                          kind: KindParam = None, parent: ParentParam = None,
                          cursor: Cursor = None, limit: PageLimit = 50) -> t.GroupList:
        """Groups by id with their current members, 7-day active rate and stage; filters
        combine (``parent``: the groups directly under it)."""
        where = ListFilter(tag=tag, owner=owner, status=status, tier=tier, kind=kind,
                           parent=parent)
        return await groups.listing(principal.tenant_id, where, cursor, limit,
                                    datetime.now(UTC))

    @get("/export.csv", access=allow("operator"), responses=CSV, opt=refuses(404))
    async def export_groups(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                            tag: TagParam = None, owner: OwnerParam = None,
                            status: StatusParam = None, tier: TierParam = None,
                            kind: KindParam = None, parent: ParentParam = None) -> Stream:
        """The group list (every matching group, same filters and columns) as CSV."""
        where = ListFilter(tag=tag, owner=owner, status=status, tier=tier, kind=kind,
                           parent=parent)
        now = datetime.now(UTC)
        first = await groups.listing(principal.tenant_id, where, None, export.PAGE, now)
        return _csv(export.group_list(groups, principal.tenant_id, where, first, now),
                    "groups.csv")

    @get("/trends", access=allow("operator"), opt=refuses(404))
    async def trends(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                     first: FromParam, last: ToParam, by: ByParam = "day",
                     owner: OwnerParam = None, tag: TagParam = None,
                     parent: ParentParam = None) -> t.GroupTrends:
        """Figures per local day or ISO week (Monday first) from the period holding ``from``
        to the one holding ``to`` (at most 366 periods) over the groups run by ``owner``,
        labelled ``tag`` and at or below ``parent`` (the filters combine)."""
        return await groups.trends(principal.tenant_id, parent, owner, tag,
                                   rules.parse_day(first, "from"), rules.parse_day(last, "to"), by)

    @get("/trends.csv", access=allow("operator"), responses=CSV, opt=refuses(404))
    async def trends_csv(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                         first: FromParam, last: ToParam, by: ByParam = "day",
                         owner: OwnerParam = None, tag: TagParam = None,
                         parent: ParentParam = None) -> Stream:
        """The trends as CSV, one line per period."""
        found = await groups.trends(principal.tenant_id, parent, owner, tag,
                                    rules.parse_day(first, "from"), rules.parse_day(last, "to"), by)
        return _csv(export.trend_lines(found), "group-trends.csv")

    @get("/{group_id:str}/trends", access=allow("operator"))
    async def group_trends(self, group_id: PathId, principal: PrincipalDep,
                           groups: NamedDependency[Groups], first: FromParam, last: ToParam,
                           by: ByParam = "day") -> t.GroupTrends:
        """The trends of the group and every group below it."""
        return await groups.trends(principal.tenant_id, group_id, None, None,
                                   rules.parse_day(first, "from"), rules.parse_day(last, "to"), by)

    @get("/{group_id:str}/trends.csv", access=allow("operator"), responses=CSV)
    async def group_trends_csv(self, group_id: PathId, principal: PrincipalDep,
                               groups: NamedDependency[Groups], first: FromParam,
                               last: ToParam, by: ByParam = "day") -> Stream:
        """The trends of the group and every group below it as CSV."""
        found = await groups.trends(principal.tenant_id, group_id, None, None,
                                    rules.parse_day(first, "from"), rules.parse_day(last, "to"), by)
        return _csv(export.trend_lines(found), f"group-{group_id}-trends.csv")

    @get("/{group_id:str}", access=allow("operator"))
    async def get_group(self, group_id: PathId, principal: PrincipalDep,
                        groups: NamedDependency[Groups]) -> t.Group:
        return await groups.get(principal.tenant_id, group_id)

    @put("/{group_id:str}/members/{member_id:str}", access=allow("operator"))
    async def join(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                   groups: NamedDependency[Groups], at: At = None) -> t.Membership:
        """Records a join at ``at`` (default now); a current member is left as they are."""
        return await groups.join(principal.tenant_id, group_id, member_id, moment(at),
                                 datetime.now(UTC))

    @delete("/{group_id:str}/members/{member_id:str}", access=allow("operator"),
            status_code=200)
    async def leave(self, group_id: PathId, member_id: PathId, principal: PrincipalDep,
                    groups: NamedDependency[Groups], at: At = None) -> t.Membership:
        """Records a leave at ``at`` (default now)."""
        return await groups.leave(principal.tenant_id, group_id, member_id, moment(at),
                                  datetime.now(UTC))

    @get("/{group_id:str}/report", access=allow("operator"))
    async def report(self, group_id: PathId, principal: PrincipalDep,
                     groups: NamedDependency[Groups], period: PeriodParam = "week",
                     at: At = None) -> t.GroupReport:
        """The group's figures for the local week (Monday first) or month holding ``at``."""
        return await groups.report(principal.tenant_id, group_id, period, moment(at),
                                   datetime.now(UTC))

    @get("/migrations", access=allow("operator"))
    async def migrations(self, principal: PrincipalDep, groups: NamedDependency[Groups],
                         limit: MoveLimit = 100, tolerance: Tolerance = 0.1) -> t.Migrations:
        """Suggested moves and the composition of super-user and member groups, now."""
        return await groups.migrations(principal.tenant_id, datetime.now(UTC), limit,
                                       tolerance)


def _csv(body: AsyncIterator[bytes], filename: str) -> Stream:
    return Stream(body, media_type=CSV_MEDIA_TYPE,
                  headers={"Content-Disposition": f'attachment; filename="{filename}"'})


CONTROLLERS = [GroupsController]
