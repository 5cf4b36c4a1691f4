"""The coupon wallet (transfers, uses) and bulk issues."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from proto.events import CouponTransferred, CouponUsed
from proto.rewards import Issued, IssueIn, TransferIn, Transferred, Used, UseIn
from services.rewards import store
from services.runtime.auth import Principal
from services.runtime.db import Conn, Db
from services.runtime.errors import Conflict, NotFound, ValidationFailed
from services.runtime.idempotency import Outcome, run_once
from services.runtime.outbox import emit


def new_coupon_id() -> str:
    return f"cp_{uuid.uuid4().hex}"


async def _usable_coupon(conn: asyncpg.Connection, principal: Principal, coupon_id: str,
                         now: datetime) -> asyncpg.Record:
    coupon = await store.coupon(conn, principal.tenant_id, coupon_id, lock=True)
    if coupon is None:
        raise NotFound(f"no coupon {coupon_id!r}", code="unknown_coupon")
    principal.require_member(coupon["member_id"])
    if coupon["state"] != "active":
        raise Conflict(f"the coupon is {coupon['state']}", code="coupon_not_active",
                       state=coupon["state"])
    if coupon["expires_at"] <= now:
        raise Conflict("the coupon expired", code="coupon_not_active", state="expired")
    return coupon


async def transfer(conn: asyncpg.Connection, principal: Principal, coupon_id: str,
                   body: TransferIn, now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, Transferred]:
        coupon = await _usable_coupon(tx, principal, coupon_id, now)
        if coupon["member_id"] == body.to_member_id:
            raise ValidationFailed("a coupon cannot be transferred to its owner",
                                   field="to_member_id")
        new_id = new_coupon_id()
        await store.set_coupon_state(tx, principal.tenant_id, coupon_id, "transferred",
                                     transferred_to=body.to_member_id)
        await store.add_coupons(tx, principal.tenant_id, [
            (new_id, body.to_member_id, coupon["sku"], coupon["code"], coupon["expires_at"],
             "transfer", coupon_id)])
        await emit(tx, service="rewards", tenant_id=principal.tenant_id, events=[
            CouponTransferred(from_member_id=coupon["member_id"],
                              to_member_id=body.to_member_id, coupon_id=coupon_id,
                              new_coupon_id=new_id, sku=coupon["sku"], transferred_at=now)])
        return 201, Transferred(transfer_id=body.transfer_id, from_coupon_id=coupon_id,
                                coupon_id=new_id, to_member_id=body.to_member_id)

    return await run_once(conn, tenant_id=principal.tenant_id, scope="rewards.transfers",
                          key=body.transfer_id, request={"coupon_id": coupon_id, "body": body},
                          effect=effect)


async def use(conn: asyncpg.Connection, principal: Principal, coupon_id: str, body: UseIn,
              now: datetime) -> Outcome:
    async def effect(tx: asyncpg.Connection) -> tuple[int, Used]:
        coupon = await _usable_coupon(tx, principal, coupon_id, now)
        await store.set_coupon_state(tx, principal.tenant_id, coupon_id, "used", used_at=now)
        uses = await store.coupons_used_by(tx, principal.tenant_id, coupon["member_id"])
        await emit(tx, service="rewards", tenant_id=principal.tenant_id, events=[
            CouponUsed(member_id=coupon["member_id"], coupon_id=coupon_id, sku=coupon["sku"],
                       used_at=now, uses_by_member=uses)])
        return 201, Used(use_id=body.use_id, coupon_id=coupon_id, member_id=coupon["member_id"],
                         sku=coupon["sku"], used_at=now)

    return await run_once(conn, tenant_id=principal.tenant_id, scope="rewards.uses",
                          key=body.use_id, request={"coupon_id": coupon_id, "body": body},
                          effect=effect)


async def perk_exists(db: Db, tenant_id: str, sku: str) -> bool:
    return await store.perk(db, tenant_id, sku) is not None


async def issue(conn: Conn, tenant_id: str, issued_by: str | None, body: IssueIn,
                now: datetime) -> Outcome:
    """Perks, coupons or tickets for many members without points, all or nothing, once per
    ``issue_id``; ``issued_by`` (an API key id, or None for fuli itself) goes to the audit."""
    if body.kind == "tickets":
        if body.box_id is None:
            raise ValidationFailed("tickets need a box_id", field="box_id")
    elif body.sku is None:
        raise ValidationFailed(f"{body.kind} issues need a sku", field="sku")
    members = sorted(set(body.member_ids))

    async def effect(tx: Conn) -> tuple[int, Issued]:
        if body.kind == "tickets":
            assert body.box_id is not None
            await store.add_tickets(tx, tenant_id, body.box_id, members, body.count)
        else:
            assert body.sku is not None
            perk = await store.perk(tx, tenant_id, body.sku)
            if perk is None:
                raise NotFound(f"no perk {body.sku!r}", code="unknown_sku", sku=body.sku)
            try:
                codes, _ = await store.take_stock(tx, tenant_id, body.sku,
                                                  len(members) * body.count, None,
                                                  issue_id=body.issue_id)
            except store.Refused as refused:
                raise Conflict("not enough stock or codes for this issue", code=refused.code,
                               **refused.details) from None
            expires = now + timedelta(days=perk["coupon_valid_days"])
            slots = [m for m in members for _ in range(body.count)]
            await store.add_coupons(tx, tenant_id, [
                (new_coupon_id(), member, body.sku, codes[i] if codes else None, expires,
                 "issue", body.issue_id) for i, member in enumerate(slots)])
        await store.audit_issue(tx, tenant_id, body.issue_id, issued_by, body.reason,
                                body.kind, body.sku, body.box_id, body.count, len(members))
        return 201, Issued(issue_id=body.issue_id, kind=body.kind, member_count=len(members),
                           count=body.count)

    return await run_once(conn, tenant_id=tenant_id, scope="rewards.issues",
                          key=body.issue_id, request=body, effect=effect)
