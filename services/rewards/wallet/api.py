"""HTTP handlers of the coupon wallet: members' coupons, transfers, uses, bulk issues."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from proto import rewards as r
from services.rewards.params import Cursor, PageLimit
from services.rewards.wallet.wallet import Wallet
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE


class WalletController(Controller):
    tags = ["coupons"]

    @get("/members/{member_id:str}/coupons", access=allow("ingest", member=True))
    async def list_coupons(self, member_id: PathId, principal: PrincipalDep,
                           wallet: NamedDependency[Wallet], limit: PageLimit = 50,
                           cursor: Cursor = None) -> r.CouponList:
        return await wallet.coupons(principal.tenant_id, member_id, limit, cursor,
                                    datetime.now(UTC))

    @post("/coupons/{coupon_id:str}/transfer", access=allow("ingest", member=True),
          opt=WRITE, status_code=201, responses=replayable(201, r.Transferred))
    async def transfer(self, coupon_id: PathId, data: JSONBody[r.TransferIn],
                       principal: PrincipalDep, wallet: NamedDependency[Wallet]
                       ) -> Response[bytes]:
        """Give a coupon to another member; the sender keeps a ``transferred`` record."""
        return outcome_response(await wallet.transfer(principal, coupon_id, data,
                                                       datetime.now(UTC)))

    @post("/coupons/{coupon_id:str}/use", access=allow("ingest"), opt=WRITE,
          status_code=201, responses=replayable(201, r.Used))
    async def use(self, coupon_id: PathId, data: JSONBody[r.UseIn], principal: PrincipalDep,
                  wallet: NamedDependency[Wallet]) -> Response[bytes]:
        """Use a coupon at the till, once."""
        return outcome_response(await wallet.use(principal, coupon_id, data, datetime.now(UTC)))

    @post("/issues", access=allow("operator"), opt=WRITE, status_code=201,
          responses=replayable(201, r.Issued))
    async def issue(self, data: JSONBody[r.IssueIn], principal: PrincipalDep,
                    wallet: NamedDependency[Wallet]) -> Response[bytes]:
        """Give perks, coupons or draw tickets to up to 10 000 members without points; all or
        nothing; audited."""
        return outcome_response(await wallet.issue(principal.tenant_id, principal.key_id, data,
                                                   datetime.now(UTC)))
