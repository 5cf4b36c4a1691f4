"""Real servers for the whole session: the embedded PostgreSQL and Valkey by default, or the ones
named by FULI_DATABASE_URL / FULI_REDIS_URL (a throwaway database is created on that server).
Tests are isolated by tenant: each test that needs one gets a fresh tenant and its keys."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import hypothesis
import pytest

from services.composition.registry import MIGRATIONS, SERVICES
from services.runtime.embedded import EmbeddedServers
from services.runtime.migrations import migrate
from services.runtime.resources import Resources
from services.runtime.settings import Settings, load_settings
from services.runtime.stack import Stack
from tests.support.api import Tenant, make_tenant
from tests.support.segments import Seeded, seed

# Property tests judge results, not speed: a per-example deadline fails them whenever the shared
# machine stalls the process for a moment (performance is measured by `make bench`).
hypothesis.settings.register_profile("fuli", deadline=None)
hypothesis.settings.load_profile("fuli")

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
    await migrate(conn, MIGRATIONS)
    await conn.close()
    opened = await Resources.open(settings)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
async def stack(settings: Settings, resources: Resources) -> AsyncIterator[Stack]:
    app = Stack(settings, SERVICES)
    await app.open(resources)
    yield app
    await app.close()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=stack)
    async with httpx.AsyncClient(transport=transport, base_url="http://fuli") as http:
        yield http


@pytest.fixture
async def tenant(resources: Resources) -> Tenant:
    return await make_tenant(resources.pool)


@pytest.fixture
async def seeded(client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
                 settings: Settings) -> Seeded:
    """The tenant's population of tests/support/segments.py (tiers, stages, tags)."""
    return await seed(client, tenant, resources, settings)


@pytest.fixture
async def empty_database(servers: SessionServers) -> AsyncIterator[str]:
    """A database of its own on the session's server, without any migration applied."""
    name = f"fuli_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(servers.admin_database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(servers.admin_database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def configured_env(servers: SessionServers) -> dict[str, str]:
    """Environment for a child `fuli` process that uses the session's servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATABASE_URL=servers.database_url, FULI_REDIS_URL=servers.redis_url,
               FULI_LOG_LEVEL="WARNING")
    if servers.broker_url:
        env["FULI_BROKER_URL"] = servers.broker_url
    return env
