"""The wallet: where perks get into members' hands.

It reserves a perk's stock together with the member's allowance and coupon codes (and puts them
back), hands out coupons and draw tickets, and runs members' coupon transfers and uses and
operators' bulk issues. Other features (redemptions, blind boxes, team-buy) go through the
functions here, inside their own transactions; they never touch these tables themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from proto.events import CouponTransferred, CouponUsed
from proto.rewards import (
    MAX_ISSUE_MEMBERS,
    Coupon,
    CouponList,
    Issued,
    IssueIn,
    TransferIn,
    Transferred,
    Used,
    UseIn,
)
from services.rewards.refusals import refused
from services.rewards.wallet import rules, store
from services.rewards.wallet.store import CouponRow, NewCoupon, StockLevel
from services.runtime.auth import Principal
from services.runtime.db import Conn, Db, Pool
from services.runtime.errors import Conflict, NotFound
from services.runtime.idempotency import Outcome, replay_if_done, run_once
from services.runtime.outbox import emit
from services.runtime.pagination import decode_cursor, encode_cursor
from services.runtime.tiers_client import SegmentTarget, TiersClient

__all__ = ["Reservation", "StockLevel", "Wallet", "add_tickets", "allowance_used",
           "give_coupons", "issue", "known_boxes", "known_skus", "prize_coupon", "put_back",
           "reserve", "revoke_coupons", "transfer", "use", "use_ticket"]


class Reservation(msgspec.Struct, frozen=True):
    """What ``reserve`` took: the codes (for a code perk) and the perk's stock after it."""

    codes: list[str]
    stock: StockLevel


def new_coupon_id() -> str:
    return f"cp_{uuid.uuid4().hex}"


async def known_skus(db: Db, tenant_id: str, skus: Sequence[str]) -> set[str]:
    """Those of ``skus`` that are perks of the catalog."""
    return await store.known_skus(db, tenant_id, skus) if skus else set()


async def known_boxes(db: Db, tenant_id: str, box_ids: Sequence[str]) -> set[str]:
    """Those of ``box_ids`` that are blind boxes (the boxes draw tickets are for)."""
    return await store.known_boxes(db, tenant_id, box_ids) if box_ids else set()


# --- stock, allowance and codes ------------------------------------------------------------

async def reserve(conn: Conn, tenant_id: str, sku: str, quantity: int, member_id: str | None,
                  *, redemption_id: str | None = None,
                  issue_id: str | None = None) -> Reservation:
    """Inside the caller's transaction: ``quantity`` of the perk's stock, the member's allowance
    (``member_id`` None: no allowance) and, for a code perk, that many codes; or a 409
    ``out_of_stock`` / ``limit_reached`` (the caller's transaction then rolls back)."""
    taken = await store.take_stock(conn, tenant_id, sku, quantity)
    if taken is None:
        raise refused("out_of_stock", stock=await store.stock_left(conn, tenant_id, sku),
                      requested=quantity)
    if member_id is not None and taken.per_member_limit is not None and \
            not await store.hold_allowance(conn, tenant_id, sku, member_id, quantity,
                                           taken.per_member_limit):
        raise refused("limit_reached", per_member_limit=taken.per_member_limit)
    codes: list[str] = []
    if taken.fulfilment == "code":
        codes = await store.assign_codes(conn, tenant_id, sku, quantity, redemption_id, issue_id)
        if len(codes) < quantity:
            raise refused("out_of_stock", codes_available=len(codes), requested=quantity)
    return Reservation(codes=codes, stock=taken)


async def put_back(conn: Conn, tenant_id: str, sku: str, quantity: int, member_id: str,
                   redemption_id: str, *, free_codes: bool) -> StockLevel:
    """Undo a redemption's reservation: stock and allowance, and its codes if ``free_codes``
    (codes a member already saw stay spent)."""
    level = await store.put_back_stock(conn, tenant_id, sku, quantity)
    await store.release_allowance(conn, tenant_id, sku, member_id, quantity)
    if free_codes:
        await store.free_codes_of(conn, tenant_id, sku, redemption_id)
    return level


async def allowance_used(db: Db, tenant_id: str, member_id: str) -> dict[str, int]:
    """How many of each perk the member holds against its per-member limit."""
    return await store.allowance_used(db, tenant_id, member_id)


# --- coupons and tickets -------------------------------------------------------------------

async def give_coupons(conn: Conn, tenant_id: str, sku: str,
                       holders: Sequence[tuple[str, str | None]], *, expires_at: datetime,
                       source: str, ref: str) -> list[str]:
    """One active coupon of the perk per (member id, code or None) in ``holders``; returns
    their ids in that order."""
    coupons = [NewCoupon(coupon_id=new_coupon_id(), member_id=member_id, sku=sku, code=code,
                         expires_at=expires_at, source=source, ref=ref)
               for member_id, code in holders]
    await store.add_coupons(conn, tenant_id, coupons)
    return [c.coupon_id for c in coupons]


async def revoke_coupons(conn: Conn, tenant_id: str, ref: str) -> list[str]:
    """Expire the unused coupons handed out under ``ref``; returns the states they were in."""
    return await store.revoke_coupons(conn, tenant_id, ref)


async def prize_coupon(conn: Conn, tenant_id: str, member_id: str, sku: str, ref: str,
                       now: datetime) -> str:
    """Inside the caller's transaction: the coupon of a prize, made once per ``ref``, with a
    free code of the perk if there is one."""
    existing = await store.coupon_id_by_ref(conn, tenant_id, ref)
    if existing is not None:
        return existing
    terms = await store.perk_terms(conn, tenant_id, sku)
    codes = await store.assign_codes(conn, tenant_id, sku, 1, None, ref)
    days = terms.coupon_valid_days if terms else rules.PRIZE_COUPON_DAYS
    [coupon_id] = await give_coupons(conn, tenant_id, sku,
                                     [(member_id, codes[0] if codes else None)],
                                     expires_at=rules.expiry(now, days), source="issue", ref=ref)
    return coupon_id


async def add_tickets(conn: Conn, tenant_id: str, box_id: str, member_ids: Sequence[str],
                      count: int) -> None:
    await store.add_tickets(conn, tenant_id, box_id, member_ids, count)


async def use_ticket(conn: Conn, tenant_id: str, member_id: str, box_id: str) -> bool:
    """Take one of the member's tickets for the box; False if they have none."""
    return await store.use_ticket(conn, tenant_id, member_id, box_id)


# --- members' coupons ----------------------------------------------------------------------

async def _usable_coupon(conn: Conn, principal: Principal, coupon_id: str,
                         now: datetime) -> CouponRow:
    coupon = await store.coupon(conn, principal.tenant_id, coupon_id, lock=True)
    if coupon is None:
        raise NotFound(f"no coupon {coupon_id!r}", code="unknown_coupon")
    principal.require_member(coupon.member_id)
    rules.check_usable(coupon.state, coupon.expires_at, now)
    return coupon


async def transfer(conn: Conn, principal: Principal, coupon_id: str, body: TransferIn,
                   now: datetime) -> Outcome:
    """Give a coupon to another member, once per ``transfer_id``."""
    async def effect(tx: Conn) -> tuple[int, Transferred]:
        coupon = await _usable_coupon(tx, principal, coupon_id, now)
        rules.check_transfer(coupon.member_id, body.to_member_id)
        new_id = new_coupon_id()
        await store.set_coupon_state(tx, principal.tenant_id, coupon_id, "transferred",
                                     transferred_to=body.to_member_id)
        await store.add_coupons(tx, principal.tenant_id, [NewCoupon(
            coupon_id=new_id, member_id=body.to_member_id, sku=coupon.sku, code=coupon.code,
            expires_at=coupon.expires_at, source="transfer", ref=coupon_id)])
        moved = CouponTransferred(from_member_id=coupon.member_id,
                                  to_member_id=body.to_member_id, coupon_id=coupon_id,
                                  new_coupon_id=new_id, sku=coupon.sku, transferred_at=now)
        await emit(tx,
                   service="rewards", tenant_id=principal.tenant_id, events=[moved])
        return 201, Transferred(transfer_id=body.transfer_id, from_coupon_id=coupon_id,
                                coupon_id=new_id, to_member_id=body.to_member_id)

    return await run_once(conn, tenant_id=principal.tenant_id, scope="rewards.transfers",
                          key=body.transfer_id, request={"coupon_id": coupon_id, "body": body},
                          effect=effect)


async def use(conn: Conn, principal: Principal, coupon_id: str, body: UseIn,
              now: datetime) -> Outcome:
    """Use a coupon, once per ``use_id``."""
    async def effect(tx: Conn) -> tuple[int, Used]:
        coupon = await _usable_coupon(tx, principal, coupon_id, now)
        await store.set_coupon_state(tx, principal.tenant_id, coupon_id, "used", used_at=now)
        uses = await store.coupons_used_by(tx, principal.tenant_id, coupon.member_id)
        used = CouponUsed(member_id=coupon.member_id, coupon_id=coupon_id, sku=coupon.sku,
                          used_at=now, uses_by_member=uses)
        await emit(tx,
                   service="rewards", tenant_id=principal.tenant_id, events=[used])
        return 201, Used(use_id=body.use_id, coupon_id=coupon_id, member_id=coupon.member_id,
                         sku=coupon.sku, used_at=now)

    return await run_once(conn, tenant_id=principal.tenant_id, scope="rewards.uses",
                          key=body.use_id, request={"coupon_id": coupon_id, "body": body},
                          effect=effect)


# --- bulk issues ---------------------------------------------------------------------------

ISSUES_SCOPE = "rewards.issues"


async def issue(conn: Conn, tenant_id: str, issued_by: str | None, body: IssueIn,
                now: datetime, segment: SegmentTarget | None = None) -> Outcome:
    """Perks, coupons or tickets for many members without points, all or nothing, once per
    ``issue_id``; ``issued_by`` (an API key id, or None for fuli itself) goes to the audit.
    An issue to a segment gives its members as read (``segment``), audited with the list's
    count and computation time."""
    rules.check_issue(body)
    assert (segment is None) == (body.segment_id is None), "a segment issue needs its list"
    members = rules.issue_members(segment.member_ids if segment else body.member_ids or [])

    async def effect(tx: Conn) -> tuple[int, Issued]:
        if body.kind == "tickets":
            assert body.box_id is not None
            await store.add_tickets(tx, tenant_id, body.box_id, members, body.count)
        else:
            assert body.sku is not None
            await _issue_coupons(tx, tenant_id, body.sku, body.issue_id, members, body.count,
                                 now)
        await store.audit_issue(tx, tenant_id, body.issue_id, issued_by, body.reason,
                                body.kind, body.sku, body.box_id, body.count, len(members),
                                segment)
        return 201, Issued(issue_id=body.issue_id, kind=body.kind, member_count=len(members),
                           count=body.count)

    return await run_once(conn, tenant_id=tenant_id, scope=ISSUES_SCOPE,
                          key=body.issue_id, request=body, effect=effect)


async def _issue_coupons(tx: Conn, tenant_id: str, sku: str, issue_id: str,
                         members: list[str], count: int, now: datetime) -> None:
    terms = await store.perk_terms(tx, tenant_id, sku)
    if terms is None:
        raise NotFound(f"no perk {sku!r}", code="unknown_sku", sku=sku)
    slots = rules.issue_slots(members, count)
    try:
        taken = await reserve(tx, tenant_id, sku, len(slots), None, issue_id=issue_id)
    except Conflict as short:
        # The same codes and details, with this endpoint's own sentence.
        raise Conflict("not enough stock or codes for this issue", code=short.code,
                       **short.details) from None
    codes: Sequence[str | None] = taken.codes or [None] * len(slots)
    await give_coupons(tx, tenant_id, sku, list(zip(slots, codes, strict=True)),
                       expires_at=rules.expiry(now, terms.coupon_valid_days), source="issue",
                       ref=issue_id)


# --- the wallet as the HTTP API uses it ----------------------------------------------------

class Wallet:
    """Members' coupons and operators' issues, each on a connection of its own."""

    def __init__(self, pool: Pool, tiers: TiersClient) -> None:
        self.pool = pool
        self.tiers = tiers

    async def coupons(self, tenant_id: str, member_id: str, limit: int, cursor: str | None,
                      now: datetime) -> CouponList:
        after = decode_cursor(cursor, 1)[0] if cursor else None
        rows = await store.member_coupons(self.pool, tenant_id, member_id, after, limit + 1)
        page = rows[:limit]
        items = [Coupon(coupon_id=row.coupon_id, sku=row.sku, code=row.code,
                        state=rules.shown_state(row.state, row.expires_at, now),
                        expires_at=row.expires_at, transferred_to=row.transferred_to)
                 for row in page]
        next_cursor = encode_cursor(page[-1].coupon_id) if len(rows) > limit else None
        return CouponList(items=items, next_cursor=next_cursor)

    async def transfer(self, principal: Principal, coupon_id: str, body: TransferIn,
                       now: datetime) -> Outcome:
        async with self.pool.acquire() as conn:
            return await transfer(conn, principal, coupon_id, body, now)

    async def use(self, principal: Principal, coupon_id: str, body: UseIn,
                  now: datetime) -> Outcome:
        async with self.pool.acquire() as conn:
            return await use(conn, principal, coupon_id, body, now)

    async def issue(self, tenant_id: str, issued_by: str | None, body: IssueIn,
                    now: datetime) -> Outcome:
        """An issue to members, or to a segment: its frozen list is read from the tiers
        service first (a repeated issue id answers without reading it again); the issue is
        then all or nothing in one transaction, as for a list."""
        rules.check_issue(body)
        segment: SegmentTarget | None = None
        if body.segment_id is not None:
            async with self.pool.acquire() as conn:
                done = await replay_if_done(conn, tenant_id=tenant_id, scope=ISSUES_SCOPE,
                                            key=body.issue_id, request=body)
            if done is not None:
                return done
            segment = await self.tiers.segment(tenant_id, body.segment_id, MAX_ISSUE_MEMBERS)
        async with self.pool.acquire() as conn:
            return await issue(conn, tenant_id, issued_by, body, now, segment)
