"""HTTP handlers of the AIPL lifecycle: the model, evaluations, members' stages and history,
and the funnel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.times import DATE_TIME_PATTERN, parse_rfc3339
from services.tiers.lifecycle.lifecycle import Lifecycle

PageLimit = Annotated[int, Parameter(ge=1, le=500)]
Cursor = Annotated[str | None, Parameter(max_length=64)]
FunnelFrom = Annotated[str, QueryParameter(name="from", pattern=DATE_TIME_PATTERN,
                                           description="RFC 3339 time with an offset")]
FunnelTo = Annotated[str, Parameter(pattern=DATE_TIME_PATTERN,
                                    description="RFC 3339 time with an offset, not before from")]


def _time(value: str, field: str) -> datetime:
    parsed = parse_rfc3339(value, field)
    assert parsed is not None
    return parsed


class LifecycleController(Controller):
    path = "/lifecycle"
    tags = ["lifecycle"]

    @put(access=allow("admin"))
    async def put_model(self, data: JSONBody[t.LifecycleModel], principal: PrincipalDep,
                        lifecycle: NamedDependency[Lifecycle]) -> t.LifecycleModelView:
        """The tenant's AIPL model (fields left out take their defaults). It applies from the
        next evaluation: the hourly job runs one soon after a change, or POST evaluations."""
        return await lifecycle.put_model(principal.tenant_id, data)

    @get(access=allow("operator"))
    async def get_model(self, principal: PrincipalDep,
                        lifecycle: NamedDependency[Lifecycle]) -> t.LifecycleModelView:
        """The model in force; ``is_default`` when the tenant has set none."""
        return await lifecycle.model(principal.tenant_id)

    @post("/evaluations", access=allow("admin"), status_code=200)
    async def evaluate(self, data: JSONBody[t.LifecycleEvaluationBody], principal: PrincipalDep,
                       lifecycle: NamedDependency[Lifecycle]) -> t.LifecycleEvaluation:
        """Every known member to their stage as of ``at`` (default now), in one pass: members
        per stage and the moves. ``at`` before the tenant's last evaluation is a 409
        ``evaluation_out_of_order``."""
        return await lifecycle.evaluate(principal.tenant_id, data.at, datetime.now(UTC))

    @get("/funnel", access=allow("operator"))
    async def funnel(self, principal: PrincipalDep, lifecycle: NamedDependency[Lifecycle],
                     from_: FunnelFrom, to: FunnelTo) -> t.LifecycleFunnel:
        """Members with a stage at ``to``: per stage at ``from`` (``none``: no stage yet) and
        at ``to``, and the transition matrix between them."""
        return await lifecycle.funnel(principal.tenant_id, _time(from_, "from"), _time(to, "to"))


class MemberLifecycleController(Controller):
    path = "/members/{member_id:str}/lifecycle"
    tags = ["lifecycle"]

    @get(access=allow("operator"))
    async def member(self, member_id: PathId, principal: PrincipalDep,
                     lifecycle: NamedDependency[Lifecycle]) -> t.MemberLifecycle:
        """The member's stage as of the last evaluation, the figures of its window and what
        moves the member up; an unknown member is a 404 ``unknown_member``."""
        return await lifecycle.member(principal.tenant_id, member_id, datetime.now(UTC))

    @get("/history", access=allow("operator"))
    async def history(self, member_id: PathId, principal: PrincipalDep,
                      lifecycle: NamedDependency[Lifecycle], limit: PageLimit = 50,
                      cursor: Cursor = None) -> t.StageHistory:
        """The member's changes of stage, newest first."""
        return await lifecycle.history(principal.tenant_id, member_id, limit, cursor)


CONTROLLERS = [LifecycleController, MemberLifecycleController]
