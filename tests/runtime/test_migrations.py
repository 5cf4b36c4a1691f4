from __future__ import annotations

import asyncpg
import pytest

from services.composition.registry import MIGRATIONS
from services.runtime.migrations import MigrationError, migrate, migrations_of


def test_every_service_has_numbered_migrations() -> None:
    for service, package in MIGRATIONS:
        found = migrations_of(service, package)
        assert [m.version for m in found] == list(range(1, len(found) + 1)), service


async def test_all_migrations_apply_to_an_empty_database_then_are_a_no_op(
        empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        applied = await migrate(conn, MIGRATIONS)
        expected = [(m.service, m.version) for s, p in MIGRATIONS for m in migrations_of(s, p)]
        assert [(m.service, m.version) for m in applied] == expected
        tracked = await conn.fetch(
            "SELECT service, version FROM fuli.schema_migrations ORDER BY applied_at, service")
        assert sorted((r["service"], r["version"]) for r in tracked) == sorted(expected)
        assert await migrate(conn, MIGRATIONS) == []
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
        assert {"fuli"} <= schemas
    finally:
        await conn.close()


async def test_an_edited_migration_is_refused(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn, MIGRATIONS)
        await conn.execute("UPDATE fuli.schema_migrations SET checksum = 'edited'"
                           " WHERE service = 'runtime' AND version = 1")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, MIGRATIONS)
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_file_once(empty_database: str) -> None:
    import asyncio

    conns = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*[migrate(c, MIGRATIONS) for c in conns])
        total = sum(len(r) for r in results)
        assert total == sum(len(migrations_of(s, p)) for s, p in MIGRATIONS)
    finally:
        for c in conns:
            await c.close()
