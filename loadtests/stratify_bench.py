"""Time the whole-tenant passes of the tiers service over N members (default 1 000 000):
percentile stratification, the AIPL lifecycle evaluation, rule tags, and a segment count.

Starts a throwaway embedded PostgreSQL (durable settings, as `make run`) and seeds N members
the way the tiers consumers store them: a day of spend each (the stratification metric), and
over the last 120 local days a few engagement actions, coupon uses and purchases, with event
channels (COPY into the tables without their indexes, which are built afterwards, so ten
million members seed in minutes). Then it times, each through the service the API and the
worker call:

- two passes of the percentile stratification (`tiers.stratify`): the first moves everyone
  (tier updates, history, and TierChanges outbox rows of up to 1,000 members), the second
  none;
- two lifecycle evaluations and two rule-tag evaluations a day apart: the first gives every
  member a stage and their tags (history and LifecycleChanged rows), the second moves the
  members the rolled windows move;
- computing a segment `tier in (member, vip) AND lifecycle = loyal AND NOT tag dormant`
  (selection, count and the frozen list) and counting it alone.

and prints the figures: each pass's wall time (`<pass>_s`) and the CPU time PostgreSQL's
processes spent on it (`<pass>_cpu_s`, steadier on a shared machine), with
`lifecycle_and_tags_vs_stratify`, the first passes of lifecycle and
tags together over the first stratification (the issue's goal: at most 2).
`--stratify-only` seeds the members and their days alone and times the two stratifications.

    python loadtests/stratify_bench.py --members 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proto import tiers as t
from services.composition.registry import MIGRATIONS
from services.runtime import tenants
from services.runtime.db import create_pool
from services.runtime.embedded import EmbeddedServers
from services.runtime.migrations import migrate
from services.tiers.lifecycle.lifecycle import Lifecycle
from services.tiers.policy.policy import Policies
from services.tiers.segments.segments import Segments
from services.tiers.tags.tags import Tags

T = TypeVar("T")
TENANT = "bench"
POLICY = {"mode": "percentile", "metric": "spend_cents", "grace_days": 0, "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3},
    {"name": "vip", "share": 0.2}]}
INDEX_BUILD_MEMORY = "512MB"
SEGMENT = t.SegmentBody(name="loyal members not dormant", filter=t.SegmentFilter(
    tiers=["member", "vip"], stages=["loyal"], tags=t.TagFilter(none=["dormant"])))

# What each seeded table holds, as the query that generates its rows ($1 tenant, $2 members).
# Per member, over the last 120 local days: engagement actions (one action name each, so
# no two rows share a key), coupon uses and purchases.
SEED = {
    "members": ("tenant_id, member_id", """
        SELECT $1::text, 'm' || i FROM generate_series(1, $2::int) AS i"""),
    "member_days": ("tenant_id, member_id, day, spend_cents", """
        SELECT $1::text, 'm' || i, current_date, (random() * 1e7)::bigint
        FROM generate_series(1, $2::int) AS i"""),
    "action_days": ("tenant_id, member_id, day, action, actions", """
        SELECT $1::text, 'm' || i, current_date - (random() * 120)::int,
               (ARRAY['speak', 'survey', 'bind', 'referral', 'share', 'coupon_used'])[1 + k % 6],
               1 + (random() * 3)::int
        FROM generate_series(1, $2::int) AS i, generate_series(1, 4) AS k
        WHERE random() < 0.7"""),
    "purchases": ("tenant_id, event_id, member_id, action, occurred_at, day, amount_cents", """
        SELECT $1::text, 'p' || i || '-' || k, 'm' || i, 'purchase',
               d::timestamptz + interval '12 hours', d, 1000 + (random() * 50000)::bigint
        FROM generate_series(1, $2::int) AS i, generate_series(1, 3) AS k,
             LATERAL (SELECT current_date - (random() * 120)::int + (i * 0) AS d) AS day
        WHERE random() < 0.4"""),
    "member_sources": ("tenant_id, member_id, channel, event_id, occurred_at", """
        SELECT $1::text, 'm' || i, (ARRAY['wechat', 'app', 'store'])[1 + i % 3], 'e' || i,
               now() - interval '100 days'
        FROM generate_series(1, $2::int) AS i WHERE i % 2 = 0"""),
}
# What the stratification reads: the members and the days of their metric.
STRATIFY_TABLES = ("members", "member_days")
# The unique constraints and indexes of a table, to drop before loading it and build after.
INDEXES = """
SELECT c.conname, pg_get_constraintdef(c.oid) AS constraint_def, i.indexrelid::regclass::text
       AS index_name, pg_get_indexdef(i.indexrelid) AS index_def
FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u')
WHERE i.indrelid = $1::regclass
"""


async def load(url: str, conn: asyncpg.Connection, table: str, columns: str, query: str,
               members: int) -> None:
    """COPY the rows ``query`` generates into ``table``: a second connection streams them out
    of the server and ``conn`` in, without the table's indexes, built again afterwards (one
    sort each instead of a million scattered insertions)."""
    qualified = f"tiers.{table}"
    indexes = await conn.fetch(INDEXES, qualified)
    for index in indexes:
        await conn.execute(f"ALTER TABLE {qualified} DROP CONSTRAINT {index['conname']}"
                           if index["conname"] else f"DROP INDEX {index['index_name']}")
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        source = await asyncpg.connect(url)
        try:
            await source.copy_from_query(query, TENANT, members, output=chunks.put)
        finally:
            await chunks.put(None)
            await source.close()

    async def stream() -> AsyncIterator[bytes]:
        while (chunk := await chunks.get()) is not None:
            yield chunk

    await asyncio.gather(produce(), conn.copy_to_table(
        table, schema_name="tiers", columns=[c.strip() for c in columns.split(",")],
        source=stream()))
    for index in indexes:
        await conn.execute(
            f"ALTER TABLE {qualified} ADD CONSTRAINT {index['conname']} {index['constraint_def']}"
            if index["conname"] else index["index_def"])


def server_cpu_s(pgdata: Path) -> float:
    """CPU seconds PostgreSQL's processes have used (Linux /proc): the postmaster's children,
    and through its own counters those that have exited. On a shared machine it moves less
    than the wall clock with other people's load."""
    postmaster = (pgdata / "postmaster.pid").read_text().split()[0]
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if stat.parent.name == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, and of reaped children
        elif fields[1] == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Timer:
    """Each pass's wall time, and the server's CPU time beside it (`<name>_cpu_s`)."""

    def __init__(self, pgdata: Path, figures: dict[str, float | int]) -> None:
        self.pgdata, self.figures = pgdata, figures

    async def time(self, name: str, work: Awaitable[T]) -> T:
        cpu, started = server_cpu_s(self.pgdata), time.perf_counter()
        result = await work
        self.figures[f"{name}_s"] = round(time.perf_counter() - started, 2)
        self.figures[f"{name}_cpu_s"] = round(server_cpu_s(self.pgdata) - cpu, 2)
        return result


async def measure(url: str, pgdata: Path, members: int,
                  stratify_only: bool) -> dict[str, float | int]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, MIGRATIONS)
        await tenants.create_tenant(conn, TENANT, "Asia/Shanghai")
        await conn.execute("INSERT INTO tiers.policies (tenant_id, policy) VALUES ($1, $2)",
                           TENANT, json.dumps(POLICY))
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            for table, (columns, query) in SEED.items():
                if not stratify_only or table in STRATIFY_TABLES:
                    await load(url, conn, table, columns, query, members)
        await conn.execute("VACUUM ANALYZE")
        figures: dict[str, float | int] = {
            "members": members, "seed_s": round(time.perf_counter() - started, 1)}
    finally:
        await conn.close()

    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        policies, lifecycle = Policies(pool), Lifecycle(pool)
        tags, segments = Tags(pool), Segments(pool)
        timer = Timer(pgdata, figures)
        now = datetime.now(UTC)
        tomorrow = now + timedelta(days=1)
        await timer.time("stratify_first", policies.stratify(TENANT, now))
        await timer.time("stratify_second", policies.stratify(TENANT, now))
        if stratify_only:
            return figures
        await timer.time("lifecycle_first", lifecycle.evaluate(TENANT, now, now))
        await timer.time("tags_first", tags.evaluate(TENANT, now, now))
        await timer.time("lifecycle_next_day", lifecycle.evaluate(TENANT, tomorrow, tomorrow))
        await timer.time("tags_next_day", tags.evaluate(TENANT, tomorrow, tomorrow))
        segment = await timer.time("segment_put", segments.put(TENANT, "s1", SEGMENT, tomorrow))
        figures["segment_members"] = segment.count
        await timer.time("segment_count", segments.preview(TENANT, SEGMENT.filter, tomorrow))
        figures["lifecycle_and_tags_vs_stratify"] = round(
            (figures["lifecycle_first_s"] + figures["tags_first_s"])
            / figures["stratify_first_s"], 2)
        return figures
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--stratify-only", action="store_true",
                        help="seed only what stratification reads and time only its passes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuli-stratify-") as data_dir:
        servers = EmbeddedServers(data_dir)
        urls = servers.start(valkey=False)
        try:
            print(json.dumps(asyncio.run(measure(urls.database_url, servers.postgres.pgdata,
                                                 args.members, args.stratify_only))))
        finally:
            servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
