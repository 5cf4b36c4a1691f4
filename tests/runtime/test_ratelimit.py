from __future__ import annotations

import asyncio

import httpx
import msgspec

from services.runtime.auth import Principal
from services.runtime.ratelimit import RateLimiter
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.runtime.probe_app import open_probe_app
from tests.support.api import Tenant, error_code, member_token, uid


async def test_limits_per_caller_and_group_answer_429_with_retry_after(
        client: httpx.AsyncClient, settings: Settings, resources: Resources,
        tenant: Tenant) -> None:
    limited_settings = msgspec.structs.replace(
        settings, rate_limits=settings.rate_limits
        + ",member.probe=3/60,key.probe=5/60,member.default=3/60")
    limited_resources = Resources(
        settings=limited_settings, pool=resources.pool, redis=resources.redis,
        authenticator=resources.authenticator,
        rate_limiter=type(resources.rate_limiter)(resources.redis, limited_settings))
    app = await open_probe_app(limited_settings, limited_resources)
    alice = await member_token(client, tenant, "alice")
    bob = await member_token(client, tenant, "bob")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://fuli") as http:
        alice_statuses = [(await http.get("/probe/v1/limited", headers=tenant.headers(alice)))
                          for _ in range(4)]
        assert [r.status_code for r in alice_statuses] == [200, 200, 200, 429]
        refused = alice_statuses[-1]
        assert error_code(refused) == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # Another member has its own allowance; so does an API key, with its own limit.
        assert (await http.get("/probe/v1/limited", headers=tenant.headers(bob))).status_code \
            == 200
        key_statuses = [(await http.get("/probe/v1/limited",
                                        headers=tenant.headers(tenant.ingest))).status_code
                        for _ in range(6)]
        assert key_statuses == [200] * 5 + [429]
        # Other route groups are not affected.
        other = await http.get("/probe/v1/members/alice", headers=tenant.headers(alice))
        assert other.status_code == 200
        # The docs are never limited: five reads with a member's token, whose other routes
        # allow three a minute.
        docs = [(await http.get("/probe/docs/openapi.json", headers=tenant.headers(alice)))
                .status_code for _ in range(5)]
        assert docs == [200] * 5


async def test_leases_never_let_more_than_the_limit_through(settings: Settings,
                                                            resources: Resources,
                                                            tenant: Tenant) -> None:
    """Two processes (two limiters) sharing one caller's limit of 1000 per day: each takes
    leases of 10 from Redis. Together they let through at most the limit, and refuse at most
    one unused lease each early. The limit refills one request every 86 s, so nothing comes
    back during the test, however slowly a busy machine runs it (with 1000 per hour, one
    request came back every 3.6 s, and a slow run let 1001 through)."""
    limited = msgspec.structs.replace(settings, rate_limits=settings.rate_limits
                                      + ",key.lease=1000/86400")
    limiters = [RateLimiter(resources.redis, limited) for _ in range(2)]
    caller = Principal(tenant_id=tenant.name, role="ingest", key_id=uid("k"))

    async def ask(limiter: RateLimiter) -> bool:
        return await limiter.retry_after_s(caller, "lease") == 0

    allowed = sum(await asyncio.gather(*[ask(limiters[i % 2]) for i in range(1500)]))
    assert 1000 - 2 * 9 <= allowed <= 1000
    # Redis holds the leases' count: a third process gets nothing either.
    assert await RateLimiter(resources.redis, limited).retry_after_s(caller, "lease") > 0


async def test_a_lease_lapses_after_a_hundredth_of_the_period(settings: Settings,
                                                              resources: Resources,
                                                              tenant: Tenant) -> None:
    """10000 per 100 s: leases of 100 that lapse after 1 s. A process holding an unused lease
    may use it while Redis refuses everyone else, but not once the lease has lapsed."""
    limited = msgspec.structs.replace(settings, rate_limits=settings.rate_limits
                                      + ",key.lapse=10000/100")
    holder, other = (RateLimiter(resources.redis, limited) for _ in range(2))
    caller = Principal(tenant_id=tenant.name, role="ingest", key_id=uid("k"))

    async def drain(limiter: RateLimiter) -> None:
        for _ in range(20_000):
            if await limiter.retry_after_s(caller, "lapse") > 0:
                return
        raise AssertionError("the limit never refused")

    async def allowed(limiter: RateLimiter, tries: int) -> int:
        return sum([await limiter.retry_after_s(caller, "lapse") == 0 for _ in range(tries)])

    assert await allowed(holder, 1) == 1  # takes a lease of 100, 99 left
    await drain(other)
    assert await allowed(holder, 50) == 50  # from its lease, while Redis refuses
    await asyncio.sleep(1.1)
    await drain(other)
    # The 49 left lapsed: the holder gets only what Redis refills meanwhile (one per 10 ms).
    assert await allowed(holder, 50) < 25
