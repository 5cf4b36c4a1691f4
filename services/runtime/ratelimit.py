"""Rate limits per API key and per member token, per route group, kept in Redis.

Each process takes requests from Redis in leases instead of asking once per request: a lease
is up to 1/100 of the limit (one request for limits under 200 per period) and is good for
1/100 of the period; what a lease leaves unused when it lapses is dropped. So the limit is
never exceeded by more than one lease per process in any period (a request counted when
leased is made up to 1/100 of a period later), and a caller with requests spread over N
processes may be refused early by at most N leases' worth. A caller's requests in one process
wait for one Redis round trip together when its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from redis.exceptions import RedisError

from services.runtime.auth import EXCLUDE_OPT, Principal
from services.runtime.errors import RateLimited
from services.runtime.scripts import register_lua
from services.runtime.settings import RateLimit, Settings

log = logging.getLogger("fuli.ratelimit")

RATE_GROUP_OPT = "rate_group"
LEASE_SHARE = 100  # a lease: at most 1/LEASE_SHARE of the limit, for 1/LEASE_SHARE of the period
MAX_LEASES = 100_000  # callers with a lease kept per process


def rate_group(name: str) -> dict[str, str]:
    """A handler's ``opt`` putting its route in the rate-limit group ``name``
    (``FULI_RATE_LIMITS``: ``key.<name>=...``, ``member.<name>=...``)."""
    return {RATE_GROUP_OPT: name}


WRITE = rate_group("write")  # routes that change something


class _Lease:
    __slots__ = ("left", "until")

    def __init__(self, left: int, until: float) -> None:
        self.left = left
        self.until = until


class RateLimiter:
    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._settings = settings
        self._script = register_lua(client, "services.runtime", "rate_limit.lua")
        self._leases: dict[str, _Lease] = {}
        self._asking: dict[str, asyncio.Event] = {}

    async def retry_after_s(self, principal: Principal, group: str) -> float:
        """0 when the call may go ahead, else seconds to wait. Fails open if Redis is down."""
        kind, identity = principal.rate_identity
        key = f"fuli:{{{principal.tenant_id}}}:rl:{identity}:{group}"
        while True:
            lease = self._leases.get(key)
            if lease is not None and lease.left > 0 and time.monotonic() < lease.until:
                lease.left -= 1
                return 0.0
            asking = self._asking.get(key)
            if asking is None:
                break
            await asking.wait()  # another request of this caller is asking Redis for a lease
        asking = self._asking[key] = asyncio.Event()
        try:
            return await self._lease(key, self._settings.rate_limit(kind, group))
        finally:
            del self._asking[key]
            asking.set()

    async def _lease(self, key: str, rule: RateLimit) -> float:
        size = max(1, rule.limit // LEASE_SHARE)
        try:
            granted, wait_ms = await self._script(
                keys=[key], args=[rule.limit, rule.period_s * 1000, size])
        except RedisError as exc:
            log.warning("rate limiter unavailable, letting the request through: %s", exc)
            return 0.0
        if not granted:
            return int(wait_ms) / 1000.0
        if granted > 1:
            if len(self._leases) >= MAX_LEASES:
                self._forget_lapsed()
            self._leases[key] = _Lease(int(granted) - 1,
                                       time.monotonic() + rule.period_s / LEASE_SHARE)
        return 0.0

    def _forget_lapsed(self) -> None:
        now = time.monotonic()
        for key in [k for k, lease in self._leases.items() if now >= lease.until]:
            del self._leases[key]
        if len(self._leases) >= MAX_LEASES:
            self._leases.clear()  # unused requests are dropped: a caller is refused early


class RateLimitMiddleware(ASGIMiddleware):
    """Limits authenticated requests only: what authentication skips (the docs, public
    routes) carries no principal and passes, so no path needs excluding here."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = EXCLUDE_OPT

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
