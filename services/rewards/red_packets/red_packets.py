"""Red packets: operator-funded pools and member-made packets.

Points wait in an escrow member of the points ledger: a pool's escrow is funded by a grant from
the issuance account and what is left goes back there when the pool ends; a member packet's
escrow is funded by moving points from the maker, and what is left goes back to the maker when
it expires. Shares are cut when the pool or packet is made, handed out by one Redis script call
each, and recorded in PostgreSQL before any point moves; every points call carries an id
derived from the share, so replays and the worker never pay a share twice. An open's cost is
charged under an id derived from the open itself: a refused open (its member could not pay)
gives its share back and leaves nothing tied to the share, so the next member can open it.

Opens and grabs are safe to run again from the start (every step is keyed by the open id or
the member), so one that fails on a lost database connection is tried once more on a fresh one
before the caller answers 503; while Redis is down they answer 503, and when it is back the
shares' state is rebuilt from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Literal

from proto import rewards as r
from proto.events import PacketGrabbed, PacketMade
from services.rewards.ids import digest
from services.rewards.points_client import PointsClient
from services.rewards.red_packets import rules, store
from services.rewards.red_packets.shares import MEMBER_LIMIT, NONE_LEFT, ShareDispenser
from services.rewards.refusals import refused
from services.rewards.windows import open_at
from services.runtime.db import Pool, once_more_on_fault
from services.runtime.errors import (
    Conflict,
    FuliError,
    IdempotencyConflict,
    NotFound,
    ValidationFailed,
    is_connection_fault,
)
from services.runtime.idempotency import Outcome, fingerprint
from services.runtime.outbox import emit
from services.runtime.pagination import before_cursor, newest_first_cursor
from services.runtime.resources import Resources

log = logging.getLogger("fuli.rewards.red_packets")

MAX_SHARE_TRIES = 50
CLAIM_WAITS = 500
CLAIM_POLL_S = 0.01
LATEST_OPENS = 20


class RedPackets:
    def __init__(self, resources: Resources, points: PointsClient) -> None:
        self.db: Pool = resources.pool
        self.points = points
        self.shares = ShareDispenser(resources.redis)

    # --- pools -----------------------------------------------------------------------------

    async def create_pool(self, tenant_id: str, body: r.PoolIn, now: datetime) -> r.Pool:
        """Creates and funds the pool once per ``pool_id``; a repeat funds nothing more."""
        if body.packets > body.total_points:
            raise ValidationFailed("a pool needs at least one point per packet",
                                   field="packets")
        if body.ends_at <= (body.starts_at or now):
            raise ValidationFailed("ends_at must be after starts_at and in the future",
                                   field="ends_at")
        escrow = rules.escrow_of("pool", body.pool_id)
        pool = await store.pool(self.db, tenant_id, body.pool_id)
        if pool is None:
            pool = await store.insert_pool(
                self.db, tenant_id, body,
                rules.split(body.total_points, body.packets, body.split), escrow)
        if pool is None:  # a concurrent request made it first
            pool = await store.pool(self.db, tenant_id, body.pool_id)
            assert pool is not None
        if (pool.total_points, pool.packets, pool.name) != (
                body.total_points, body.packets, body.name):
            raise IdempotencyConflict.for_key(body.pool_id)
        answer = await self.points.grant(tenant_id, "pool:" + digest(body.pool_id), escrow,
                                         body.total_points, f"red packet pool {body.pool_id}")
        if answer.status_code != 201:
            raise Conflict("the pool could not be funded", code="funding_failed",
                           reason=answer.error_code)
        return await self._show_pool(tenant_id, pool)

    async def pool_view(self, tenant_id: str, pool_id: str) -> r.Pool:
        pool = await store.pool(self.db, tenant_id, pool_id)
        if pool is None:
            raise NotFound(f"no pool {pool_id!r}", code="unknown_pool")
        return await self._show_pool(tenant_id, pool)

    async def pools(self, tenant_id: str, status: str | None, limit: int,
                    cursor: str | None) -> r.PoolList:
        """The tenant's pools newest first, with what is left in each."""
        rows = await store.pools(self.db, tenant_id, status, before_cursor(cursor), limit + 1)
        page = rows[:limit]
        return r.PoolList(items=[r.PoolSummary(
            pool_id=row.pool_id, name=row.name, total_points=row.total_points,
            packets=row.packets, split=row.split, open_cost_points=row.open_cost_points,
            per_member_opens=row.per_member_opens, starts_at=row.starts_at,
            ends_at=row.ends_at, status=row.status,
            remaining_packets=0 if row.status == "settled" else row.packets - row.opened,
            remaining_points=0 if row.status == "settled"
            else row.total_points - row.opened_points,
            created_at=row.created_at) for row in page],
            next_cursor=newest_first_cursor(page[-1].created_at, page[-1].pool_id)
            if len(rows) > limit else None)

    async def _show_pool(self, tenant_id: str, pool: store.PoolRow) -> r.Pool:
        opens = await store.opened_shares(self.db, tenant_id, pool.pool_id)
        settled = pool.status == "settled"
        return r.Pool(pool_id=pool.pool_id, name=pool.name, total_points=pool.total_points,
                      packets=pool.packets, split=pool.split,
                      open_cost_points=pool.open_cost_points,
                      per_member_opens=pool.per_member_opens, starts_at=pool.starts_at,
                      ends_at=pool.ends_at, status=pool.status,
                      remaining_packets=0 if settled else pool.packets - len(opens),
                      remaining_points=0 if settled
                      else pool.total_points - sum(o.points for o in opens),
                      latest_opens=[r.PoolOpenView(open_id=o.open_id, member_id=o.member_id,
                                                   points=o.points, at=o.at)
                                    for o in opens[:LATEST_OPENS]])

    async def open(self, tenant_id: str, pool_id: str, body: r.PoolOpenIn,
                   now: datetime) -> Outcome:
        """Opens one packet of the pool, once per ``open_id``: its share; or a refusal, final
        only when the member's points fell short after the share was reserved."""
        return await once_more_on_fault(lambda: self._open(tenant_id, pool_id, body, now),
                                        f"pool open {body.open_id}")

    async def _open(self, tenant_id: str, pool_id: str, body: r.PoolOpenIn,
                    now: datetime) -> Outcome:
        request_print = fingerprint("rewards.pool_opens", body.open_id,
                                    {"pool_id": pool_id, "body": body})
        for _ in range(CLAIM_WAITS):
            found = await store.pool_open(self.db, tenant_id, body.open_id)
            if found is not None:
                return await self._replay_open(tenant_id, found, request_print)
            # One request at a time per open id: a retry sent while the first is under way
            # waits for the first one's answer instead of racing it for a share (and being
            # refused for the member's limit, which the first one's share counts against).
            async with self.shares.claim_open(tenant_id, body.open_id) as claimed:
                if claimed:
                    return await self._open_claimed(tenant_id, pool_id, body, request_print,
                                                    now)
            await asyncio.sleep(CLAIM_POLL_S)
        raise Conflict("this open is still under way; retry", code="in_progress")

    async def _open_claimed(self, tenant_id: str, pool_id: str, body: r.PoolOpenIn,
                            request_print: bytes, now: datetime) -> Outcome:
        found = await store.pool_open(self.db, tenant_id, body.open_id)
        if found is not None:  # finished by the request that held the claim before
            return await self._replay_open(tenant_id, found, request_print)
        pool = await store.pool(self.db, tenant_id, pool_id)
        if pool is None:
            raise NotFound(f"no pool {pool_id!r}", code="unknown_pool")
        # Refusals before a share is reserved (the pool's window, too few points for the cost,
        # none left, the member's limit) store nothing: the same open again is evaluated again.
        reserved = await self._reserve_share(tenant_id, pool, body, request_print, now)
        if isinstance(reserved, store.PoolOpenRow):
            return await self._finish_open(tenant_id, reserved, pool)
        if reserved == "exists":
            found = await store.pool_open(self.db, tenant_id, body.open_id)
            assert found is not None
            return await self._replay_open(tenant_id, found, request_print)
        raise Conflict("the pool is busy; retry", code="in_progress")

    async def _reserve_share(self, tenant_id: str, pool: store.PoolRow, body: r.PoolOpenIn,
                             request_print: bytes,
                             now: datetime) -> store.PoolOpenRow | Literal["exists", "busy"]:
        """Reserves a share for the open: the reserved open ('exists' if its id was just
        used); refuses when the pool has none for the member."""
        if pool.status != "open" or not open_at(now, pool.starts_at, pool.ends_at):
            raise refused("not_available", of="pool")
        if pool.open_cost_points > 0:
            available = await self.points.available(tenant_id, body.member_id)
            if available < pool.open_cost_points:
                raise refused("insufficient_points", of="pool", available=available,
                              requested=pool.open_cost_points)
        for _ in range(MAX_SHARE_TRIES):
            index, nth, recheck = await self.shares.take(
                tenant_id, "pool", pool.pool_id, body.member_id, pool.per_member_opens,
                lambda: self._pool_state(tenant_id, pool))
            if recheck and await self._pool_dispenser_behind(tenant_id, pool, body.member_id,
                                                             index):
                continue
            if index == NONE_LEFT:
                raise refused("out_of_stock", of="pool", packets=pool.packets)
            if index == MEMBER_LIMIT:
                raise refused("limit_reached", of="pool",
                              per_member_opens=pool.per_member_opens)
            if index < 0:  # the state could not be rebuilt in time
                return "busy"
            state = await store.reserve_pool_open(
                self.db, tenant_id, pool.pool_id, body.open_id, body.member_id, request_print,
                index, nth)
            if isinstance(state, store.PoolOpenRow):
                return state
            if state == "exists":  # a concurrent request with this open id recorded it first
                await self.shares.give_back(tenant_id, "pool", pool.pool_id, body.member_id,
                                            index)
                return state
            if state == "member":
                # Redis counted fewer shares for the member than the record holds: rebuild it.
                await self.shares.forget(tenant_id, "pool", pool.pool_id)
                continue
            # Redis handed out a share the record already has (after a rebuild): take another.
            await self.shares.uncount(tenant_id, "pool", pool.pool_id, body.member_id)
        return "busy"

    async def _pool_dispenser_behind(self, tenant_id: str, pool: store.PoolRow,
                                     member_id: str, refusal: int) -> bool:
        """Whether Redis refused (``refusal``: none left, or the member's limit) although
        PostgreSQL has a share for the member; if so the state is dropped, to be rebuilt by
        the next take. Asked at most once a second per pool (``Taken.recheck``): while the
        last shares are being recorded the record looks behind too, and rebuilding then only
        costs a retry."""
        taken, mine = await store.shares_taken(self.db, tenant_id, pool.pool_id, member_id)
        behind = (taken < pool.packets if refusal == NONE_LEFT
                  else mine < pool.per_member_opens)
        if behind:
            log.warning("pool %s: Redis refused a share PostgreSQL still has; rebuilding",
                        pool.pool_id)
            await self.shares.forget(tenant_id, "pool", pool.pool_id)
        return behind

    async def _pool_state(self, tenant_id: str,
                          pool: store.PoolRow) -> tuple[list[int], dict[str, int]]:
        opened = await store.opened_shares(self.db, tenant_id, pool.pool_id)
        return (rules.free_shares(pool.packets, (o.share_index for o in opened)),
                rules.shares_by_member(o.member_id for o in opened))

    async def _replay_open(self, tenant_id: str, found: store.PoolOpenRow,
                           request_print: bytes, *, replayed: bool = True) -> Outcome:
        if found.fingerprint != request_print:
            raise IdempotencyConflict.for_key(found.open_id)
        if found.status == "reserved":
            return await self._finish_open(tenant_id, found, replayed=True)
        return _stored_answer(found, replayed)

    async def finish_open(self, tenant_id: str, open_id: str) -> Outcome:
        """Charge the open's cost (if any) and pay its share; safe to run again."""
        found = await store.pool_open(self.db, tenant_id, open_id)
        assert found is not None
        return await self._finish_open(tenant_id, found)

    async def _finish_open(self, tenant_id: str, found: store.PoolOpenRow,
                           pool: store.PoolRow | None = None, *,
                           replayed: bool = False) -> Outcome:
        """``finish_open`` of an open as read (and of its pool, if at hand)."""
        if found.status != "reserved":
            return _stored_answer(found, replayed)
        assert found.share_index is not None and found.points is not None
        if pool is None:
            pool = await store.pool(self.db, tenant_id, found.pool_id)
            assert pool is not None
        share_key = digest(found.pool_id, str(found.share_index))
        if pool.open_cost_points > 0:
            # The cost belongs to this open, not to its share: a refused open must leave
            # nothing behind that the next holder of the share would run into.
            charged = await self.points.debit(tenant_id,
                                              "poolcost:" + digest(found.pool_id, found.open_id),
                                              found.member_id, pool.open_cost_points,
                                              f"opening red packet pool {found.pool_id}")
            if charged.status_code != 201:
                outcome = Outcome.refused(refused(
                    "insufficient_points", of="pool",
                    available=charged.error_details.get("available", 0),
                    requested=pool.open_cost_points), replayed=replayed)
                if await store.finish_pool_open(self.db, tenant_id, found.open_id, "failed",
                                                outcome):
                    await self.shares.give_back(tenant_id, "pool", found.pool_id,
                                                found.member_id, found.share_index)
                return outcome
        paid = await self.points.move(tenant_id, "poolshare:" + share_key, pool.escrow_member,
                                      found.member_id, found.points,
                                      f"red packet pool {found.pool_id}")
        if paid.status_code != 201:
            raise Conflict("the share could not be paid yet; retry", code="in_progress",
                           points_status=paid.status_code, reason=paid.error_code)
        outcome = Outcome.of(201, r.PoolOpened(open_id=found.open_id, member_id=found.member_id,
                                               points=found.points), replayed=replayed)
        await store.finish_pool_open(self.db, tenant_id, found.open_id, "paid", outcome)
        return outcome

    async def settle_pool(self, tenant_id: str, pool_id: str) -> None:
        """After the end: what is left in the escrow goes back to the issuance account."""
        pool = await store.pool(self.db, tenant_id, pool_id)
        if pool is None or pool.status != "open":
            return
        left = await self.points.available(tenant_id, pool.escrow_member)
        if left > 0:
            answer = await self.points.retire(tenant_id, "poolend:" + digest(pool_id),
                                              pool.escrow_member, left,
                                              f"red packet pool {pool_id} ended")
            if answer.status_code != 201:
                raise Conflict("the pool's remainder could not be returned", code="in_progress")
        await store.settle_pool(self.db, tenant_id, pool_id, left)
        await self.shares.forget(tenant_id, "pool", pool_id)

    # --- member packets --------------------------------------------------------------------

    async def make_packet(self, tenant_id: str, body: r.PacketIn, now: datetime) -> r.Packet:
        """Makes and funds the packet once per ``packet_id``, from the maker's points."""
        if body.shares > body.total_points:
            raise ValidationFailed("a packet needs at least one point per share", field="shares")
        request_print = fingerprint("rewards.packets", body.packet_id, body)
        escrow = rules.escrow_of("packet", body.packet_id)
        packet = await store.insert_packet(
            self.db, tenant_id, body, rules.split(body.total_points, body.shares, body.split),
            escrow, now + timedelta(seconds=body.expires_in_s), request_print)
        inserted = packet is not None
        if packet is None:
            packet = await store.packet(self.db, tenant_id, body.packet_id)
            assert packet is not None
        if packet.fingerprint != request_print:
            raise IdempotencyConflict.for_key(body.packet_id)
        funded = await self.points.move(tenant_id, "packet:" + digest(body.packet_id),
                                        body.member_id, escrow, body.total_points,
                                        f"red packet {body.packet_id}")
        if funded.status_code != 201:
            if inserted:  # nothing was taken: the packet never existed
                await store.delete_packet(self.db, tenant_id, body.packet_id)
            code = funded.error_code or "funding_failed"
            raise Conflict("the maker does not have the points for this packet"
                           if code == "insufficient_points" else "the packet was not funded",
                           code="insufficient_points" if funded.short_of_points else code,
                           **funded.error_details)
        if inserted:
            async with self.db.acquire() as conn:
                await emit(conn, service="rewards", tenant_id=tenant_id,
                           events=[PacketMade(
                               member_id=body.member_id, packet_id=body.packet_id,
                               total_points=body.total_points, shares=body.shares,
                               group_id=body.group_id, made_at=now)])
        return await self._show_packet(tenant_id, packet)

    async def packet_view(self, tenant_id: str, packet_id: str) -> r.Packet:
        packet = await store.packet(self.db, tenant_id, packet_id)
        if packet is None:
            raise NotFound(f"no packet {packet_id!r}", code="unknown_packet")
        return await self._show_packet(tenant_id, packet)

    async def _show_packet(self, tenant_id: str, packet: store.PacketRow) -> r.Packet:
        grabs = await store.packet_grabs(self.db, tenant_id, packet.packet_id)
        expired = packet.status == "expired"
        return r.Packet(packet_id=packet.packet_id, member_id=packet.maker_member_id,
                        total_points=packet.total_points, shares=len(packet.shares),
                        split=packet.split, group_id=packet.group_id,
                        expires_at=packet.expires_at, status=packet.status,
                        remaining_shares=0 if expired else len(packet.shares) - len(grabs),
                        remaining_points=0 if expired
                        else packet.total_points - sum(g.points for g in grabs),
                        refunded_points=packet.refunded_points,
                        grabs=[r.GrabView(member_id=g.member_id, points=g.points, at=g.at)
                               for g in grabs])

    async def grab(self, tenant_id: str, packet_id: str, body: r.GrabIn,
                   now: datetime) -> Outcome:
        """One share per member, never the maker's own packet. With a ``grab_id`` the grab is
        idempotent as an open is: the same id and body replays it, another body under the id
        is 409 idempotency_conflict, and a refusal stores nothing; a member's second grab under
        a new id is 409 limit_reached. Without one, grabbing again answers with the first grab
        (the behaviour older clients rely on)."""
        return await once_more_on_fault(lambda: self._grab(tenant_id, packet_id, body, now),
                                        f"packet grab {packet_id} {body.member_id}")

    async def _grab(self, tenant_id: str, packet_id: str, body: r.GrabIn,
                    now: datetime) -> Outcome:
        request_print = (fingerprint("rewards.grabs", body.grab_id,
                                     {"packet_id": packet_id, "body": body})
                         if body.grab_id is not None else None)
        if body.grab_id is not None and (found := await store.grab_by_id(
                self.db, tenant_id, body.grab_id)) is not None:
            return await self._replay_grab(tenant_id, body.grab_id, request_print, *found, now)
        packet = await store.packet(self.db, tenant_id, packet_id)
        if packet is None:
            raise NotFound(f"no packet {packet_id!r}", code="unknown_packet")
        earlier = await store.grab(self.db, tenant_id, packet_id, body.member_id)
        if earlier is not None:
            return await self._answer_earlier(tenant_id, packet, earlier, body, request_print,
                                              now)
        if body.member_id == packet.maker_member_id:
            raise refused("own_packet", of="packet")
        if packet.status != "open" or not open_at(now, None, packet.expires_at):
            raise refused("not_available", of="packet")
        waits = 0
        for _ in range(MAX_SHARE_TRIES):
            index, _, recheck = await self.shares.take(
                tenant_id, "packet", packet_id, body.member_id, 1,
                lambda: self._packet_state(tenant_id, packet))
            if recheck and await self._packet_dispenser_behind(tenant_id, packet,
                                                               body.member_id, index):
                continue
            if index == NONE_LEFT:
                raise refused("out_of_stock", of="packet")
            if index < 0:
                # The member's share went to a concurrent request (the same grab sent twice,
                # or another grab of this member) that may not have recorded it yet: wait for
                # its record, as a pool open waits for the request holding its claim. With no
                # state in time (NEEDS_REBUILD) there is nothing to wait for.
                waits = CLAIM_WAITS if index == MEMBER_LIMIT else 0
                break
            state = await store.record_grab(self.db, tenant_id, packet_id, body.member_id,
                                            index, packet.shares[index], body.grab_id,
                                            request_print)
            if state == "ok":
                found_grab = await store.grab(self.db, tenant_id, packet_id, body.member_id)
                assert found_grab is not None
                return await self._pay_grab(tenant_id, packet, found_grab, now,
                                            replayed=False)
            if state in ("member", "exists"):
                # Grabbed concurrently by this member, or under this id: the share is not needed.
                await self.shares.give_back(tenant_id, "packet", packet_id, body.member_id,
                                            index)
                break
            # Redis handed out a share the record already has (after a rebuild): take another.
            await self.shares.uncount(tenant_id, "packet", packet_id, body.member_id)
        for attempt in range(1 + waits):
            if attempt:
                await asyncio.sleep(CLAIM_POLL_S)
            if body.grab_id is not None and (found := await store.grab_by_id(
                    self.db, tenant_id, body.grab_id)) is not None:
                return await self._replay_grab(tenant_id, body.grab_id, request_print, *found,
                                               now)
            earlier = await store.grab(self.db, tenant_id, packet_id, body.member_id)
            if earlier is not None:
                return await self._answer_earlier(tenant_id, packet, earlier, body,
                                                  request_print, now)
        raise Conflict("the packet is busy; retry", code="in_progress")

    async def _replay_grab(self, tenant_id: str, grab_id: str, request_print: bytes | None,
                           packet_id: str, found: store.GrabRow, now: datetime) -> Outcome:
        if found.fingerprint != request_print:
            raise IdempotencyConflict.for_key(grab_id)
        packet = await store.packet(self.db, tenant_id, packet_id)
        assert packet is not None
        return await self._pay_grab(tenant_id, packet, found, now, replayed=True)

    async def _answer_earlier(self, tenant_id: str, packet: store.PacketRow,
                              earlier: store.GrabRow, body: r.GrabIn,
                              request_print: bytes | None, now: datetime) -> Outcome:
        """The member grabbed this packet before: without an id, the answer is that grab;
        under its id, its replay; under a new id, the member's limit."""
        if body.grab_id is None or earlier.grab_id == body.grab_id:
            if body.grab_id is not None and earlier.fingerprint != request_print:
                raise IdempotencyConflict.for_key(body.grab_id)
            return await self._pay_grab(tenant_id, packet, earlier, now,
                                        replayed=body.grab_id is not None)
        raise refused("limit_reached", of="packet", per_member_grabs=1)

    async def _packet_dispenser_behind(self, tenant_id: str, packet: store.PacketRow,
                                       member_id: str, refusal: int) -> bool:
        """``_pool_dispenser_behind`` for a member packet (one share per member)."""
        grabs = await store.packet_grabs(self.db, tenant_id, packet.packet_id)
        behind = (len(grabs) < len(packet.shares) if refusal == NONE_LEFT
                  else all(g.member_id != member_id for g in grabs))
        if behind:
            log.warning("packet %s: Redis refused a share PostgreSQL still has; rebuilding",
                        packet.packet_id)
            await self.shares.forget(tenant_id, "packet", packet.packet_id)
        return behind

    async def _packet_state(self, tenant_id: str,
                            packet: store.PacketRow) -> tuple[list[int], dict[str, int]]:
        grabs = await store.packet_grabs(self.db, tenant_id, packet.packet_id)
        return (rules.free_shares(len(packet.shares), (g.share_index for g in grabs)),
                rules.shares_by_member(g.member_id for g in grabs))

    async def _pay_grab(self, tenant_id: str, packet: store.PacketRow, grab: store.GrabRow,
                        now: datetime, *, replayed: bool) -> Outcome:
        if not grab.paid:
            paid = await self.points.move(
                tenant_id, "grab:" + digest(packet.packet_id, str(grab.share_index)),
                packet.escrow_member, grab.member_id, grab.points,
                f"red packet {packet.packet_id}")
            if paid.status_code != 201:
                raise Conflict("the share could not be paid yet; retry", code="in_progress")
            async with self.db.acquire() as conn, conn.transaction():
                await store.mark_grab_paid(conn, tenant_id, packet.packet_id, grab.member_id)
                await emit(conn, service="rewards", tenant_id=tenant_id,
                           events=[PacketGrabbed(
                               member_id=grab.member_id, maker_member_id=packet.maker_member_id,
                               packet_id=packet.packet_id, points=grab.points,
                               group_id=packet.group_id, grabbed_at=now)])
        return Outcome.of(201, r.Grab(packet_id=packet.packet_id, member_id=grab.member_id,
                                      points=grab.points, grab_id=grab.grab_id),
                          replayed=replayed)

    async def expire_packet(self, tenant_id: str, packet_id: str) -> None:
        """Pay out grabs still unpaid, then return what is left to the maker, once."""
        packet = await store.packet(self.db, tenant_id, packet_id)
        if packet is None or packet.status != "open":
            return
        now = datetime.now(UTC)
        for grab in await store.packet_grabs(self.db, tenant_id, packet_id):
            if not grab.paid:
                await self._pay_grab(tenant_id, packet, grab, now, replayed=False)
        grabs = await store.packet_grabs(self.db, tenant_id, packet_id)
        left = rules.left_over(packet.shares, (g.share_index for g in grabs))
        if left > 0:
            answer = await self.points.move(tenant_id, "packetback:" + digest(packet_id),
                                            packet.escrow_member, packet.maker_member_id,
                                            left, f"red packet {packet_id} expired")
            if answer.status_code != 201:
                raise Conflict("the remainder could not be returned yet", code="in_progress")
        await store.close_packet(self.db, tenant_id, packet_id, left)
        await self.shares.forget(tenant_id, "packet", packet_id)

    # --- background ------------------------------------------------------------------------

    async def settle_due(self, stuck_before: datetime, ended_before: datetime,
                         batch: int) -> None:
        """Finish opens left reserved since ``stuck_before``, settle pools and expire packets
        that ended before ``ended_before``; one that cannot finish now is left for next time."""
        for stuck in await store.reserved_opens(self.db, stuck_before, batch):
            await _quietly(self.finish_open(stuck.tenant_id, stuck.id), stuck.id)
        for ended in await store.ended_pools(self.db, ended_before, batch):
            await _quietly(self.settle_pool(ended.tenant_id, ended.id), ended.id)
        for expired in await store.expired_packets(self.db, ended_before, batch):
            await _quietly(self.expire_packet(expired.tenant_id, expired.id), expired.id)


def _stored_answer(found: store.PoolOpenRow, replayed: bool) -> Outcome:
    assert found.outcome_status is not None and found.outcome_body is not None
    return Outcome(found.outcome_status, found.outcome_body, replayed)


async def _quietly(step: Awaitable[object], what: str) -> None:
    """Runs one step of the background work; one that is refused or hits a connection fault
    (Redis or PostgreSQL down for a moment) is left for the next run, and the others go on."""
    try:
        await step
    except Exception as exc:
        if not isinstance(exc, FuliError) and not is_connection_fault(exc):
            raise
        log.warning("%s not settled yet: %s: %s", what, type(exc).__name__, exc)
