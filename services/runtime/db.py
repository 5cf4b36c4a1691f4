"""PostgreSQL connection pool."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec

from services.runtime.errors import refusal_from_database

_json_encoder = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, schema="pg_catalog", encoder=_encode_json,
                                  decoder=msgspec.json.decode, format="text")


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Turn refusals raised by SQL functions (SQLSTATE P0001) into FuliErrors."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        refusal = refusal_from_database(exc)
        if refusal is None:
            raise
        raise refusal from None


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20,
                      application_name: str = "fuli") -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection,
        server_settings={"application_name": application_name, "timezone": "UTC"},
    )
    assert pool is not None
    return pool
