"""The webhooks service over the session's servers, as a deployment for tests sets it up:
private targets allowed (receivers listen on 127.0.0.1) and the retry schedule shortened, or,
for the refusals, the production defaults. Host names resolve through ``names`` first, so a
test can make a name resolve to any address without a DNS server."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from services.webhooks.app import WEBHOOKS, WebhooksComponents, open_components
from services.webhooks.safety import system_resolver
from tests.support.webhooks import Receiver

# Each step of the retry schedule (5 s, 5 min, 30 min, ...) times this: 0.1 ms, 6 ms, 36 ms,
# ... about 2 s from the first attempt to `failed`.
RETRY_SCALE = 0.00002
# host name -> the addresses it resolves to, for the tests' resolver.
names: dict[str, list[str]] = {}


async def resolver(host: str, port: int) -> list[str]:
    if host in names:
        return list(names[host])
    return await system_resolver(host, port)


@dataclasses.dataclass
class Hooks:
    """One deployment of the services: its HTTP client and the webhooks components."""

    client: httpx.AsyncClient
    components: WebhooksComponents
    settings: Settings

    async def pump_until(self, done: Callable[[], bool], timeout_s: float = 30) -> None:
        """Runs the sender (as the worker's periodic job does) until ``done()``."""
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for deliveries"
            await self.components.sender.pump()
            await asyncio.sleep(0.02)

    async def settle(self) -> None:
        await self.components.sender.drain()


async def _open(settings: Settings, resources: Resources) -> AsyncIterator[Hooks]:
    own = dataclasses.replace(resources, settings=settings)
    spec = dataclasses.replace(WEBHOOKS, components=functools.partial(open_components,
                                                                      resolver=resolver))
    stack = Stack(settings, [spec if s.name == "webhooks" else s for s in SERVICES])
    await stack.open(own)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                     base_url="http://fuli") as client:
            yield Hooks(client, stack.host.components("webhooks", WebhooksComponents),
                        settings)
    finally:
        await stack.close()


@pytest.fixture(scope="session")
async def hooks(settings: Settings, resources: Resources) -> AsyncIterator[Hooks]:
    """Private targets allowed, the retry schedule scaled by RETRY_SCALE."""
    test_settings = msgspec.structs.replace(
        settings, webhooks_allow_private=True, webhooks_retry_scale=RETRY_SCALE)
    async for opened in _open(test_settings, resources):
        yield opened


@pytest.fixture(scope="session")
async def strict_hooks(settings: Settings, resources: Resources) -> AsyncIterator[Hooks]:
    """The production defaults: https only, public addresses only."""
    async for opened in _open(settings, resources):
        yield opened


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Starts receivers (``receiver(behaviour)``), stopped after the test."""
    started: list[Receiver] = []

    def start(*args: Any, **kwargs: Any) -> Receiver:
        started.append(Receiver(*args, **kwargs).start())
        return started[-1]

    yield start
    for r in started:
        r.stop()
