"""An outbox row's event id (runtime migration 0005): a random version-4 UUID drawn by
`fuli.new_event_id()`, different in every row and in every session."""

from __future__ import annotations

import uuid

import asyncpg

from services.runtime.resources import Resources
from services.runtime.settings import Settings
from tests.support.api import uid

ROWS = 20_000


async def test_the_outbox_gives_every_row_its_own_version_4_id(
        resources: Resources, settings: Settings) -> None:
    # (resources: the database is migrated first)
    tenant = uid("ids")
    ids: list[uuid.UUID] = []
    for _ in range(3):  # three sessions, each drawing its own sequence
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                ids += await conn.fetchval(
                    "WITH rows AS (INSERT INTO fuli.outbox"
                    " (service, tenant_id, event_type, payload)"
                    " SELECT 'test', $1, 'Probe', '\\x7b7d' FROM generate_series(1, $2)"
                    " RETURNING event_id) SELECT array_agg(event_id) FROM rows", tenant, ROWS)
                await conn.execute("DELETE FROM fuli.outbox WHERE tenant_id = $1", tenant)
        finally:
            await conn.close()
    assert len(ids) == 3 * ROWS and len(set(ids)) == len(ids)
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    # Every one of the 122 random bits varies: none is stuck at 0 or 1 across the rows.
    random_bits = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
    ones, zeros = 0, 0
    for i in ids:
        ones |= i.int
        zeros |= ~i.int
    assert ones & zeros & random_bits == random_bits


async def test_the_outbox_default_is_the_cheap_generator(resources: Resources) -> None:
    default = await resources.pool.fetchval(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d"
        " JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        " WHERE d.adrelid = 'fuli.outbox'::regclass AND a.attname = 'event_id'")
    assert default == "fuli.new_event_id()"
