from __future__ import annotations

import httpx
import msgspec

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.runtime.probe_app import open_probe_app
from tests.support.api import Tenant, error_code, member_token


async def test_limits_per_caller_and_group_answer_429_with_retry_after(
        client: httpx.AsyncClient, settings: Settings, resources: Resources,
        tenant: Tenant) -> None:
    limited_settings = msgspec.structs.replace(
        settings, rate_limits=settings.rate_limits + ",member.probe=3/60,key.probe=5/60")
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
