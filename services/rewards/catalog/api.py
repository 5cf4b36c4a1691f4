"""HTTP handlers of the catalog: perks, their codes, and redemptions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import rewards as r
from proto.common import ID_PATTERN
from services.rewards.catalog.catalog import Catalog
from services.rewards.catalog.redemptions import Redemptions
from services.rewards.params import Cursor, PageLimit
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE


class PerksController(Controller):
    path = "/perks"
    tags = ["perks"]

    @put("/{sku:str}", access=allow("operator"))
    async def put_perk(self, sku: PathId, data: JSONBody[r.PerkIn], principal: PrincipalDep,
                       catalog: NamedDependency[Catalog]) -> r.Perk:
        """Create or replace a perk. ``stock`` is what is left to redeem from now on."""
        return await catalog.put_perk(principal.tenant_id, sku, data)

    @get(access=allow("ingest", member=True))
    async def list_perks(self, principal: PrincipalDep, catalog: NamedDependency[Catalog],
                         member_id: Annotated[str | None, Parameter(
                             min_length=1, max_length=128, pattern=ID_PATTERN)] = None
                         ) -> r.PerkList:
        """The catalog. For a member (a member token, or ``?member_id=`` with a key) each perk
        says whether that member may redeem it and how many more they may take."""
        member = principal.member_id if principal.is_member else member_id
        return await catalog.perks(principal.tenant_id, member, for_member=principal.is_member,
                                   now=datetime.now(UTC))

    @post("/{sku:str}/codes", access=allow("operator"), status_code=201)
    async def add_codes(self, sku: PathId, data: JSONBody[r.CodesIn], principal: PrincipalDep,
                        catalog: NamedDependency[Catalog]) -> r.CodesAdded:
        """Upload coupon codes for a ``code`` perk; codes already in the pool are skipped."""
        return await catalog.add_codes(principal.tenant_id, sku, data)


class RedemptionsController(Controller):
    tags = ["redemptions"]

    @post("/redemptions", access=allow("ingest", member=True), opt=WRITE, status_code=201,
          responses=replayable(201, r.Redemption))
    async def redeem(self, data: JSONBody[r.RedemptionIn], principal: PrincipalDep,
                     redemptions: NamedDependency[Redemptions]) -> Response[bytes]:
        """Spend points on a perk: hold, reserve stock and allowance, capture; or nothing."""
        principal.require_member(data.member_id)
        return outcome_response(await redemptions.redeem(principal.tenant_id, data,
                                                         datetime.now(UTC)))

    @get("/members/{member_id:str}/redemptions", access=allow("ingest", member=True))
    async def list_redemptions(self, member_id: PathId, principal: PrincipalDep,
                               redemptions: NamedDependency[Redemptions], limit: PageLimit = 50,
                               cursor: Cursor = None) -> r.RedemptionList:
        return await redemptions.member_redemptions(principal.tenant_id, member_id, limit,
                                                    cursor)

    @post("/redemptions/{redemption_id:str}/cancel", access=allow("operator"), opt=WRITE,
          status_code=200)
    async def cancel(self, redemption_id: PathId, principal: PrincipalDep,
                     redemptions: NamedDependency[Redemptions]) -> r.Redemption:
        """Refund the points (once, through the points service) and put the stock back."""
        return await redemptions.cancel(principal.tenant_id, redemption_id)

    @post("/redemptions/{redemption_id:str}/fulfil", access=allow("operator"), opt=WRITE,
          status_code=200)
    async def fulfil(self, redemption_id: PathId, principal: PrincipalDep,
                     redemptions: NamedDependency[Redemptions]) -> r.Redemption:
        """Mark a manual perk's redemption as fulfilled by operations."""
        return await redemptions.fulfil(principal.tenant_id, redemption_id)
