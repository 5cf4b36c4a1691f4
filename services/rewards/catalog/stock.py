"""Perk stock mirrored in Redis (hot, derived); PostgreSQL holds the record.

Redis only answers "sold out" early; every reservation still goes through PostgreSQL's
conditional update, so Redis can never cause an oversell. After a flush a missing key is rebuilt
from PostgreSQL on first read, and the periodic sync republishes every perk.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.rewards.catalog import store
from services.rewards.wallet.wallet import StockLevel
from services.runtime.db import Db
from services.runtime.scripts import register_lua

log = logging.getLogger("fuli.rewards.stock")


def stock_key(tenant_id: str, sku: str) -> str:
    return f"fuli:{{{tenant_id}}}:stock:{sku}"


class StockMirror:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._publish = register_lua(client, "services.rewards.catalog", "stock_publish.lua")

    async def publish(self, tenant_id: str, sku: str, level: StockLevel) -> None:
        """Mirror the stock as of its version (unlimited stock is not mirrored)."""
        if level.stock_left is None:
            return
        try:
            await self._publish(keys=[stock_key(tenant_id, sku)],
                                args=[level.stock_left, level.stock_version])
        except RedisError as exc:
            log.warning("stock mirror not updated: %s", exc)

    async def left(self, tenant_id: str, sku: str, db: Db) -> int | None:
        """Stock left as mirrored; rebuilt from PostgreSQL when missing. None: unlimited or
        unknown (Redis down), which lets PostgreSQL decide."""
        try:
            cached = await self._client.hget(stock_key(tenant_id, sku), "left")
        except RedisError:
            return None
        if cached is not None:
            return int(cached)
        perk = await store.perk(db, tenant_id, sku)
        if perk is None or perk.stock_left is None:
            return None
        await self.publish(tenant_id, sku, perk)
        return perk.stock_left

    async def sync_all(self, db: Db) -> int:
        """Republish every perk's stock; returns how many were published."""
        rows = await store.stock_versions(db)
        for row in rows:
            await self.publish(row.tenant_id, row.sku, row)
        return len(rows)
