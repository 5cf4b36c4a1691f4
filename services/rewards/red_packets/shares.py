"""Red-packet shares handed out atomically in Redis (one script call per open or grab).

Redis holds which share indexes are still free and how many each member took. PostgreSQL holds
every share handed out (unique per index and per member's n-th share), so after a flush or a
restart of Redis the state is rebuilt from PostgreSQL, and a share Redis hands out twice is
refused by the unique index instead of being paid twice. Redis can also fall behind the other
way: a share taken from it by an open that never got recorded (its connection failed, its
process died) or never put back (Redis was down then) is missing from the free list. Callers
check PostgreSQL when Redis refuses (``Taken.recheck``: at most once a second per pool or packet)
and have the state rebuilt when PostgreSQL has more to hand out.

While Redis is down every call raises redis-py's ConnectionError, which the service answers with
503; the scripts are run by SHA and loaded again by redis-py when Redis answers NOSCRIPT (after a
restart), so nothing needs restarting when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Literal, NamedTuple

import redis.asyncio as aioredis

from services.runtime.scripts import register_lua

NEEDS_REBUILD = -3
MEMBER_LIMIT = -2
NONE_LEFT = -1
REBUILD_WAITS = 500
RECHECK_EVERY_MS = 1000
CLAIM_MS = 30_000  # longer than an open takes (two points calls of at most 5 s each)

Kind = Literal["pool", "packet"]
# Rebuilds a missing state from PostgreSQL: (free share indexes, member -> shares taken).
Rebuild = Callable[[], Awaitable[tuple[Iterable[int], dict[str, int]]]]


def keys(tenant_id: str, kind: Kind, owner_id: str) -> list[str]:
    """The free list, the members hash and the built marker of one pool or packet."""
    base = f"fuli:{{{tenant_id}}}:rp:{kind}:{owner_id}"
    return [f"{base}:free", f"{base}:members", f"{base}:built"]


class Taken(NamedTuple):
    """What ``take`` answered."""

    share: int  # the share's index, or NONE_LEFT, MEMBER_LIMIT (NEEDS_REBUILD: no state in time)
    nth: int  # shares the member has taken, this one included
    recheck: bool  # a refusal to check against PostgreSQL (at most once per RECHECK_EVERY_MS)


class ShareDispenser:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._take = register_lua(client, "services.rewards.red_packets", "take_share.lua")
        self._return = register_lua(client, "services.rewards.red_packets", "return_share.lua")

    async def take(self, tenant_id: str, kind: Kind, owner_id: str, member_id: str,
                   per_member: int, rebuild: Rebuild) -> Taken:
        """A share for the member, or a refusal. A missing state is rebuilt from PostgreSQL by
        one caller at a time; the others wait for it."""
        names = keys(tenant_id, kind, owner_id)
        lock = names[2] + ":rebuilding"
        script_keys = [*names, names[2] + ":rechecked"]
        for _ in range(REBUILD_WAITS):
            index, nth, recheck = await self._take(
                keys=script_keys, args=[member_id, per_member, RECHECK_EVERY_MS])
            if int(index) != NEEDS_REBUILD:
                return Taken(int(index), int(nth), bool(recheck))
            if await self._client.set(lock, b"1", nx=True, px=5000):
                try:
                    free, counts = await rebuild()
                    await self.build(names, free, counts)
                finally:
                    await self._client.delete(lock)
            else:
                await asyncio.sleep(0.01)
        return Taken(NEEDS_REBUILD, 0, False)

    async def build(self, names: list[str], free: Iterable[int], counts: dict[str, int]) -> None:
        free_list = list(free)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(*names)
            if free_list:
                pipe.rpush(names[0], *free_list)
            if counts:
                pipe.hset(names[1], items=[part for pair in counts.items() for part in pair])
            pipe.set(names[2], b"1")
            await pipe.execute()

    async def give_back(self, tenant_id: str, kind: Kind, owner_id: str, member_id: str,
                        index: int) -> None:
        """Puts back the share of an open that failed, off the member's count."""
        await self._return(keys=keys(tenant_id, kind, owner_id), args=[member_id, index])

    async def uncount(self, tenant_id: str, kind: Kind, owner_id: str, member_id: str) -> None:
        """Takes a share off the member's count without putting it back: Redis handed the
        member a share that PostgreSQL had recorded for someone else already."""
        await self._return(keys=keys(tenant_id, kind, owner_id), args=[member_id, -1])

    async def forget(self, tenant_id: str, kind: Kind, owner_id: str) -> None:
        """Drops the state; the next ``take`` rebuilds it from PostgreSQL."""
        await self._client.delete(*keys(tenant_id, kind, owner_id))

    @contextlib.asynccontextmanager
    async def claim_open(self, tenant_id: str, open_id: str) -> AsyncIterator[bool]:
        """Whether this request holds the pool open ``open_id`` alone while inside (it does
        unless a request with the same id is under way); a claim left by a dead process
        lapses after CLAIM_MS."""
        key = f"fuli:{{{tenant_id}}}:rp:open:{open_id}:claim"
        claimed = bool(await self._client.set(key, b"1", nx=True, px=CLAIM_MS))
        try:
            yield claimed
        finally:
            if claimed:
                await self._client.delete(key)
