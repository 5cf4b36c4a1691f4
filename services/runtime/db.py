"""PostgreSQL: the connection pool, typed aliases for connections, rows as Structs, and SQL
refusals turned into FuliErrors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import msgspec

from services.runtime.errors import is_connection_fault, refusal_from_database

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
T = TypeVar("T")

log = logging.getLogger("fuli.db")
RETRY_PAUSE_S = 0.05

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


def prefixed_columns(kind: type[msgspec.Struct], table: str, prefix: str, *,
                     omit: tuple[str, ...] = ()) -> str:
    """The columns of ``kind`` (but ``omit``, fields with defaults) from ``table`` (an alias),
    each named with ``prefix``: a row of another table read in the same statement, e.g.
    through a LEFT JOIN."""
    return ", ".join(f"{table}.{name} AS {prefix}{name}"
                     for name in kind.__struct_fields__ if name not in omit)


def pop_prefixed(kind: type[S], fields: dict[str, Any], prefix: str, *,
                 omit: tuple[str, ...] = ()) -> S | None:
    """The ``prefixed_columns`` of ``kind``, taken out of a row's ``fields``; None when the
    joined row was missing (every column NULL)."""
    values = {name: fields.pop(prefix + name)
              for name in kind.__struct_fields__ if name not in omit}
    if all(value is None for value in values.values()):
        return None
    return msgspec.convert(values, kind)


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


async def once_more_on_fault(work: Callable[[], Awaitable[T]], what: str) -> T:
    """``work()``, run a second time if the first failed on a connection fault (a terminated
    server process, a connection lost mid-statement, a deadlock; see ``is_connection_fault``).

    Only for work that is safe to repeat because every effect it has is keyed by the request's
    own id, such as a ``run_once`` transaction: if the first try committed before its connection
    went, the second replays its answer; if not, nothing of it is left and the second runs
    alone. The pool never hands out the broken connection again (asyncpg terminates a
    connection that is closed or fails its reset on release), so the second try runs on a
    fresh one. A second fault is raised: the caller answers 503 and the client retries later.
    """
    try:
        return await work()
    except Exception as exc:
        if not is_connection_fault(exc):
            raise
        log.warning("%s: connection fault (%s: %s); trying once more", what,
                    type(exc).__name__, exc)
    # The fault that hit this connection (a terminated server, a restart) has most likely hit
    # the pool's idle ones too; a moment lets their closing be noticed before the next acquire.
    await asyncio.sleep(RETRY_PAUSE_S)
    return await work()


async def keep_session(conn: Conn) -> None:
    """The pool's reset of a released connection: nothing to do.

    asyncpg's own reset sends one more statement on every release (advisory locks, cursors,
    LISTEN and settings back to their defaults): a round trip that doubled the statements of a
    one-statement read and cost a draw's saga a tenth of its CPU. fuli changes none of that
    session state on a pooled connection (settings are per function or per transaction, locks
    per transaction); asyncpg still rolls back a transaction left open before calling this.
    """


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20,
                      application_name: str = "fuli") -> Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init_connection, reset=keep_session,
        server_settings={"application_name": application_name, "timezone": "UTC"},
    )
    assert pool is not None
    return pool
