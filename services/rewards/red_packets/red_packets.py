"""Red packets: operator-funded pools and member-made packets.

Points wait in an escrow member of the points ledger: a pool's escrow is funded by a grant from
the issuance account and what is left goes back there when the pool ends; a member packet's
escrow is funded by moving points from the maker, and what is left goes back to the maker when
it expires. Shares are cut when the pool or packet is made, handed out by one Redis script call
each, and recorded in PostgreSQL before any point moves; every points call carries an id
derived from the share, so replays and the worker never pay a share twice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from proto.events import PacketGrabbed, PacketMade
from proto.rewards import Grab, GrabIn, PacketIn, PoolIn, PoolOpened, PoolOpenIn
from services.rewards.points_client import PointsClient
from services.rewards.red_packets import rules as splits
from services.rewards.red_packets import shares as dispenser_codes
from services.rewards.red_packets import store
from services.rewards.red_packets.shares import ShareDispenser
from services.rewards.redemptions import refusal
from services.runtime.errors import Conflict, IdempotencyConflict, NotFound, ValidationFailed
from services.runtime.idempotency import Outcome, fingerprint
from services.runtime.outbox import emit
from services.runtime.resources import Resources

_encoder = msgspec.json.Encoder()
MAX_SHARE_TRIES = 50


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def escrow_of(kind: str, owner_id: str) -> str:
    return f"{kind}:{digest(owner_id)}"


class RedPackets:
    def __init__(self, resources: Resources, points: PointsClient) -> None:
        self.pool = resources.pool
        self.points = points
        self.shares = ShareDispenser(resources.redis)

    # --- pools -----------------------------------------------------------------------------

    async def create_pool(self, tenant_id: str, body: PoolIn, now: datetime) -> None:
        if body.packets > body.total_points:
            raise ValidationFailed("a pool needs at least one point per packet",
                                   field="packets")
        if body.ends_at <= (body.starts_at or now):
            raise ValidationFailed("ends_at must be after starts_at and in the future",
                                   field="ends_at")
        escrow = escrow_of("pool", body.pool_id)
        existing = await store.pool(self.pool, tenant_id, body.pool_id)
        if existing is None:
            await store.insert_pool(self.pool, tenant_id, body,
                                    splits.split(body.total_points, body.packets, body.split),
                                    escrow)
        existing = await store.pool(self.pool, tenant_id, body.pool_id)
        assert existing is not None
        if (existing["total_points"], existing["packets"], existing["name"]) != (
                body.total_points, body.packets, body.name):
            raise IdempotencyConflict(f"{body.pool_id!r} was already used with a different "
                                      "request", id=body.pool_id)
        answer = await self.points.grant(tenant_id, "pool:" + digest(body.pool_id), escrow,
                                         body.total_points, f"red packet pool {body.pool_id}")
        if answer.status_code != 201:
            raise Conflict("the pool could not be funded", code="funding_failed",
                           reason=answer.error_code)

    async def open(self, tenant_id: str, pool_id: str, body: PoolOpenIn,
                   now: datetime) -> Outcome:
        request_print = fingerprint("rewards.pool_opens", body.open_id,
                                    {"pool_id": pool_id, "body": body})
        found = await store.pool_open(self.pool, tenant_id, body.open_id)
        if found is not None:
            return await self._replay_open(tenant_id, found, request_print)
        pool = await store.pool(self.pool, tenant_id, pool_id)
        if pool is None:
            raise NotFound(f"no pool {pool_id!r}", code="unknown_pool")
        if pool["status"] != "open" or now >= pool["ends_at"] or (
                pool["starts_at"] and now < pool["starts_at"]):
            return await self._refuse_open(tenant_id, pool_id, body, request_print,
                                           refusal("not_available"))
        for _ in range(MAX_SHARE_TRIES):
            index, nth = await self.shares.take(
                tenant_id, "pool", pool_id, body.member_id, pool["per_member_opens"],
                lambda: self._pool_state(tenant_id, pool_id, pool["packets"]))
            if index == dispenser_codes.NONE_LEFT:
                return await self._refuse_open(tenant_id, pool_id, body, request_print,
                                               refusal("out_of_stock", packets=pool["packets"]))
            if index == dispenser_codes.MEMBER_LIMIT:
                return await self._refuse_open(
                    tenant_id, pool_id, body, request_print,
                    refusal("limit_reached", per_member_opens=pool["per_member_opens"]))
            state = await store.reserve_pool_open(
                self.pool, tenant_id, pool_id, body.open_id, body.member_id, request_print,
                index, nth, pool["shares"][index])
            if state == "ok":
                return await self.finish_open(tenant_id, body.open_id)
            if state == "exists":
                found = await store.pool_open(self.pool, tenant_id, body.open_id)
                assert found is not None
                return await self._replay_open(tenant_id, found, request_print)
            # Redis handed out a share the record already has (after a flush): take another.
        raise Conflict("the pool is busy; retry", code="in_progress")

    async def _pool_state(self, tenant_id: str, pool_id: str,
                          packets: int) -> tuple[list[int], dict[str, int]]:
        taken, counts = await store.pool_share_state(self.pool, tenant_id, pool_id)
        used = set(taken)
        return [i for i in range(packets) if i not in used], counts

    async def _refuse_open(self, tenant_id: str, pool_id: str, body: PoolOpenIn,
                           request_print: bytes, outcome: tuple[int, bytes]) -> Outcome:
        await store.record_refused_open(self.pool, tenant_id, pool_id, body.open_id,
                                        body.member_id, request_print, outcome)
        found = await store.pool_open(self.pool, tenant_id, body.open_id)
        assert found is not None
        return await self._replay_open(tenant_id, found, request_print, replayed=False)

    async def _replay_open(self, tenant_id: str, found: asyncpg.Record, request_print: bytes,
                           *, replayed: bool = True) -> Outcome:
        if bytes(found["fingerprint"]) != request_print:
            raise IdempotencyConflict(f"{found['open_id']!r} was already used with a different "
                                      "request", id=found["open_id"])
        if found["status"] == "reserved":
            return await self.finish_open(tenant_id, found["open_id"], replayed=True)
        return Outcome(found["outcome_status"], bytes(found["outcome_body"]), replayed)

    async def finish_open(self, tenant_id: str, open_id: str, *,
                          replayed: bool = False) -> Outcome:
        """Charge the open's cost (if any) and pay its share; safe to run again."""
        found = await store.pool_open(self.pool, tenant_id, open_id)
        assert found is not None
        if found["status"] != "reserved":
            return Outcome(found["outcome_status"], bytes(found["outcome_body"]), replayed)
        pool = await store.pool(self.pool, tenant_id, found["pool_id"])
        assert pool is not None
        share_key = digest(found["pool_id"], str(found["share_index"]))
        if pool["open_cost_points"] > 0:
            charged = await self.points.debit(tenant_id, "poolcost:" + share_key,
                                              found["member_id"], pool["open_cost_points"],
                                              f"opening red packet pool {found['pool_id']}")
            if charged.status_code != 201:
                outcome = refusal("insufficient_points",
                                  available=charged.error_details.get("available", 0),
                                  requested=pool["open_cost_points"])
                if await store.finish_pool_open(self.pool, tenant_id, open_id, "failed",
                                                outcome):
                    await self.shares.give_back(tenant_id, "pool", found["pool_id"],
                                                found["member_id"], found["share_index"])
                return Outcome(*outcome, replayed)
        paid = await self.points.move(tenant_id, "poolshare:" + share_key, pool["escrow_member"],
                                      found["member_id"], found["points"],
                                      f"red packet pool {found['pool_id']}")
        if paid.status_code != 201:
            raise Conflict("the share could not be paid yet; retry", code="in_progress",
                           points_status=paid.status_code, reason=paid.error_code)
        outcome = (201, _encoder.encode(PoolOpened(open_id=open_id, member_id=found["member_id"],
                                                   points=found["points"])))
        await store.finish_pool_open(self.pool, tenant_id, open_id, "paid", outcome)
        return Outcome(*outcome, replayed)

    async def settle_pool(self, tenant_id: str, pool_id: str) -> None:
        """After the end: what is left in the escrow goes back to the issuance account."""
        pool = await store.pool(self.pool, tenant_id, pool_id)
        if pool is None or pool["status"] != "open":
            return
        left = await self.points.available(tenant_id, pool["escrow_member"])
        if left > 0:
            answer = await self.points.retire(tenant_id, "poolend:" + digest(pool_id),
                                              pool["escrow_member"], left,
                                              f"red packet pool {pool_id} ended")
            if answer.status_code != 201:
                raise Conflict("the pool's remainder could not be returned", code="in_progress")
        await store.settle_pool(self.pool, tenant_id, pool_id, left)
        await self.shares.forget(tenant_id, "pool", pool_id)

    # --- member packets --------------------------------------------------------------------

    async def make_packet(self, tenant_id: str, body: PacketIn, now: datetime) -> None:
        if body.shares > body.total_points:
            raise ValidationFailed("a packet needs at least one point per share", field="shares")
        request_print = fingerprint("rewards.packets", body.packet_id, body)
        escrow = escrow_of("packet", body.packet_id)
        inserted = await store.insert_packet(
            self.pool, tenant_id, body, splits.split(body.total_points, body.shares, body.split),
            escrow, now + timedelta(seconds=body.expires_in_s), request_print)
        found = await store.packet(self.pool, tenant_id, body.packet_id)
        assert found is not None
        if bytes(found["fingerprint"]) != request_print:
            raise IdempotencyConflict(f"{body.packet_id!r} was already used with a different "
                                      "request", id=body.packet_id)
        funded = await self.points.move(tenant_id, "packet:" + digest(body.packet_id),
                                        body.member_id, escrow, body.total_points,
                                        f"red packet {body.packet_id}")
        if funded.status_code != 201:
            if inserted:  # nothing was taken: the packet never existed
                await self.pool.execute(
                    "DELETE FROM rewards.packets WHERE tenant_id = $1 AND packet_id = $2",
                    tenant_id, body.packet_id)
            code = funded.error_code or "funding_failed"
            raise Conflict("the maker does not have the points for this packet"
                           if code == "insufficient_points" else "the packet was not funded",
                           code="insufficient_points" if code in (
                               "insufficient_points", "unknown_member") else code,
                           **funded.error_details)
        if inserted:
            async with self.pool.acquire() as conn:
                await emit(conn, service="rewards", tenant_id=tenant_id, events=[PacketMade(
                    member_id=body.member_id, packet_id=body.packet_id,
                    total_points=body.total_points, shares=body.shares,
                    group_id=body.group_id, made_at=now)])

    async def grab(self, tenant_id: str, packet_id: str, body: GrabIn, now: datetime) -> Grab:
        packet = await store.packet(self.pool, tenant_id, packet_id)
        if packet is None:
            raise NotFound(f"no packet {packet_id!r}", code="unknown_packet")
        earlier = await store.grab(self.pool, tenant_id, packet_id, body.member_id)
        if earlier is not None:  # one grab per member: the first result again
            return await self._pay_grab(tenant_id, packet, earlier, now)
        if packet["status"] != "open" or now >= packet["expires_at"]:
            raise Conflict("the packet expired", code="not_available")
        for _ in range(MAX_SHARE_TRIES):
            index, _ = await self.shares.take(
                tenant_id, "packet", packet_id, body.member_id, 1,
                lambda: self._packet_state(tenant_id, packet_id, len(packet["shares"])))
            if index == dispenser_codes.NONE_LEFT:
                raise Conflict("every share was grabbed", code="out_of_stock")
            if index == dispenser_codes.MEMBER_LIMIT:
                break  # grabbed concurrently by this member: answer with that grab
            state = await store.record_grab(self.pool, tenant_id, packet_id, body.member_id,
                                            index, packet["shares"][index])
            if state in ("ok", "member"):
                break
        found = await store.grab(self.pool, tenant_id, packet_id, body.member_id)
        if found is None:
            raise Conflict("the packet is busy; retry", code="in_progress")
        return await self._pay_grab(tenant_id, packet, found, now)

    async def _packet_state(self, tenant_id: str, packet_id: str,
                            count: int) -> tuple[list[int], dict[str, int]]:
        grabs = await store.packet_grabs(self.pool, tenant_id, packet_id)
        used = {g["share_index"] for g in grabs}
        return [i for i in range(count) if i not in used], {g["member_id"]: 1 for g in grabs}

    async def _pay_grab(self, tenant_id: str, packet: asyncpg.Record, grab: asyncpg.Record,
                        now: datetime) -> Grab:
        if not grab["paid"]:
            paid = await self.points.move(
                tenant_id, "grab:" + digest(packet["packet_id"], str(grab["share_index"])),
                packet["escrow_member"], grab["member_id"], grab["points"],
                f"red packet {packet['packet_id']}")
            if paid.status_code != 201:
                raise Conflict("the share could not be paid yet; retry", code="in_progress")
            async with self.pool.acquire() as conn, conn.transaction():
                await store.mark_grab_paid(conn, tenant_id, packet["packet_id"],
                                           grab["member_id"])
                await emit(conn, service="rewards", tenant_id=tenant_id, events=[PacketGrabbed(
                    member_id=grab["member_id"], maker_member_id=packet["maker_member_id"],
                    packet_id=packet["packet_id"], points=grab["points"],
                    group_id=packet["group_id"], grabbed_at=now)])
        return Grab(packet_id=packet["packet_id"], member_id=grab["member_id"],
                    points=grab["points"])

    async def expire_packet(self, tenant_id: str, packet_id: str) -> None:
        """Pay out grabs still unpaid, then return what is left to the maker, once."""
        packet = await store.packet(self.pool, tenant_id, packet_id)
        if packet is None or packet["status"] != "open":
            return
        now = datetime.now(UTC)
        for grab in await store.packet_grabs(self.pool, tenant_id, packet_id):
            if not grab["paid"]:
                await self._pay_grab(tenant_id, packet, grab, now)
        grabbed = {g["share_index"] for g in await store.packet_grabs(self.pool, tenant_id,
                                                                      packet_id)}
        left = sum(p for i, p in enumerate(packet["shares"]) if i not in grabbed)
        if left > 0:
            answer = await self.points.move(tenant_id, "packetback:" + digest(packet_id),
                                            packet["escrow_member"], packet["maker_member_id"],
                                            left, f"red packet {packet_id} expired")
            if answer.status_code != 201:
                raise Conflict("the remainder could not be returned yet", code="in_progress")
        await store.close_packet(self.pool, tenant_id, packet_id, left)
        await self.shares.forget(tenant_id, "packet", packet_id)
