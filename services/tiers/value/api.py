"""HTTP handlers of the value model, members' value scores and KOCs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import tiers as t
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.openapi import refuses
from services.tiers.koc import DEFAULT_SHARE
from services.tiers.times import At, moment
from services.tiers.value.value import Values

Share = Annotated[float, Parameter(gt=0, le=0.2)]


class ValueController(Controller):
    tags = ["value"]

    @put("/value-model", access=allow("admin"))
    async def put_value_model(self, data: JSONBody[t.ValueModel], principal: PrincipalDep,
                              values: NamedDependency[Values]) -> t.ValueModel:
        """Weights per action and category, the window and the high-value line."""
        return await values.put_model(principal.tenant_id, data)

    @get("/value-model", access=allow("admin"), opt=refuses(404))
    async def get_value_model(self, principal: PrincipalDep,
                              values: NamedDependency[Values]) -> t.ValueModel:
        return await values.model(principal.tenant_id)

    @get("/members/{member_id:str}/value", access=allow("operator", member=True),
         opt=refuses(409))
    async def member_value(self, member_id: PathId, principal: PrincipalDep,
                           values: NamedDependency[Values], at: At = None) -> t.MemberValue:
        """Value scores over the model's window of local days ending on ``at``'s day."""
        return await values.member_value(principal.tenant_id, member_id, moment(at),
                                         datetime.now(UTC))

    @get("/koc", access=allow("operator"), opt=refuses(409))
    async def koc(self, principal: PrincipalDep, values: NamedDependency[Values],
                  share: Share = DEFAULT_SHARE, at: At = None) -> t.KocList:
        """The top ``share`` of members by total value score, with their sub-scores."""
        return await values.kocs(principal.tenant_id, share, moment(at), datetime.now(UTC))


CONTROLLERS = [ValueController]
