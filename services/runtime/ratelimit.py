"""Rate limits per API key and per member token, per route group, kept in Redis."""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.exceptions import RedisError

from services.runtime.auth import EXCLUDE_OPT, Principal
from services.runtime.errors import RateLimited
from services.runtime.scripts import register_lua
from services.runtime.settings import Settings

log = logging.getLogger("fuli.ratelimit")

RATE_GROUP_OPT = "rate_group"


def rate_group(name: str) -> dict[str, str]:
    """A handler's ``opt`` putting its route in the rate-limit group ``name``
    (``FULI_RATE_LIMITS``: ``key.<name>=...``, ``member.<name>=...``)."""
    return {RATE_GROUP_OPT: name}


WRITE = rate_group("write")  # routes that change something


class RateLimiter:
    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._settings = settings
        self._script = register_lua(client, "services.runtime", "rate_limit.lua")

    async def retry_after_s(self, principal: Principal, group: str) -> float:
        """0 when the call may go ahead, else seconds to wait. Fails open if Redis is down."""
        kind, identity = principal.rate_identity
        rule = self._settings.rate_limit(kind, group)
        key = f"fuli:{{{principal.tenant_id}}}:rl:{identity}:{group}"
        try:
            wait_ms = await self._script(keys=[key], args=[rule.limit, rule.period_s * 1000])
        except RedisError as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", exc)
            return 0.0
        return int(wait_ms) / 1000.0


class RateLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_opt_key = EXCLUDE_OPT

    def __init__(self, exclude: tuple[str, ...] = ()) -> None:
        self.exclude_path_pattern = exclude or None

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        principal: Any = scope.get("user")
        if isinstance(principal, Principal):
            group = scope["route_handler"].opt.get(RATE_GROUP_OPT, "default")
            limiter: RateLimiter = scope["app"].state.resources.rate_limiter
            wait_s = await limiter.retry_after_s(principal, group)
            if wait_s > 0:
                raise RateLimited(wait_s)
        await next_app(scope, receive, send)
