"""The connection pool hands a released connection on without a reset statement, while a
transaction left open on it still ends."""

from __future__ import annotations

import asyncpg

from services.runtime.db import create_pool
from services.runtime.settings import Settings


async def test_a_released_connection_is_sent_no_reset_statement(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    watcher = await asyncpg.connect(settings.database_url)
    try:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SELECT 'the last statement before release'")
        # Without a reset of its own the pool would send RESET ALL and the rest after it.
        last = await watcher.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        assert last == "SELECT 'the last statement before release'"
        assert await pool.fetchval("SELECT pg_backend_pid()") == pid
    finally:
        await watcher.close()
        await pool.close()


async def test_a_transaction_left_open_ends_on_release(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    watcher = await asyncpg.connect(settings.database_url)
    lock_key = 0x6675_6C69_706F_6F6C  # held by the transaction for as long as it lasts
    try:
        async with pool.acquire() as conn:
            await conn.transaction().start()
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
            assert not await watcher.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_key)
        assert await watcher.fetchval("SELECT pg_try_advisory_xact_lock($1)", lock_key)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
    finally:
        await watcher.close()
        await pool.close()
