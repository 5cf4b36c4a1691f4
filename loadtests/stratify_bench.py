"""Time a percentile stratification of one tenant with N members (default 1 000 000).

Starts a throwaway embedded PostgreSQL (durable settings, as `make run`), seeds N members with
random spends the way the tiers consumer stores them, and times two passes of tiers.stratify:
the first moves everyone (tier updates, history and TierChanged outbox rows), the second none.

    python loadtests/stratify_bench.py --members 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.composition.registry import MIGRATIONS
from services.runtime import tenants
from services.runtime.embedded import EmbeddedServers
from services.runtime.migrations import migrate

POLICY = {"mode": "percentile", "metric": "spend_cents", "grace_days": 0, "tiers": [
    {"name": "fan", "share": 0.5}, {"name": "member", "share": 0.3},
    {"name": "vip", "share": 0.2}]}


async def measure(url: str, members: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, MIGRATIONS)
        await tenants.create_tenant(conn, "bench")
        await conn.execute("INSERT INTO tiers.policies (tenant_id, policy) VALUES ('bench', $1)",
                           json.dumps(POLICY))
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO tiers.members (tenant_id, member_id)"
            " SELECT 'bench', 'm' || i FROM generate_series(1, $1) AS i", members)
        await conn.execute(
            "INSERT INTO tiers.member_days (tenant_id, member_id, day, spend_cents)"
            " SELECT 'bench', 'm' || i, current_date, (random() * 1e7)::bigint"
            " FROM generate_series(1, $1) AS i", members)
        await conn.execute("ANALYZE")
        figures = {"members": members, "seed_s": round(time.perf_counter() - started, 1)}
        for name in ("first_pass_s", "second_pass_s"):
            started = time.perf_counter()
            async with conn.transaction():
                await conn.fetchrow("SELECT members, changed FROM tiers.stratify('bench', now())")
            figures[name] = round(time.perf_counter() - started, 1)
        return figures
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuli-stratify-") as data_dir:
        servers = EmbeddedServers(data_dir)
        urls = servers.start(valkey=False)
        try:
            print(json.dumps(asyncio.run(measure(urls.database_url, args.members))))
        finally:
            servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
