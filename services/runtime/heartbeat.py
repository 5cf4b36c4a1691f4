"""Worker heartbeats: every few seconds a worker records in PostgreSQL that it is running.

``/health/ready`` reads how old the newest heartbeat is (a dead or stuck worker makes it
stale); ``fuli worker --check``, the worker's liveness probe, reads the newest heartbeat of its
own host. Ages are computed by the database, so the hosts' clocks do not matter.

``python -m services.runtime.heartbeat`` is that check without loading the services: what a
Kubernetes exec probe runs every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from services.runtime.settings import (
    DEFAULT_READY_MAX_HEARTBEAT_AGE_S,
    Settings,
    SettingsError,
    load_settings,
)

if TYPE_CHECKING:
    from services.runtime.db import Db

log = logging.getLogger("fuli.heartbeat")

BEAT = (
    "INSERT INTO fuli.worker_heartbeats (worker_id, host, pid) VALUES ($1, $2, $3)"
    " ON CONFLICT (worker_id) DO UPDATE SET last_beat_at = now()"
)
# Workers that stopped long ago (killed, or replaced by a restart) only clutter the table.
PRUNE = "DELETE FROM fuli.worker_heartbeats WHERE last_beat_at < now() - interval '1 hour'"
FORGET = "DELETE FROM fuli.worker_heartbeats WHERE worker_id = $1"
NEWEST_AGE = (
    "SELECT extract(epoch FROM now() - max(last_beat_at))::float8 FROM fuli.worker_heartbeats"
)
NEWEST_AGE_OF_HOST = (
    "SELECT extract(epoch FROM now() - max(last_beat_at))::float8 FROM fuli.worker_heartbeats"
    " WHERE host = $1"
)
CONNECT_TIMEOUT_S = 5.0


async def newest_heartbeat_age(conn: Db) -> float | None:
    """Seconds since the newest heartbeat of any worker; None if no worker ever beat."""
    age = await conn.fetchval(NEWEST_AGE)
    return None if age is None else float(age)


class Heartbeat(threading.Thread):
    """Beats every ``settings.worker_heartbeat_s`` while ``healthy()`` says the worker's parts
    run, on a connection of its own (a busy pool must not delay it); forgets this worker when
    ``stop`` is set."""

    def __init__(self, settings: Settings, stop: threading.Event,
                 healthy: Callable[[], bool]) -> None:
        super().__init__(name="fuli-heartbeat", daemon=True)
        if settings.database_url is None:
            raise RuntimeError("the heartbeat needs FULI_DATABASE_URL resolved")
        self.database_url = settings.database_url
        self.interval_s = settings.worker_heartbeat_s
        self.stop_event = stop
        self.healthy = healthy
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.worker_id = f"{self.host}:{self.pid}"

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        was_healthy = True
        try:
            while not self.stop_event.is_set():
                healthy = self.healthy()
                if not healthy and was_healthy:
                    log.error("a part of the worker stopped; no more heartbeats",
                              extra={"fields": {"worker_id": self.worker_id}})
                was_healthy = healthy
                if healthy:
                    conn = await self._beat(conn)
                await asyncio.to_thread(self.stop_event.wait, self.interval_s)
        finally:
            if conn is not None:
                # A worker that stops cleanly says so at once instead of going stale.
                with contextlib.suppress(Exception):
                    await conn.execute(FORGET, self.worker_id)
                conn.terminate()

    async def _beat(self, conn: asyncpg.Connection[asyncpg.Record] | None
                    ) -> asyncpg.Connection[asyncpg.Record] | None:
        try:
            if conn is None:
                conn = await asyncpg.connect(
                    self.database_url, timeout=CONNECT_TIMEOUT_S,
                    command_timeout=max(self.interval_s, 1.0),
                    server_settings={"application_name": "fuli-heartbeat"})
                await conn.execute(PRUNE)
            await conn.execute(BEAT, self.worker_id, self.host, self.pid)
            return conn
        except Exception as exc:  # the next beat tries again on a new connection
            log.warning("heartbeat not recorded; retrying",
                        extra={"fields": {"worker_id": self.worker_id, "error": repr(exc)}})
            if conn is not None:
                conn.terminate()
            return None


def _database_url(settings: Settings) -> str | None:
    if settings.database_url is not None:
        return settings.database_url
    from services.runtime.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(Path(settings.data_dir).resolve())
    return postgres.url if postgres.running_pid() is not None else None


async def _newest_age_of_host(database_url: str, host: str) -> float | None:
    conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_S)
    try:
        age = await conn.fetchval(NEWEST_AGE_OF_HOST, host, timeout=CONNECT_TIMEOUT_S)
        return None if age is None else float(age)
    finally:
        await conn.close()


def check_worker(settings: Settings, host: str | None = None) -> tuple[bool, str]:
    """Whether a worker on ``host`` (this one by default) beat within the readiness limit.

    When PostgreSQL cannot be reached the answer is yes: a restarted worker would not reach it
    either, and a liveness probe must not restart workers for an outage elsewhere."""
    host = host or socket.gethostname()
    limit = settings.ready_max_heartbeat_age_s or DEFAULT_READY_MAX_HEARTBEAT_AGE_S
    database_url = _database_url(settings)
    if database_url is None:
        return False, "the embedded PostgreSQL is not running"
    try:
        age = asyncio.run(_newest_age_of_host(database_url, host))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return True, f"cannot reach PostgreSQL ({exc!r}); not judging the worker"
    if age is None:
        return False, f"no worker heartbeat from {host}"
    if age > limit:
        return False, f"the newest heartbeat from {host} is {age:.1f} s old (limit {limit:g} s)"
    return True, f"a worker on {host} beat {age:.1f} s ago (limit {limit:g} s)"


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"fuli: bad setting: {exc}", file=sys.stderr)
        return 2
    ok, message = check_worker(settings)
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
