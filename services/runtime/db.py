"""PostgreSQL: the connection pool, typed aliases for connections, rows as Structs, and SQL
refusals turned into FuliErrors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import msgspec

from services.runtime.errors import refusal_from_database

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # A connection: opened alone or taken from the pool.
    Conn: TypeAlias = (asyncpg.Connection[asyncpg.Record]
                       | PoolConnectionProxy[asyncpg.Record])
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    # What runs one statement: a connection (inside its transaction) or the pool.
    Db: TypeAlias = Conn | Pool
else:
    Conn = Pool = Db = Any

S = TypeVar("S", bound=msgspec.Struct)

_json_encoder = msgspec.json.Encoder()


def _encode_json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


async def init_connection(conn: Conn) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, schema="pg_catalog", encoder=_encode_json,
                                  decoder=msgspec.json.decode, format="text")


def as_struct(kind: type[S], record: asyncpg.Record) -> S:
    """A row as a Struct whose field names are the row's column names."""
    return msgspec.convert(dict(record.items()), kind)


def as_struct_or_none(kind: type[S], record: asyncpg.Record | None) -> S | None:
    return None if record is None else as_struct(kind, record)


def as_structs(kind: type[S], records: Iterable[asyncpg.Record]) -> list[S]:
    return [msgspec.convert(dict(record.items()), kind) for record in records]


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
                      application_name: str = "fuli") -> Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection,
        server_settings={"application_name": application_name, "timezone": "UTC"},
    )
    assert pool is not None
    return pool
