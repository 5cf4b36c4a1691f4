"""Load a large, valid points ledger into a running fuli database with COPY.

For one tenant, loads --members members (default 1,000,000) and about --rows ledger rows
(points.transfers, default 10,000,000), each member with a history that the service itself
could have written:

- earns (most rows): an event in points.events, its lot in points.lots (expiring
  --expires-after-days after it), its `earn` transfer, and its id claimed in fuli.idempotency
  under the scope `points.events` with the fingerprint and stored body the API computes, so
  posting the same event again answers as a replay;
- debits (--spend-share of the steps, when the member has points): a row in points.debits,
  its `debit` transfer, its id claimed under `points.debits`, taken from the lots that expire
  soonest first, as points.take_from_lots does;
- expiry sweeps: before each step, and once more at the end, the remainders of lots that have
  expired move to the expiry account in one `expiry` transfer, as the worker's sweep does. So
  nothing loaded is left for the sweep to do, and no balance counts expired-but-unswept points.

A member's transfers are written in time order with `available_after`/`held_after` after each
one, its row holds `lifetime_earned - reversed - spent - expired = available + held` (nothing
held, nothing reversed), and its open lots sum to its balance: points.ledger_problems (behind
`GET /points/v1/ledger/check` and `fuli ledger check`) finds nothing.

How it loads: worker processes render the rows of chunks of members as CSV; this process
streams the chunks into the live tables, with their indexes, by COPY over --connections
connections in turn (one chunk per connection at a time). Each connection holds one
transaction for the whole load, and they commit only once every chunk is in, so a failed load
leaves nothing behind. Then it runs ANALYZE on the tables it wrote (VACUUM (ANALYZE) with
--vacuum, which sets the visibility map and hint bits a long-lived table has).
Identity columns (transfer_id, lot_id) come from their sequences, in COPY order; a member's
rows are all in one chunk, so its transfers keep their order. Nothing the service owns is
dropped or recreated.

No outbox rows are written for the loaded history: the worker would relay them all to the
consumers (tiers, webhooks) as if they had just happened. The tiers service therefore knows
nothing of the loaded members until their next event.

Member ids are `<--member-prefix><n>` for n = --first-member ... --first-member + --members - 1,
`bench-m<n>` by default: the ids loadtests/locustfile.py posts to, so a benchmark whose
FULI_BENCH_MEMBERS covers them hits loaded members. The members must not exist yet.
Event and debit ids are `<--id-prefix><n, 10 digits>-<k>`: ascending in load order, which keeps
index inserts at the right edge of the B-trees.

Rows are laid out member by member (a member's lots and transfers are next to each other in
the heap), not in time order as a live ledger grows, so the BRIN indexes on transfers.at and
events.recorded_at summarise wide ranges for the loaded blocks.

    .venv/bin/python loadtests/ledger_loader.py --database-url postgresql://... --tenant t1 \\
        --members 1000000 --rows 10000000
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests.bench import positive  # noqa: E402
from proto import points as p  # noqa: E402
from services.points.ledger import EVENTS_SCOPE, event_fingerprint  # noqa: E402
from services.runtime.idempotency import fingerprint  # noqa: E402

DEBITS_SCOPE = "points.debits"
DEBIT_REASON = "loaded history"
MINUTES_PER_DAY = 24 * 60
# Tables in the order each chunk is copied, with the columns written (the rest take defaults).
COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("points", "members"): ("tenant_id", "member_id", "available", "lifetime_earned", "spent",
                            "expired", "created_at"),
    ("points", "lots"): ("tenant_id", "member_id", "points", "remaining", "expires_at", "source",
                         "ref", "created_at"),
    ("points", "transfers"): ("tenant_id", "member_id", "kind", "from_account", "to_account",
                              "amount", "available_after", "held_after", "ref", "at"),
    ("points", "events"): ("tenant_id", "event_id", "member_id", "action", "occurred_at",
                           "points", "capped_points", "recorded_at"),
    ("points", "debits"): ("tenant_id", "debit_id", "member_id", "points", "reason", "at"),
    ("fuli", "idempotency"): ("tenant_id", "scope", "key", "fingerprint", "status_code", "body",
                              "created_at"),
}
TABLES = list(COLUMNS)
_encoder = msgspec.json.Encoder()


class LoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Plan:
    """What to load. Everything a worker process needs to render its chunks alone."""

    tenant: str
    members: int = 1_000_000
    rows: int = 10_000_000
    first_member: int = 1
    member_prefix: str = "bench-m"
    id_prefix: str = ""
    action: str = "bench"
    history_days: int = 540
    expires_after_days: int = 365
    spend_share: float = 0.08
    max_earn: int = 100
    seed: int = 1
    now_minute: int = 0  # minutes since the Unix epoch at which the history ends

    def transfers_of(self, index: int) -> int:
        """Transfers of the index-th member (0-based): rows / members on average, spread
        +-50% in pairs so that the total stays exact."""
        base, extra = divmod(self.rows, self.members)
        count = base + (1 if index < extra else 0)
        if base >= 2 and index // 2 * 2 + 1 < self.members:  # not the odd one out
            spread = random.Random(self.seed * 1_000_003 + index // 2).randint(0, base // 2)
            count += spread if index % 2 == 0 else -spread
        return max(count, 1)


@dataclass
class ChunkCounts:
    members: int = 0
    transfers: int = 0
    earns: int = 0
    debits: int = 0
    expiries: int = 0
    lots: int = 0
    points_earned: int = 0

    def add(self, other: ChunkCounts) -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Chunk:
    index: int
    counts: ChunkCounts
    csv: dict[tuple[str, str], bytes] = field(default_factory=dict)


class _Clock:
    """Text timestamps for minutes since the epoch, without a datetime per row."""

    def __init__(self, first_minute: int, last_minute: int) -> None:
        self.first_day = first_minute // MINUTES_PER_DAY
        last_day = last_minute // MINUTES_PER_DAY + 1
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        self.days = [f"{epoch + timedelta(days=d):%Y-%m-%d}"
                     for d in range(self.first_day, last_day + 1)]
        self.times = [f" {m // 60:02d}:{m % 60:02d}:00+00" for m in range(MINUTES_PER_DAY)]

    def text(self, minute: int) -> str:
        day, in_day = divmod(minute, MINUTES_PER_DAY)
        return self.days[day - self.first_day] + self.times[in_day]


def render_chunk(plan: Plan, index: int, first: int, count: int) -> Chunk:
    """CSV for the members first .. first + count - 1 (0-based positions in the plan)."""
    rng = random.Random(plan.seed * 7_919 + index)
    start = plan.now_minute - plan.history_days * MINUTES_PER_DAY
    lifetime = plan.expires_after_days * MINUTES_PER_DAY
    text = _Clock(start, plan.now_minute + lifetime).text
    tenant = plan.tenant
    action = plan.action
    counts = ChunkCounts()
    members: list[str] = []
    lots: list[str] = []
    transfers: list[str] = []
    events: list[str] = []
    debits: list[str] = []
    claims: list[str] = []

    for position in range(first, first + count):
        member = f"{plan.member_prefix}{plan.first_member + position}"
        id_stem = f"{plan.id_prefix}{plan.first_member + position:010d}-"
        budget = plan.transfers_of(position)
        # Distinct minutes, two apart at least, so that a sweep fits just before any step.
        steps = sorted(rng.sample(range(start // 2, plan.now_minute // 2 - 1), budget))
        # The member's lots in the order earned, which is also the order they expire in (one
        # lifetime for all): [expires_at, remaining, points, earned_at, ref]. Lots before
        # `oldest` are spent or expired.
        member_lots: list[list[Any]] = []
        oldest = 0
        available = earned = spent = expired = written = seq = 0

        end = plan.now_minute - 1
        for half in steps:
            at = half * 2
            if (written == budget - 1 and oldest < len(member_lots)
                    and member_lots[oldest][0] <= end):
                break  # the last transfer is the final sweep's
            if oldest < len(member_lots) and member_lots[oldest][0] <= at - 1:
                swept = 0
                while oldest < len(member_lots) and member_lots[oldest][0] <= at - 1:
                    swept += member_lots[oldest][1]
                    member_lots[oldest][1] = 0
                    oldest += 1
                available -= swept
                expired += swept
                transfers.append(_expiry_line(tenant, member, swept, available, text(at - 1)))
                counts.expiries += 1
                written += 1
                if written >= budget:
                    break
            seq += 1
            ref = f"{id_stem}{seq}"
            when = text(at)
            if available and rng.random() < plan.spend_share:
                amount = rng.randint(1, available)
                left = amount
                while left:
                    lot = member_lots[oldest]
                    take = min(lot[1], left)
                    lot[1] -= take
                    left -= take
                    if lot[1] == 0:
                        oldest += 1
                available -= amount
                spent += amount
                transfers.append(f"{tenant},{member},debit,available,redemption,{amount},"
                                 f"{available},0,{ref},{when}\n")
                debits.append(f"{tenant},{ref},{member},{amount},{DEBIT_REASON},{when}\n")
                request = p.DebitIn(debit_id=ref, member_id=member, points=amount,
                                    reason=DEBIT_REASON)
                body = _encoder.encode(p.Debit(debit_id=ref, member_id=member, points=amount,
                                               available=available))
                claims.append(f"{tenant},{DEBITS_SCOPE},{ref},"
                              f"\\x{fingerprint(DEBITS_SCOPE, ref, request).hex()},201,"
                              f"\\x{body.hex()},{when}\n")
                counts.debits += 1
            else:
                award = rng.randint(1, plan.max_earn)
                # One minute past the lifetime: an odd minute, never that of a step.
                member_lots.append([at + lifetime + 1, award, award, at, ref])
                available += award
                earned += award
                transfers.append(f"{tenant},{member},earn,issuance,available,{award},"
                                 f"{available},0,{ref},{when}\n")
                events.append(f"{tenant},{ref},{member},{action},{when},{award},0,{when}\n")
                request_print = event_fingerprint(
                    p.EventIn(event_id=ref, member_id=member, action=action))
                # The bytes points.record_event stores: row_to_json of points.event_result.
                body = (f'{{"event_id":"{ref}","member_id":"{member}","status":"awarded",'
                        f'"points":{award},"capped_points":0,"balance":{available}}}').encode()
                claims.append(f"{tenant},{EVENTS_SCOPE},{ref},\\x{request_print.hex()},201,"
                              f"\\x{body.hex()},{when}\n")
                counts.earns += 1
                counts.points_earned += award
            written += 1
            if written >= budget:
                break
        # What has expired by the end of the history is swept too, as the worker would have:
        # the loaded state leaves the sweep nothing to do.
        if oldest < len(member_lots) and member_lots[oldest][0] <= end:
            swept = 0
            while oldest < len(member_lots) and member_lots[oldest][0] <= end:
                swept += member_lots[oldest][1]
                member_lots[oldest][1] = 0
                oldest += 1
            available -= swept
            expired += swept
            transfers.append(_expiry_line(tenant, member, swept, available, text(end)))
            counts.expiries += 1
            written += 1
        for expires_at, remaining, points, earned_at, ref in member_lots:
            lots.append(f"{tenant},{member},{points},{remaining},{text(expires_at)},event,{ref},"
                        f"{text(earned_at)}\n")
        counts.lots += len(member_lots)
        counts.transfers += written
        counts.members += 1
        members.append(f"{tenant},{member},{available},{earned},{spent},{expired},"
                       f"{text(steps[0] * 2)}\n")

    csv = {
        ("points", "members"): "".join(members).encode(),
        ("points", "lots"): "".join(lots).encode(),
        ("points", "transfers"): "".join(transfers).encode(),
        ("points", "events"): "".join(events).encode(),
        ("points", "debits"): "".join(debits).encode(),
        ("fuli", "idempotency"): "".join(claims).encode(),
    }
    return Chunk(index, counts, csv)


def _expiry_line(tenant: str, member: str, swept: int, available: int, when: str) -> str:
    # The sweep's ref: `expiry:` and its time as points.sweep_expired_lots writes it.
    ref = f"expiry:{when[:10]}T{when[11:19]}Z"
    return f"{tenant},{member},expiry,available,expiry,{swept},{available},0,{ref},{when}\n"


def chunk_bounds(plan: Plan, chunk_members: int) -> Iterator[tuple[int, int, int]]:
    for index, first in enumerate(range(0, plan.members, chunk_members)):
        yield index, first, min(chunk_members, plan.members - first)


@dataclass
class LoadReport:
    tenant: str
    members: int
    transfers: int
    earns: int
    debits: int
    expiries: int
    lots: int
    points_earned: int
    workers: int
    connections: int
    chunk_members: int
    load_s: float
    transfers_per_s: float
    rows_per_s: float
    copy_s: dict[str, float]
    waiting_s: float  # for rendered rows or for a connection to be free
    analyze_s: float
    vacuum: bool
    total_rows: int
    table_sizes: dict[str, dict[str, Any]] = field(default_factory=dict)


async def _refuse_existing(conn: asyncpg.Connection, plan: Plan) -> None:
    tenant = await conn.fetchval("SELECT 1 FROM fuli.tenants WHERE tenant_id = $1", plan.tenant)
    if tenant is None:
        raise LoadError(f"no tenant {plan.tenant!r} in fuli.tenants")
    last = plan.first_member + plan.members - 1
    probes = sorted({plan.first_member, (plan.first_member + last) // 2, last})
    found = await conn.fetch(
        "SELECT member_id FROM points.members WHERE tenant_id = $1 AND member_id = ANY($2)",
        plan.tenant, [f"{plan.member_prefix}{n}" for n in probes])
    if found:
        raise LoadError(f"members to load exist already (e.g. {found[0]['member_id']!r}): "
                        "choose another --first-member or --member-prefix")


async def table_sizes(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Rows (as of the last ANALYZE), heap and index sizes in MiB of the tables loaded."""
    sizes: dict[str, dict[str, Any]] = {}
    for schema, table in TABLES:
        row = await conn.fetchrow(
            "SELECT c.reltuples::bigint AS rows, pg_table_size(c.oid) AS heap,"
            " pg_indexes_size(c.oid) AS indexes FROM pg_class c"
            " WHERE c.oid = to_regclass($1)", f"{schema}.{table}")
        indexes = await conn.fetch(
            "SELECT i.indexrelid::regclass::text AS name, pg_relation_size(i.indexrelid) AS size"
            " FROM pg_index i WHERE i.indrelid = to_regclass($1) ORDER BY 2 DESC",
            f"{schema}.{table}")
        assert row is not None
        sizes[f"{schema}.{table}"] = {
            "rows": int(row["rows"]), "heap_mib": round(row["heap"] / 2**20, 1),
            "indexes_mib": round(row["indexes"] / 2**20, 1),
            "index_mib": {r["name"]: round(r["size"] / 2**20, 1) for r in indexes},
        }
    return sizes


async def ledger_problems(conn: asyncpg.Connection, tenant: str,
                          limit: int = 10) -> tuple[int, list[dict[str, Any]]]:
    """What points.ledger_problems (the ledger check) finds for the tenant: how many
    problems, and the first few."""
    rows = await conn.fetch(
        "SELECT member_id, problem, detail::text AS detail"
        " FROM points.ledger_problems($1)", tenant, timeout=None)
    return len(rows), [dict(r) for r in rows[:limit]]


async def load(database_url: str, plan: Plan, *, workers: int = 2, connections: int = 2,
               chunk_members: int = 5_000, vacuum: bool = False,
               progress: bool = False) -> LoadReport:
    """Render the plan's rows in `workers` processes and COPY them over `connections`
    connections, chunk by chunk in turn, each in one transaction that commits only once every
    chunk is in: a failure rolls all of them back."""
    if plan.now_minute == 0:
        plan = _with_now(plan)
    conns = [await asyncpg.connect(database_url) for _ in range(connections)]
    totals = ChunkCounts()
    copy_s = {f"{schema}.{table}": 0.0 for schema, table in TABLES}
    waiting = 0.0

    async def copy_chunk(conn: asyncpg.Connection, chunk: Chunk) -> None:
        for (schema, table), data in chunk.csv.items():
            if data:
                copy_started = time.monotonic()
                await conn.copy_to_table(table, schema_name=schema, source=_whole(data),
                                         columns=COLUMNS[(schema, table)], format="csv")
                copy_s[f"{schema}.{table}"] += time.monotonic() - copy_started

    try:
        await _refuse_existing(conns[0], plan)
        loop = asyncio.get_running_loop()
        bounds = chunk_bounds(plan, chunk_members)
        chunks = -(-plan.members // chunk_members)
        started = time.monotonic()
        # workers=0 renders in a thread of this process (tests: no processes forked).
        executor: concurrent.futures.Executor = (
            concurrent.futures.ProcessPoolExecutor(max_workers=workers) if workers > 0
            else concurrent.futures.ThreadPoolExecutor(max_workers=1))
        transactions = [conn.transaction() for conn in conns]
        copying: list[asyncio.Task[None] | None] = [None] * connections
        with executor as pool:
            in_flight: list[asyncio.Future[Chunk]] = []

            def submit() -> None:
                bound = next(bounds, None)
                if bound is not None:
                    in_flight.append(loop.run_in_executor(pool, render_chunk, plan, *bound))

            for _ in range(2 * max(workers, 1) + connections):
                submit()
            for transaction in transactions:
                await transaction.start()
            try:
                while in_flight:
                    wait_started = time.monotonic()
                    chunk = await in_flight.pop(0)
                    slot = chunk.index % connections
                    previous = copying[slot]
                    if previous is not None:
                        await previous
                    waiting += time.monotonic() - wait_started
                    submit()
                    copying[slot] = asyncio.create_task(copy_chunk(conns[slot], chunk))
                    totals.add(chunk.counts)
                    if progress and (chunk.index + 1) % max(1, chunks // 20) == 0:
                        print(f"ledger_loader: {chunk.index + 1}/{chunks} chunks, "
                              f"{totals.transfers:,} transfers, "
                              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
                for task in copying:
                    if task is not None:
                        await task
            except BaseException:
                for task in copying:
                    if task is not None:
                        task.cancel()
                await asyncio.gather(*[t for t in copying if t is not None],
                                     return_exceptions=True)
                for transaction in transactions:
                    await transaction.rollback()
                raise
            for transaction in transactions:
                await transaction.commit()
        load_s = time.monotonic() - started
        analyze_started = time.monotonic()
        names = ", ".join(f"{schema}.{table}" for schema, table in TABLES)
        await conns[0].execute(f"VACUUM (ANALYZE) {names}" if vacuum else f"ANALYZE {names}",
                               timeout=None)
        analyze_s = time.monotonic() - analyze_started
        total_rows = (totals.members + totals.lots + totals.transfers + totals.earns * 2
                      + totals.debits * 2)
        return LoadReport(
            tenant=plan.tenant, members=totals.members, transfers=totals.transfers,
            earns=totals.earns, debits=totals.debits, expiries=totals.expiries,
            lots=totals.lots, points_earned=totals.points_earned, workers=workers,
            connections=connections, chunk_members=chunk_members, load_s=round(load_s, 1),
            transfers_per_s=round(totals.transfers / load_s),
            rows_per_s=round(total_rows / load_s),
            copy_s={k: round(v, 1) for k, v in copy_s.items()},
            waiting_s=round(waiting, 1), analyze_s=round(analyze_s, 1),
            vacuum=vacuum, total_rows=total_rows, table_sizes=await table_sizes(conns[0]))
    finally:
        for conn in conns:
            await conn.close()


async def _whole(data: bytes) -> AsyncIterator[bytes]:
    # An iterable of one piece: asyncpg would take the bytes themselves for a file name.
    yield data


def _with_now(plan: Plan) -> Plan:
    values = asdict(plan)
    values["now_minute"] = int(time.time()) // 60
    return Plan(**values)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load members and a valid ledger history into a fuli database with COPY.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--database-url", default=os.environ.get("FULI_DATABASE_URL"),
                        help="PostgreSQL URL (default $FULI_DATABASE_URL)")
    target.add_argument("--data-dir", type=Path,
                        help="the data directory of a running `fuli up` (its embedded "
                             "PostgreSQL), instead of --database-url")
    parser.add_argument("--tenant", required=True, help="the tenant to load into (must exist)")
    parser.add_argument("--members", type=positive, default=1_000_000)
    parser.add_argument("--rows", type=positive, default=10_000_000,
                        help="ledger rows (points.transfers) to load, about (default 10M)")
    parser.add_argument("--first-member", type=positive, default=1,
                        help="number of the first member id (default 1)")
    parser.add_argument("--member-prefix", default="bench-m")
    parser.add_argument("--id-prefix", default=None,
                        help="prefix of event and debit ids (default ld<random>-)")
    parser.add_argument("--action", default="bench", help="the loaded events' action")
    parser.add_argument("--spend-share", type=float, default=0.08,
                        help="share of steps that are debits when the member has points")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=positive, default=2,
                        help="processes rendering rows (default 2)")
    parser.add_argument("--connections", type=positive, default=2,
                        help="connections copying chunks in turn (default 2)")
    parser.add_argument("--chunk-members", type=positive, default=5_000)
    parser.add_argument("--vacuum", action="store_true",
                        help="VACUUM (ANALYZE) the loaded tables instead of ANALYZE alone")
    parser.add_argument("--check", action="store_true",
                        help="run the ledger check for the tenant afterwards (minutes at 10M)")
    args = parser.parse_args(argv)
    if args.database_url is None and args.data_dir is None:
        parser.error("give --database-url (or FULI_DATABASE_URL) or --data-dir")
    return args


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if args.data_dir is not None:
        from services.runtime.embedded import EmbeddedPostgres

        database_url = EmbeddedPostgres(args.data_dir).url
    else:
        database_url = args.database_url
    plan = Plan(tenant=args.tenant, members=args.members, rows=args.rows,
                first_member=args.first_member, member_prefix=args.member_prefix,
                id_prefix=args.id_prefix or f"ld{secrets.token_hex(3)}-", action=args.action,
                spend_share=args.spend_share, seed=args.seed)
    report = await load(database_url, plan, workers=args.workers,
                        connections=args.connections, chunk_members=args.chunk_members,
                        vacuum=args.vacuum, progress=True)
    result: dict[str, Any] = {"plan": asdict(plan), "load": asdict(report)}
    if args.check:
        conn = await asyncpg.connect(database_url)
        try:
            check_started = time.monotonic()
            count, sample = await ledger_problems(conn, args.tenant)
            result["ledger_check"] = {"problems": count, "sample": sample,
                                      "seconds": round(time.monotonic() - check_started, 1)}
        finally:
            await conn.close()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(_main(args))
    except (LoadError, asyncpg.PostgresError, OSError) as exc:
        print(f"ledger_loader failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 1 if result.get("ledger_check", {}).get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
