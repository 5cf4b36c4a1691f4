"""Numbered plain-SQL migrations per service, tracked in fuli.schema_migrations.

Each service keeps ``<its package>/sql/NNNN_name.sql``; the platform's own tables come first,
from ``services/runtime/sql``. Files are applied in order, each in
its own transaction; an applied file whose text changed is an error (migrations are never edited
once landed). An advisory lock makes concurrent starters wait for each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from services.runtime.db import Conn

# (service, package holding its sql/ folder): the platform first, then the services in order.
Source = tuple[str, str]
RUNTIME: Source = ("runtime", "services.runtime")
FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x6675_6C69  # "fuli"

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS fuli;
CREATE TABLE IF NOT EXISTS fuli.schema_migrations (
    service    text        NOT NULL,
    version    int         NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, version)
);
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    service: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_of(service: str, package: str) -> list[Migration]:
    folder = resources.files(package).joinpath("sql")
    found: list[Migration] = []
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        match = FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(service, int(match.group(1)), match.group(2),
                                   entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{service}: two migrations share a number")
    return found


async def migrate(conn: Conn, sources: Sequence[Source]) -> list[Migration]:
    """Apply every pending migration of ``sources`` in order; returns what was applied."""
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(BOOTSTRAP)
        rows = await conn.fetch("SELECT service, version, checksum FROM fuli.schema_migrations")
        applied = {(r["service"], r["version"]): r["checksum"] for r in rows}
        for service, package in sources:
            for migration in migrations_of(service, package):
                key = (service, migration.version)
                if key in applied:
                    if applied[key] != migration.checksum:
                        raise MigrationError(
                            f"{service}/{migration.version:04d}_{migration.name}.sql changed "
                            "after it was applied; add a new migration instead"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO fuli.schema_migrations (service, version, name, checksum)"
                        " VALUES ($1, $2, $3, $4)",
                        service, migration.version, migration.name, migration.checksum,
                    )
                applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now
