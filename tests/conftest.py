"""Real servers for the whole session: the embedded PostgreSQL and Valkey by default, or the ones
named by FULI_DATABASE_URL / FULI_REDIS_URL (a throwaway database is created on that server).
Tests are isolated by tenant: each test that needs one gets a fresh tenant and its keys."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest

from services.runtime import tenants
from services.runtime.embedded import EmbeddedServers
from services.runtime.migrations import migrate
from services.runtime.resources import Resources
from services.runtime.settings import Settings, load_settings
from services.runtime.stack import Stack

TEST_RATE_LIMITS = "key.default=10000000/60,key.events=10000000/60,member.default=1000000/60"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass(frozen=True)
class SessionServers:
    database_url: str
    redis_url: str
    admin_database_url: str  # a database on the same server to CREATE/DROP test databases from
    embedded: bool
    broker_url: str | None = None


@pytest.fixture(scope="session")
def servers() -> Iterator[SessionServers]:
    configured = load_settings()
    if configured.database_url and configured.redis_url:
        import asyncio

        name = f"fuli_test_{uuid.uuid4().hex[:10]}"

        async def create() -> None:
            conn = await asyncpg.connect(configured.database_url)
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.close()

        async def drop() -> None:
            conn = await asyncpg.connect(configured.database_url)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()

        asyncio.run(create())
        try:
            yield SessionServers(_with_database(configured.database_url, name),
                                 configured.redis_url, configured.database_url, embedded=False,
                                 broker_url=configured.broker_url)
        finally:
            asyncio.run(drop())
        return
    with tempfile.TemporaryDirectory(prefix="fuli-test-") as data_dir:
        embedded = EmbeddedServers(data_dir, durable=False)
        urls = embedded.start()
        try:
            yield SessionServers(urls.database_url, urls.redis_url, urls.database_url,
                              embedded=True)
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
def settings(servers: SessionServers) -> Settings:
    return load_settings(
        {},
        database_url=servers.database_url,
        redis_url=servers.redis_url,
        broker_url=servers.broker_url,
        rate_limits=TEST_RATE_LIMITS,
        db_pool_max=30,
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    conn = await asyncpg.connect(settings.database_url)
    await migrate(conn)
    await conn.close()
    opened = await Resources.open(settings)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
def stack(settings: Settings, resources: Resources) -> Stack:
    app = Stack(settings)
    app.attach(resources)
    return app


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stack)
    async with httpx.AsyncClient(transport=transport, base_url="http://fuli") as http:
        yield http


@dataclass(frozen=True)
class Tenant:
    name: str
    admin: str
    operator: str
    ingest: str

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


async def make_tenant(pool: asyncpg.Pool, time_zone: str = "Asia/Shanghai") -> Tenant:
    name = f"t-{secrets.token_hex(6)}"
    async with pool.acquire() as conn:
        admin = await tenants.create_tenant(conn, name, time_zone)
        operator = await tenants.create_key(conn, name, "operator")
        ingest = await tenants.create_key(conn, name, "ingest")
    return Tenant(name, admin.key, operator.key, ingest.key)


@pytest.fixture
async def tenant(resources: Resources) -> Tenant:
    return await make_tenant(resources.pool)


async def member_token(client: httpx.AsyncClient, tenant: Tenant, member_id: str,
                       ttl_s: int = 600) -> str:
    response = await client.post("/points/v1/member-tokens", headers=tenant.headers(tenant.ingest),
                                 json={"member_id": member_id, "ttl_s": ttl_s})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def error_code(response: httpx.Response) -> str:
    body = msgspec.json.decode(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


@pytest.fixture(scope="session")
def configured_env(servers: SessionServers) -> dict[str, str]:
    """Environment for a child `fuli` process that uses the session's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATABASE_URL=servers.database_url, FULI_REDIS_URL=servers.redis_url,
               FULI_LOG_LEVEL="WARNING")
    if servers.broker_url:
        env["FULI_BROKER_URL"] = servers.broker_url
    return env
