"""HTTP handlers of the rewards catalog: perks, redemptions, the coupon wallet, bulk issues."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from proto import rewards as r
from services.rewards import domain, store, wallet
from services.rewards.redemptions import Redeemer, perk_rules
from services.runtime.app import json_response
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import ValidationFailed

PageLimit = Annotated[int, Parameter(ge=1, le=200)]
Cursor = Annotated[str | None, Parameter(max_length=200)]
WRITE = {"rate_group": "write"}


def now() -> datetime:
    return datetime.now(UTC)


def body(status: int, struct: type) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(data_container=struct, description=struct.__doc__ or "",
                                 generate_examples=False)}


def perk_out(row: Any, eligibility: r.Eligibility | None = None) -> r.Perk:
    return r.Perk(sku=row["sku"], name=row["name"], description=row["description"],
                  cost_points=row["cost_points"], stock=row["stock_left"],
                  per_member_limit=row["per_member_limit"], tiers=row["tiers"],
                  starts_at=row["starts_at"], ends_at=row["ends_at"],
                  fulfilment=row["fulfilment"], coupon_valid_days=row["coupon_valid_days"],
                  enabled=row["enabled"],
                  codes_available=row.get("codes_available") if row["fulfilment"] == "code"
                  else None,
                  eligibility=eligibility)


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode()


def decode_cursor(cursor: str, parts: int) -> list[str]:
    try:
        values = base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed("invalid cursor", field="cursor") from None
    if len(values) != parts:
        raise ValidationFailed("invalid cursor", field="cursor")
    return values


class PerksController(Controller):
    path = "/perks"
    tags = ["perks"]

    @put("/{sku:str}", guards=[allow("operator")])
    async def put_perk(self, sku: PathId, data: JSONBody[r.PerkIn], principal: PrincipalDep,
                       redeemer: NamedDependency[Redeemer], resources: ResourcesDep) -> r.Perk:
        """Create or replace a perk. ``stock`` is what is left to redeem from now on."""
        if data.starts_at and data.ends_at and data.ends_at <= data.starts_at:
            raise ValidationFailed("ends_at must be after starts_at", field="ends_at")
        async with resources.pool.acquire() as conn:
            row = await store.put_perk(conn, principal.tenant_id, sku, data)
        await redeemer.stock.publish(principal.tenant_id, sku, row)
        return perk_out({**dict(row), "codes_available": None})

    @get(guards=[allow("operator", "ingest", member=True)])
    async def list_perks(self, principal: PrincipalDep, resources: ResourcesDep,
                         member_id: Annotated[str | None, Parameter(max_length=128)] = None
                         ) -> r.PerkList:
        """The catalog. For a member (a member token, or ``?member_id=`` with a key) each perk
        says whether that member may redeem it and how many more they may take."""
        member = principal.member_id if principal.is_member else member_id
        async with resources.pool.acquire() as conn:
            rows = await store.perks(conn, principal.tenant_id)
            if member is None:
                return r.PerkList(items=[perk_out(row) for row in rows])
            tier = await store.member_tier(conn, principal.tenant_id, member)
            used = await store.allowance_used(conn, principal.tenant_id, member)
        items = []
        at = now()
        for row in rows:
            rules = perk_rules(row)
            reason = domain.availability_refusal(rules, at) or \
                domain.eligibility_refusal(rules, tier)
            remaining = domain.remaining_allowance(rules, used.get(row["sku"], 0))
            if reason is None and remaining == 0:
                reason = "limit_reached"
            if reason is None and rules.stock_left == 0:
                reason = "out_of_stock"
            if principal.is_member and not row["enabled"]:
                continue
            items.append(perk_out(row, r.Eligibility(eligible=reason is None, reason=reason,
                                                     remaining_allowance=remaining)))
        return r.PerkList(items=items)

    @post("/{sku:str}/codes", guards=[allow("operator")], status_code=201)
    async def add_codes(self, sku: PathId, data: JSONBody[r.CodesIn], principal: PrincipalDep,
                        resources: ResourcesDep) -> r.CodesAdded:
        """Upload coupon codes for a ``code`` perk; codes already in the pool are skipped."""
        async with resources.pool.acquire() as conn, conn.transaction():
            perk = await store.perk(conn, principal.tenant_id, sku)
            if perk is None:
                raise ValidationFailed(f"no perk {sku!r}", code="unknown_sku", field="sku")
            unique = list(dict.fromkeys(data.codes))
            added = await store.add_codes(conn, principal.tenant_id, sku, unique)
            available = await store.free_codes(conn, principal.tenant_id, sku)
        return r.CodesAdded(sku=sku, added=added, duplicates=len(data.codes) - added,
                            available=available)


class RedemptionsController(Controller):
    tags = ["redemptions"]

    @post("/redemptions", guards=[allow("ingest", member=True)], opt=WRITE, status_code=201,
          responses=body(201, r.Redemption))
    async def redeem(self, data: JSONBody[r.RedemptionIn], principal: PrincipalDep,
                     redeemer: NamedDependency[Redeemer]) -> Response[bytes]:
        """Spend points on a perk: hold, reserve stock and allowance, capture; or nothing."""
        principal.require_member(data.member_id)
        outcome = await redeemer.redeem(principal.tenant_id, data, now())
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @get("/members/{member_id:str}/redemptions", guards=[allow("ingest", "operator",
                                                              member=True)])
    async def list_redemptions(self, member_id: PathId, principal: PrincipalDep,
                               resources: ResourcesDep, limit: PageLimit = 50,
                               cursor: Cursor = None) -> r.RedemptionList:
        before = None
        if cursor:
            at, rid = decode_cursor(cursor, 2)
            try:
                before = (datetime.fromisoformat(at), rid)
            except ValueError:
                raise ValidationFailed("invalid cursor", field="cursor") from None
        async with resources.pool.acquire() as conn:
            rows = await store.member_redemptions(conn, principal.tenant_id, member_id, before,
                                                  limit + 1)
        page = rows[:limit]
        items = [r.Redemption(
            redemption_id=row["redemption_id"], member_id=row["member_id"], sku=row["sku"],
            quantity=row["quantity"], points=row["points"],
            status="cancelled" if row["status"].startswith("cancel") else row["status"],
            codes=list(row["codes"])) for row in page]
        next_cursor = encode_cursor(page[-1]["created_at"].isoformat(),
                                    page[-1]["redemption_id"]) if len(rows) > limit else None
        return r.RedemptionList(items=items, next_cursor=next_cursor)

    @post("/redemptions/{redemption_id:str}/cancel", guards=[allow("operator")], opt=WRITE,
          status_code=200)
    async def cancel(self, redemption_id: PathId, principal: PrincipalDep,
                     redeemer: NamedDependency[Redeemer]) -> r.Redemption:
        """Refund the points (once, through the points service) and put the stock back."""
        return await redeemer.cancel(principal.tenant_id, redemption_id)

    @post("/redemptions/{redemption_id:str}/fulfil", guards=[allow("operator")], opt=WRITE,
          status_code=200)
    async def fulfil(self, redemption_id: PathId, principal: PrincipalDep,
                     redeemer: NamedDependency[Redeemer]) -> r.Redemption:
        """Mark a manual perk's redemption as fulfilled by operations."""
        return await redeemer.fulfil(principal.tenant_id, redemption_id)


class WalletController(Controller):
    tags = ["coupons"]

    @get("/members/{member_id:str}/coupons", guards=[allow("ingest", "operator",
                                                          member=True)])
    async def list_coupons(self, member_id: PathId, principal: PrincipalDep,
                           resources: ResourcesDep, limit: PageLimit = 50,
                           cursor: Cursor = None) -> r.CouponList:
        after = decode_cursor(cursor, 1)[0] if cursor else None
        async with resources.pool.acquire() as conn:
            rows = await store.member_coupons(conn, principal.tenant_id, member_id, after,
                                              limit + 1)
        at = now()
        page = rows[:limit]
        items = [r.Coupon(coupon_id=row["coupon_id"], sku=row["sku"], code=row["code"],
                          state="expired" if row["state"] == "active" and row["expires_at"] <= at
                          else row["state"], expires_at=row["expires_at"],
                          transferred_to=row["transferred_to"]) for row in page]
        next_cursor = encode_cursor(page[-1]["coupon_id"]) if len(rows) > limit else None
        return r.CouponList(items=items, next_cursor=next_cursor)

    @post("/coupons/{coupon_id:str}/transfer", guards=[allow("ingest", member=True)],
          opt=WRITE, status_code=201, responses=body(201, r.Transferred))
    async def transfer(self, coupon_id: PathId, data: JSONBody[r.TransferIn],
                       principal: PrincipalDep, resources: ResourcesDep) -> Response[bytes]:
        """Give a coupon to another member; the sender keeps a ``transferred`` record."""
        async with resources.pool.acquire() as conn:
            outcome = await wallet.transfer(conn, principal, coupon_id, data, now())
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @post("/coupons/{coupon_id:str}/use", guards=[allow("ingest")], opt=WRITE,
          status_code=201, responses=body(201, r.Used))
    async def use(self, coupon_id: PathId, data: JSONBody[r.UseIn], principal: PrincipalDep,
                  resources: ResourcesDep) -> Response[bytes]:
        """Use a coupon at the till, once."""
        async with resources.pool.acquire() as conn:
            outcome = await wallet.use(conn, principal, coupon_id, data, now())
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @post("/issues", guards=[allow("operator")], opt=WRITE, status_code=201,
          responses=body(201, r.Issued))
    async def issue(self, data: JSONBody[r.IssueIn], principal: PrincipalDep,
                    resources: ResourcesDep) -> Response[bytes]:
        """Give perks, coupons or draw tickets to up to 10 000 members without points; all or
        nothing; audited."""
        async with resources.pool.acquire() as conn:
            outcome = await wallet.issue(conn, principal.tenant_id, principal.key_id, data, now())
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)


CONTROLLERS = [PerksController, RedemptionsController, WalletController]
