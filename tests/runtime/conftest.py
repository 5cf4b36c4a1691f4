from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.runtime.probe_app import PROBE_SCHEMA, open_probe_app


@pytest.fixture(scope="session")
async def probe_app(settings: Settings, resources: Resources):  # type: ignore[no-untyped-def]
    await resources.pool.execute(PROBE_SCHEMA)
    return await open_probe_app(settings, resources)


@pytest.fixture
async def probe(probe_app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=probe_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fuli") as http:
        yield http
