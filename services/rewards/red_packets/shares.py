"""Red-packet shares handed out atomically in Redis (one script call per open or grab).

Redis holds which share indexes are still free and how many each member took. PostgreSQL holds
every share handed out (unique per index and per member's n-th share), so after a flush the
state is rebuilt from PostgreSQL, and a share Redis hands out twice is refused by the unique
index instead of being paid twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

import redis.asyncio as aioredis

from services.runtime.scripts import register_lua

NEEDS_REBUILD = -3
MEMBER_LIMIT = -2
NONE_LEFT = -1
REBUILD_WAITS = 500

Kind = Literal["pool", "packet"]
# Rebuilds a missing state from PostgreSQL: (free share indexes, member -> shares taken).
Rebuild = Callable[[], Awaitable[tuple[Iterable[int], dict[str, int]]]]


def keys(tenant_id: str, kind: Kind, owner_id: str) -> list[str]:
    """The free list, the members hash and the built marker of one pool or packet."""
    base = f"fuli:{{{tenant_id}}}:rp:{kind}:{owner_id}"
    return [f"{base}:free", f"{base}:members", f"{base}:built"]


class ShareDispenser:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._take = register_lua(client, "services.rewards.red_packets", "take_share.lua")
        self._return = register_lua(client, "services.rewards.red_packets", "return_share.lua")

    async def take(self, tenant_id: str, kind: Kind, owner_id: str, member_id: str,
                   per_member: int, rebuild: Rebuild) -> tuple[int, int]:
        """(share index, member's count) or a negative code. A missing state is rebuilt from
        PostgreSQL by one caller at a time; the others wait for it."""
        names = keys(tenant_id, kind, owner_id)
        lock = names[2] + ":rebuilding"
        for _ in range(REBUILD_WAITS):
            index, taken = await self._take(keys=names, args=[member_id, per_member])
            if int(index) != NEEDS_REBUILD:
                return int(index), int(taken)
            if await self._client.set(lock, b"1", nx=True, px=5000):
                try:
                    free, counts = await rebuild()
                    await self.build(names, free, counts)
                finally:
                    await self._client.delete(lock)
            else:
                await asyncio.sleep(0.01)
        return NEEDS_REBUILD, 0

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
        await self._return(keys=keys(tenant_id, kind, owner_id), args=[member_id, index])

    async def forget(self, tenant_id: str, kind: Kind, owner_id: str) -> None:
        await self._client.delete(*keys(tenant_id, kind, owner_id))
