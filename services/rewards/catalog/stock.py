"""Perk stock mirrored in Redis (hot, derived); PostgreSQL holds the record.

Redis only answers "sold out" early; every reservation still goes through PostgreSQL's
conditional update, so Redis can never cause an oversell. After a flush a missing key is rebuilt
from PostgreSQL on first read, and the periodic sync republishes every perk.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.rewards import store
from services.runtime.scripts import load_lua

log = logging.getLogger("fuli.rewards.stock")


def stock_key(tenant_id: str, sku: str) -> str:
    return f"fuli:{{{tenant_id}}}:stock:{sku}"


class StockMirror:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._publish = client.register_script(load_lua("services.rewards", "stock_publish.lua"))

    async def publish(self, tenant_id: str, sku: str, row: Any) -> None:
        if row is None or row["stock_left"] is None:
            return
        try:
            await self._publish(keys=[stock_key(tenant_id, sku)],
                                args=[row["stock_left"], row["stock_version"]])
        except RedisError as exc:
            log.warning("stock mirror not updated: %s", exc)

    async def left(self, tenant_id: str, sku: str,
                   pool: asyncpg.Pool | asyncpg.Connection) -> int | None:
        """Stock left as mirrored; rebuilt from PostgreSQL when missing. None: unlimited or
        unknown (Redis down), which lets PostgreSQL decide."""
        try:
            cached = await self._client.hget(stock_key(tenant_id, sku), "left")
        except RedisError:
            return None
        if cached is not None:
            return int(cached)
        perk = await store.perk(pool, tenant_id, sku)
        if perk is None or perk["stock_left"] is None:
            return None
        await self.publish(tenant_id, sku, perk)
        return int(perk["stock_left"])

    async def sync_all(self, pool: asyncpg.Pool) -> int:
        rows = await store.stock_versions(pool)
        for row in rows:
            await self.publish(row["tenant_id"], row["sku"], row)
        return len(rows)
