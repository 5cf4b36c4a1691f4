"""The earn rate with a big ledger in the database, against the rate on an empty one.

In one run, on one machine, on one `fuli up` (what `make run` serves):

1. start the stack on a fresh data directory, create an ingest key and the rule `bench`
   (loadtests/bench.py's set-up);
2. **empty**: drive POST /points/v1/events with Locust for --duration seconds, the scenario of
   bench.py's Locust phase (events for random members out of 10,000);
3. **load**: once the worker has relayed the outbox, load --members members (default 1M) and
   about --rows ledger rows (default 10M) into the same database with loadtests/ledger_loader.py
   (COPY, one transaction), then VACUUM (ANALYZE) them (--no-vacuum: ANALYZE only);
4. **loaded**: the same Locust run again, now for random members out of the 10,000 and the
   loaded ones (99 % of the events go to a loaded member, with its lots and transfers);
5. the ledger check (points.ledger_problems) for the tenant, which must find nothing, and the
   plans of the statements points.record_event runs for one event of a loaded member
   (auto_explain of the nested statements, in a transaction rolled back);
6. stop the stack and write loadtests/results/scale-<UTC time>.json (and print it).

`ratio` = loaded events/s / empty events/s (goal >= 0.9). Both phases run on the same stack
one after the other, so the machine's noise largely cancels in the ratio; quote it, not the
absolute rates, and run it more than once.

    .venv/bin/python loadtests/scale_bench.py --duration 60
    .venv/bin/python loadtests/scale_bench.py --members 100000 --rows 1000000 --duration 20
    .venv/bin/python loadtests/scale_bench.py --duration 60 --warmup 60 --no-check
    .venv/bin/python loadtests/scale_bench.py --no-check --pg-set max_wal_size=8GB \
        --sql "ALTER TABLE points.lots SET (fillfactor = 90)"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests import bench  # noqa: E402
from loadtests import ledger_loader as loader  # noqa: E402
from loadtests.bench import (  # noqa: E402
    BenchError,
    CpuMeter,
    RssSampler,
    Stack,
    at_least,
    git_commit,
    machine,
    positive,
    prepare_tenant,
    psql,
    run_locust,
    tail,
    wait_outbox_drained,
)
from services.runtime.embedded import EmbeddedPostgres  # noqa: E402

EMPTY_MEMBERS = bench.MEMBERS
GOAL = 0.9
# pg_stat_database counters read around each Locust phase: blks_read are blocks PostgreSQL
# did not find in shared_buffers (read from the OS page cache or the disk).
# pg_stat_wal: full-page images are written for the first change of a page after each
# checkpoint; pg_stat_checkpointer: checkpoints and the buffers they wrote; points.members'
# updates, and how many were HOT (no new index entry: the row's page had room for it).
DB_COUNTERS = ("xact_commit", "blks_read", "blks_hit", "tup_inserted", "wal_records", "wal_fpi",
               "wal_bytes", "checkpoints", "checkpoint_buffers", "member_updates",
               "member_hot_updates")
DB_COUNTERS_SQL = (
    "SELECT d.xact_commit, d.blks_read, d.blks_hit, d.tup_inserted,"
    " w.wal_records, w.wal_fpi, w.wal_bytes::bigint,"
    " c.num_timed + c.num_requested, c.buffers_written, m.n_tup_upd, m.n_tup_hot_upd"
    " FROM pg_stat_database d, pg_stat_wal w, pg_stat_checkpointer c, pg_stat_user_tables m"
    " WHERE d.datname = current_database() AND m.relid = 'points.members'::regclass")


def db_counters(postgres: EmbeddedPostgres) -> dict[str, int]:
    values = psql(postgres, DB_COUNTERS_SQL)
    return dict(zip(DB_COUNTERS, (int(v) for v in values.split("|")), strict=True))


def counters_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    delta: dict[str, Any] = {k: after[k] - before[k] for k in DB_COUNTERS}
    blocks = delta["blks_read"] + delta["blks_hit"]
    delta["shared_buffers_hit_ratio"] = round(delta["blks_hit"] / blocks, 4) if blocks else None
    return delta


def per_event(figures: dict[str, Any]) -> dict[str, Any]:
    """Costs per event recorded: CPU milliseconds of each part of the stack (what a shared,
    noisy machine changes least), WAL bytes and full-page images, blocks read from outside
    shared_buffers."""
    events = max(figures["requests"] - figures["failures"], 1)
    cpu = figures["cpu_s_with_relay"]
    stack_s = sum(v for k, v in cpu.items() if k != "load_generator")
    database = figures["database"]
    return {
        "stack_cpu_ms": round(1000 * stack_s / events, 3),
        "postgres_cpu_ms": round(1000 * cpu["postgres"] / events, 3),
        "api_cpu_ms": round(1000 * cpu["api"] / events, 3),
        "worker_cpu_ms": round(1000 * cpu["worker"] / events, 3),
        "wal_bytes": round(database["wal_bytes"] / events),
        "wal_fpi": round(database["wal_fpi"] / events, 2),
        "blocks_read": round(database["blks_read"] / events, 2),
        "commits": round(database["xact_commit"] / events, 3),
        "member_hot_update_share": (round(database["member_hot_updates"]
                                          / database["member_updates"], 3)
                                    if database["member_updates"] else None),
    }


def server_settings(postgres: EmbeddedPostgres) -> dict[str, str]:
    names = ("shared_buffers", "effective_cache_size", "max_wal_size", "checkpoint_timeout",
             "wal_compression", "synchronous_commit", "fsync", "autovacuum", "server_version")
    values = psql(postgres, "SELECT string_agg(name || '=' || current_setting(name), '|'"
                            " ORDER BY name) FROM pg_settings WHERE name IN ("
                  + ", ".join(f"'{n}'" for n in names) + ")")
    return dict(item.split("=", 1) for item in values.split("|"))


async def alter_system(database_url: str, assignments: list[str]) -> dict[str, str]:
    changed: dict[str, str] = {}
    conn = await asyncpg.connect(database_url)
    try:
        for assignment in assignments:
            name, _, value = assignment.partition("=")
            if not name.replace("_", "").isalnum() or not value:
                raise BenchError(f"--pg-set wants NAME=VALUE, not {assignment!r}")
            await conn.execute(f"ALTER SYSTEM SET {name} = {_literal(value)}")
            changed[name] = value
        await conn.execute("SELECT pg_reload_conf()")
        await asyncio.sleep(0.5)
        for name, value in changed.items():
            if await conn.fetchval("SELECT pending_restart FROM pg_settings WHERE name = $1",
                                   name):
                raise BenchError(f"--pg-set {name}={value} needs a restart; not applied")
    finally:
        await conn.close()
    return changed


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def locust_phase(stack: Stack, key: str, duration: int, users: int, members: int,
                 csv_prefix: Path, postgres: EmbeddedPostgres,
                 warmup: int) -> dict[str, Any]:
    """bench.py's Locust phase, for events to members bench-m1 .. bench-m<members>, and the
    worker's relay of what it left in the outbox: the costs per event count both, so that work
    the worker put off during the phase is not missing from them. With ``warmup``, the same
    load runs that many seconds first, unmeasured."""
    if warmup:
        run_locust(stack, key, warmup, users, Path(f"{csv_prefix}-warmup"), members)
        wait_outbox_drained(postgres, timeout=300)
    before = db_counters(postgres)
    with CpuMeter(stack) as cpu_with_relay:
        with RssSampler(stack.rss_mib) as rss, CpuMeter(stack) as cpu:
            figures = run_locust(stack, key, duration, users, csv_prefix, members)
        figures["outbox"] = wait_outbox_drained(postgres, timeout=300)
    figures["members"] = members
    figures["warmup_s"] = warmup
    figures["database"] = counters_delta(before, db_counters(postgres))
    figures["cpu_s"] = cpu.seconds
    figures["cpu_s_with_relay"] = cpu_with_relay.seconds
    figures["peak_rss_mib"] = round(rss.peak, 1)
    figures["per_event"] = per_event(figures)
    if stack.process.poll() is not None:
        raise stack._failure("fuli up died during a Locust phase")
    return figures


async def load_state(database_url: str, plan: loader.Plan, *, workers: int, connections: int,
                     vacuum: bool) -> dict[str, Any]:
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = await loader.load(database_url, plan, workers=workers, connections=connections,
                               vacuum=vacuum, progress=True)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures: dict[str, Any] = asdict(report)
    del figures["table_sizes"]  # reported once, after the loaded phase
    figures["loader_cpu_s"] = {
        # This process streams the CSV; the worker processes render it.
        "streaming": round(self_after.ru_utime + self_after.ru_stime
                           - self_before.ru_utime - self_before.ru_stime, 1),
        "rendering": round(children_after.ru_utime + children_after.ru_stime
                           - children_before.ru_utime - children_before.ru_stime, 1),
    }
    # What the load left dirty is written now rather than during the loaded phase, which
    # starts, like the empty one, without a checkpoint's worth of writes pending.
    conn = await asyncpg.connect(database_url)
    try:
        checkpoint_started = time.monotonic()
        await conn.execute("CHECKPOINT", timeout=None)
        figures["checkpoint_s"] = round(time.monotonic() - checkpoint_started, 1)
    finally:
        await conn.close()
    return figures


async def ledger_check(database_url: str, tenant: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        count, sample = await loader.ledger_problems(conn, tenant)
        return {"problems": count, "sample": sample,
                "seconds": round(time.monotonic() - started, 1)}
    finally:
        await conn.close()


async def record_event_plans(database_url: str, tenant: str, member: str) -> list[dict[str, Any]]:
    """The plan, time and buffers of each statement points.record_event runs for one new
    event of `member`, from auto_explain (nested statements), rolled back afterwards."""
    conn = await asyncpg.connect(database_url)
    plans: list[dict[str, Any]] = []

    def collect(_: object, message: asyncpg.PostgresLogMessage) -> None:
        text = str(message.message)
        if "Query Text" in text or '"Plan"' in text:
            plans.append(_summarise_plan(text))

    try:
        conn.add_log_listener(collect)
        async with conn.transaction():
            await conn.execute("LOAD 'auto_explain'")
            await conn.execute(
                "SET LOCAL auto_explain.log_min_duration = 0;"
                " SET LOCAL auto_explain.log_analyze = on;"
                " SET LOCAL auto_explain.log_buffers = on;"
                " SET LOCAL auto_explain.log_nested_statements = on;"
                " SET LOCAL auto_explain.log_format = 'json';"
                " SET LOCAL client_min_messages = log")
            await conn.fetch(
                "SELECT * FROM points.record_event($1, $2, '\\x00'::bytea, $3, $4, now(), NULL,"
                " NULL, now())", tenant, f"explain-{time.time_ns()}", member, bench.RULE)
            await asyncio.sleep(0.2)  # let the log messages arrive before leaving
            await conn.execute("SET LOCAL client_min_messages = notice")
            raise _RollBack
    except _RollBack:
        pass
    finally:
        await conn.close()
    return [p for p in plans if p]


class _RollBack(Exception):
    pass


def _summarise_plan(message: str) -> dict[str, Any]:
    start = message.find("{")
    try:
        document = json.loads(message[start:])
    except ValueError:
        return {}
    plan = document.get("Plan", {})
    query = " ".join(str(document.get("Query Text", "")).split())
    return {
        "query": query[:160],
        "ms": round(float(plan.get("Actual Total Time", 0.0)), 3),
        "node": plan.get("Node Type"),
        "index": _first_index(plan),
        "shared_hit": plan.get("Shared Hit Blocks"),
        "shared_read": plan.get("Shared Read Blocks"),
        "shared_dirtied": plan.get("Shared Dirtied Blocks"),
    }


def _first_index(plan: dict[str, Any]) -> str | None:
    if "Index Name" in plan:
        return str(plan["Index Name"])
    for child in plan.get("Plans", []):
        found = _first_index(child)
        if found:
            return found
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Earn rate on an empty database and with a loaded ledger, in one run.")
    parser.add_argument("--members", type=positive, default=1_000_000,
                        help="members to load (default 1,000,000)")
    parser.add_argument("--rows", type=positive, default=10_000_000,
                        help="ledger rows (transfers) to load, about (default 10,000,000)")
    parser.add_argument("--duration", type=positive, default=60,
                        help="seconds of each Locust phase (default 60)")
    parser.add_argument("--warmup", type=at_least(0), default=0, metavar="SECONDS",
                        help="seconds of the same load before each phase, unmeasured: the "
                             "loaded phase then starts with the buffer cache warm and the "
                             "pages first changed after the load's checkpoint fewer "
                             "(default 0)")
    parser.add_argument("--users", type=positive, default=32,
                        help="concurrent Locust users (default 32)")
    parser.add_argument("--workers", type=positive, default=2,
                        help="loader processes rendering rows (default 2)")
    parser.add_argument("--connections", type=positive, default=2,
                        help="loader connections copying in turn (default 2)")
    parser.add_argument("--vacuum", action=argparse.BooleanOptionalAction, default=True,
                        help="VACUUM (ANALYZE) the loaded tables, as a long-lived database's "
                             "are, rather than ANALYZE alone (default on)")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                        help="run the ledger check after the loaded phase (default on)")
    parser.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a PostgreSQL setting changed with ALTER SYSTEM on the run's "
                             "throwaway cluster before the first phase, to try what a change of "
                             "services/runtime/embedded.py would give (reloadable settings "
                             "only: shared_buffers is fixed on its command line); repeatable")
    parser.add_argument("--sql", action="append", default=[], metavar="STATEMENT",
                        help="a statement run on the run's throwaway cluster before the first "
                             "phase, to try a schema change (a table's fillfactor, an index) "
                             "without a migration; repeatable")
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    started = datetime.now(UTC)
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"at": started.isoformat(timespec="seconds"),
                              "commit": git_commit(), "machine": machine(),
                              "duration_s": args.duration, "warmup_s": args.warmup,
                              "users": args.users}

    with tempfile.TemporaryDirectory(prefix="fuli-scale-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        stack = Stack(data_dir, work / "fuli-up.log", group_commit=True)
        try:
            print(f"scale: starting fuli up on {stack.base_url} (data in {data_dir})",
                  file=sys.stderr)
            admin_key, tenant = stack.wait_ready()
            ingest_key = prepare_tenant(stack.base_url, admin_key)
            postgres = EmbeddedPostgres(data_dir)
            if args.pg_set:
                report["pg_set"] = asyncio.run(alter_system(postgres.url, args.pg_set))
            for statement in args.sql:
                psql(postgres, statement)
            if args.sql:
                report["sql"] = args.sql
            report["postgres"] = server_settings(postgres)

            print(f"scale: empty database, Locust {args.users} users for {args.duration} s",
                  file=sys.stderr)
            empty = locust_phase(stack, ingest_key, args.duration, args.users, EMPTY_MEMBERS,
                                 out_dir / f"scale-{stamp}-empty", postgres, args.warmup)
            report["empty"] = empty

            print(f"scale: loading {args.members:,} members and about {args.rows:,} ledger "
                  "rows", file=sys.stderr)
            plan = loader.Plan(tenant=tenant, members=args.members, rows=args.rows,
                               first_member=EMPTY_MEMBERS + 1, id_prefix="ld-",
                               action=bench.RULE)
            with CpuMeter(stack) as load_cpu:
                report["load"] = asyncio.run(load_state(postgres.url, plan,
                                                        workers=args.workers,
                                                        connections=args.connections,
                                                        vacuum=args.vacuum))
            report["load"]["cpu_s"] = load_cpu.seconds

            print(f"scale: loaded database, Locust {args.users} users for {args.duration} s",
                  file=sys.stderr)
            loaded = locust_phase(stack, ingest_key, args.duration, args.users,
                                  EMPTY_MEMBERS + args.members,
                                  out_dir / f"scale-{stamp}-loaded", postgres, args.warmup)
            report["loaded"] = loaded
            report["ratio"] = round(loaded["events_per_s"] / empty["events_per_s"], 3)
            report["goal"] = GOAL
            # The same comparison in CPU per event: empty's cost over loaded's.
            report["cpu_ratio"] = round(empty["per_event"]["stack_cpu_ms"]
                                        / loaded["per_event"]["stack_cpu_ms"], 3)

            loaded_member = f"bench-m{EMPTY_MEMBERS + args.members // 2}"
            report["record_event_plans"] = {
                "loaded_member": asyncio.run(record_event_plans(postgres.url, tenant,
                                                                loaded_member)),
                "member_of_the_10000": asyncio.run(record_event_plans(postgres.url, tenant,
                                                                      "bench-m1")),
            }
            sizes = asyncio.run(_sizes(postgres.url))
            report["table_sizes"] = sizes
            if args.check:
                print("scale: ledger check", file=sys.stderr)
                report["ledger_check"] = asyncio.run(ledger_check(postgres.url, tenant))
        except BenchError as exc:
            print(f"scale failed: {exc}", file=sys.stderr)
            return 1
        except (subprocess.TimeoutExpired, OSError, httpx.HTTPError, asyncpg.PostgresError,
                loader.LoadError) as exc:
            print(f"scale failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("scale: interrupted", file=sys.stderr)
            return 130
        finally:
            print("scale: stopping fuli up", file=sys.stderr)
            stopped = stack.stop()
        if stopped not in (0, 128 + signal.SIGTERM):
            print(f"scale: note: fuli up exited with status {stopped} on SIGTERM; stderr:\n"
                  f"{tail((work / 'fuli-up.log').read_text(errors='replace'))}", file=sys.stderr)

    report["command"] = command
    text = json.dumps(report, indent=2)
    path = out_dir / f"scale-{stamp}.json"
    path.write_text(text + "\n")
    print(text)
    print(f"scale: written to {path}", file=sys.stderr)
    problems = report.get("ledger_check", {}).get("problems", 0)
    return 1 if problems else 0


async def _sizes(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return await loader.table_sizes(conn)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
