"""What a running service holds: settings, the database pool, Redis, auth and rate limiting."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from services.runtime.auth import Authenticator
from services.runtime.db import create_pool
from services.runtime.ratelimit import RateLimiter
from services.runtime.settings import Settings


@dataclass
class Resources:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    authenticator: Authenticator
    rate_limiter: RateLimiter

    @classmethod
    async def open(cls, settings: Settings, *, application_name: str = "fuli") -> Resources:
        if settings.database_url is None or settings.redis_url is None:
            raise RuntimeError("Resources need FULI_DATABASE_URL and FULI_REDIS_URL resolved")
        pool = await create_pool(settings.database_url, min_size=settings.db_pool_min,
                                 max_size=settings.db_pool_max,
                                 application_name=application_name)
        # Bursts wait for a free connection instead of failing past the pool's size; an
        # unreachable Redis fails a request in seconds (a 503) instead of hanging it.
        client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_pool_max, timeout=10,
            socket_connect_timeout=2, socket_timeout=5))
        return cls(
            settings=settings,
            pool=pool,
            redis=client,
            authenticator=Authenticator(pool, cache_ttl_s=settings.auth_cache_ttl_s),
            rate_limiter=RateLimiter(client, settings),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()
