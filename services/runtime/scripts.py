"""Redis scripts: Lua files kept beside the code that runs them (``<package>/lua/<name>``),
read once and registered on the client, which runs them by SHA and reloads them after a flush
or a restart of Redis."""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript


def load_lua(package: str, name: str) -> str:
    return resources.files(package).joinpath("lua", name).read_text(encoding="utf-8")


def register_lua(client: aioredis.Redis, package: str, name: str) -> AsyncScript:
    return client.register_script(load_lua(package, name))
