"""Team-buy leaderboards in Redis sorted sets, mirrored from PostgreSQL.

Every score change commits in PostgreSQL first, with a version, and is then published here;
publishing keeps the newest version of each entry (board_publish.lua). A board whose `built`
marker is missing (a flush, a new Redis) is rebuilt from PostgreSQL before it is read; live
publishes and rebuilds may interleave because both keep only newer versions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.rewards.team_buy import store as team_store
from services.rewards.team_buy.rules import board_member, team_of
from services.runtime.scripts import load_lua

log = logging.getLogger("fuli.rewards.leaderboard")


def board_key(tenant_id: str, campaign_id: str, kind: str) -> str:
    return f"fuli:{{{tenant_id}}}:teambuy:{campaign_id}:{kind}"


class Leaderboards:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._publish = client.register_script(
            load_lua("services.rewards.team_buy", "board_publish.lua"))

    def _keys(self, tenant_id: str, campaign_id: str, kind: str) -> list[str]:
        key = board_key(tenant_id, campaign_id, kind)
        return [key, key + ":index"]

    async def publish_teams(self, tenant_id: str, campaign_id: str,
                            rows: Iterable[asyncpg.Record]) -> None:
        args: list[object] = []
        for row in rows:
            args += [row["team_id"], row["version"], board_member(row["team_id"],
                                                                  row["reached_at"]),
                     -row["score"]]
        await self._send(self._keys(tenant_id, campaign_id, "teams"), args)

    async def publish_members(self, tenant_id: str, campaign_id: str,
                              rows: Iterable[asyncpg.Record]) -> None:
        args: list[object] = []
        for row in rows:
            args += [row["member_id"], row["version"], row["member_id"], -row["spend_cents"]]
        await self._send(self._keys(tenant_id, campaign_id, "members"), args)

    async def _send(self, keys: list[str], args: list[object]) -> None:
        # Large boards go in slices so one script call never blocks Redis for long.
        for start in range(0, len(args), 4 * 500):
            await self._publish(keys=keys, args=args[start:start + 4 * 500])

    async def rebuild(self, pool: asyncpg.Pool | asyncpg.Connection, tenant_id: str,
                      campaign_id: str) -> None:
        await self.publish_teams(tenant_id, campaign_id,
                                 await team_store.board_teams(pool, tenant_id, campaign_id))
        await self.publish_members(tenant_id, campaign_id,
                                   await team_store.board_members(pool, tenant_id, campaign_id))
        await self._client.set(board_key(tenant_id, campaign_id, "built"), 1)

    async def ensure_built(self, pool: asyncpg.Pool, tenant_id: str, campaign_id: str) -> None:
        if not await self._client.exists(board_key(tenant_id, campaign_id, "built")):
            await self.rebuild(pool, tenant_id, campaign_id)

    async def publish_quietly(self, tenant_id: str, campaign_id: str,
                              teams: list[asyncpg.Record],
                              members: list[asyncpg.Record]) -> None:
        """After a commit: a failure leaves the board behind until the periodic sync."""
        try:
            await self.publish_teams(tenant_id, campaign_id, teams)
            await self.publish_members(tenant_id, campaign_id, members)
        except RedisError as exc:
            log.warning("leaderboard not updated: %s", exc)

    async def team_page(self, tenant_id: str, campaign_id: str, offset: int,
                        limit: int) -> tuple[list[tuple[int, str, int]], int]:
        """(rank, team id, score) from ``offset``, and the board's size."""
        key = board_key(tenant_id, campaign_id, "teams")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zrange(key, offset, offset + limit - 1, withscores=True)
            pipe.zcard(key)
            entries, size = await pipe.execute()
        return [(offset + i + 1, team_of(_text(member)), int(-score))
                for i, (member, score) in enumerate(entries)], int(size)

    async def team_rank(self, tenant_id: str, campaign_id: str, team_id: str) -> int | None:
        """0-based position of a team, None if it is not on the board."""
        key = board_key(tenant_id, campaign_id, "teams")
        current = await self._client.hget(key + ":index", team_id)
        if current is None:
            return None
        rank = await self._client.zrank(key, _text(current).split(" ", 1)[1])
        return None if rank is None else int(rank)

    async def member_page(self, tenant_id: str, campaign_id: str,
                          limit: int) -> list[tuple[int, str, int]]:
        key = board_key(tenant_id, campaign_id, "members")
        entries = await self._client.zrange(key, 0, limit - 1, withscores=True)
        return [(i + 1, _text(member), int(-score)) for i, (member, score) in enumerate(entries)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
