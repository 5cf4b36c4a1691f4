"""Team-buy leaderboards in Redis sorted sets, mirrored from PostgreSQL.

Every score change commits in PostgreSQL first, with a version, and is then published here;
publishing keeps the newest version of each entry (board_publish.lua). A board whose `built`
marker is missing (a flush, a new Redis) is rebuilt from PostgreSQL before it is read; live
publishes and rebuilds may interleave because both keep only newer versions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.rewards.team_buy import store
from services.rewards.team_buy.rules import board_member, team_of
from services.runtime.db import Db
from services.runtime.scripts import register_lua

log = logging.getLogger("fuli.rewards.leaderboard")

Board = Literal["teams", "members", "built"]
PUBLISH_SLICE = 500  # entries per script call, so one call never blocks Redis for long


def board_key(tenant_id: str, campaign_id: str, kind: Board) -> str:
    return f"fuli:{{{tenant_id}}}:teambuy:{campaign_id}:{kind}"


class Leaderboards:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._publish = register_lua(client, "services.rewards.team_buy", "board_publish.lua")

    def _keys(self, tenant_id: str, campaign_id: str, kind: Board) -> list[str]:
        key = board_key(tenant_id, campaign_id, kind)
        return [key, key + ":index"]

    async def publish_teams(self, tenant_id: str, campaign_id: str,
                            rows: Iterable[store.TeamScore]) -> None:
        args: list[str | int] = []
        for row in rows:
            args += [row.team_id, row.version, board_member(row.team_id, row.reached_at),
                     -row.score]
        await self._send(self._keys(tenant_id, campaign_id, "teams"), args)

    async def publish_members(self, tenant_id: str, campaign_id: str,
                              rows: Iterable[store.MemberScore]) -> None:
        args: list[str | int] = []
        for row in rows:
            args += [row.member_id, row.version, row.member_id, -row.spend_cents]
        await self._send(self._keys(tenant_id, campaign_id, "members"), args)

    async def _send(self, keys: list[str], args: list[str | int]) -> None:
        for start in range(0, len(args), 4 * PUBLISH_SLICE):
            await self._publish(keys=keys, args=args[start:start + 4 * PUBLISH_SLICE])

    async def rebuild(self, db: Db, tenant_id: str, campaign_id: str) -> None:
        await self.publish_teams(tenant_id, campaign_id,
                                 await store.board_teams(db, tenant_id, campaign_id))
        await self.publish_members(tenant_id, campaign_id,
                                   await store.board_members(db, tenant_id, campaign_id))
        await self._client.set(board_key(tenant_id, campaign_id, "built"), 1)

    async def ensure_built(self, db: Db, tenant_id: str, campaign_id: str) -> None:
        if not await self._client.exists(board_key(tenant_id, campaign_id, "built")):
            await self.rebuild(db, tenant_id, campaign_id)

    async def publish_quietly(self, tenant_id: str, campaign_id: str,
                              teams: list[store.TeamScore],
                              members: list[store.MemberScore]) -> None:
        """After a commit: a failure leaves the board behind until the periodic sync."""
        try:
            await self.publish_teams(tenant_id, campaign_id, teams)
            await self.publish_members(tenant_id, campaign_id, members)
        except RedisError as exc:
            log.warning("leaderboard not updated: %s", exc)

    async def team_page(self, tenant_id: str, campaign_id: str, offset: int,
                        limit: int) -> tuple[list[tuple[int, str, int]], int]:
        """(rank, team id, score) from ``offset``, and the board's size."""
        read = await self.built_team_page(tenant_id, campaign_id, offset, limit)
        return read if read is not None else ([], 0)

    async def built_team_page(self, tenant_id: str, campaign_id: str, offset: int,
                              limit: int) -> tuple[list[tuple[int, str, int]], int] | None:
        """``team_page``, or None when the board is not built (``ensure_built``), in one
        round trip."""
        key = board_key(tenant_id, campaign_id, "teams")
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.exists(board_key(tenant_id, campaign_id, "built"))
            pipe.zrange(key, offset, offset + limit - 1, withscores=True)
            pipe.zcard(key)
            built, entries, size = await pipe.execute()
        if not built:
            return None
        return [(offset + i + 1, team_of(member), score)
                for i, (member, score) in enumerate(_scored(entries))], int(size)

    async def team_rank(self, tenant_id: str, campaign_id: str, team_id: str) -> int | None:
        """0-based position of a team, None if it is not on the board."""
        key = board_key(tenant_id, campaign_id, "teams")
        current = await self._client.hget(key + ":index", team_id)
        if current is None:
            return None
        rank = await self._client.zrank(key, _text(current).split(" ", 1)[1])
        return rank if isinstance(rank, int) else None

    async def member_page(self, tenant_id: str, campaign_id: str,
                          limit: int) -> list[tuple[int, str, int]]:
        """(rank, member id, spend) of the top ``limit`` members."""
        key = board_key(tenant_id, campaign_id, "members")
        entries = await self._client.zrange(key, 0, limit - 1, withscores=True)
        return [(i + 1, member, score) for i, (member, score) in enumerate(_scored(entries))]


def _scored(entries: Any) -> list[tuple[str, int]]:
    """(member, cents) of a ZRANGE ... WITHSCORES answer, whose scores are -cents."""
    return [(_text(member), int(-score)) for member, score in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
