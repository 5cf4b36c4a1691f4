"""Benchmark of the task consumer: events per second through `rewards.advance_tasks` with 50
active tasks in one tenant, as a ratio to the points earn rate measured in the same run.

In one run, on one machine:

1. start `fuli up` on a fresh embedded data directory (bench.py's Stack: API and worker, real
   PostgreSQL and Valkey); make an operator and an ingest key, rules for the benchmark's
   actions (1 point, no limits), the blind box and the perk task rewards pay, and 50 tasks of
   every kind (once, daily, weekly, monthly, streak) over five actions, some with attributes or
   a minimum amount, some chained with `after`, some claimed manually (--tasks N: the first N
   of them; --all-manual: every one claimed manually, so nothing is paid while counting);
2. post --events events for --members members through POST /points/v1/events/batch
   (--concurrency batches of --batch in flight), their `occurred_at` spread over the last
   --days days: (a) the earn rate, events accepted per second by the API;
3. meanwhile count the task consumer's inbox rows in PostgreSQL until every event is applied:
   (b) events per second through the task consumer, from the first event posted to the last one
   applied (with --backlog the worker only starts once every event is posted, and (b) runs from
   its start: the consumer's own ceiling rather than whether it keeps up);
4. wait for the completions' automatic rewards to be paid, stop the stack and write
   loadtests/results/tasks-bench-<UTC time>.json (and print it). Quote the ratio b/a.

    .venv/bin/python loadtests/tasks_bench.py --events 20000 --members 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests.bench import (  # noqa: E402
    STOP_TIMEOUT_S,
    BenchError,
    CpuMeter,
    Stack,
    consumer_faults,
    git_commit,
    machine,
    positive,
    tail,
)
from services.runtime.embedded import (  # noqa: E402
    PG_DATABASE,
    PG_SOCKET_PORT,
    PG_SUPERUSER,
    EmbeddedPostgres,
)

TASK_CONSUMER = "rewards.advance_tasks"
# Another consumer of the same ActionRecorded events, for reference: tiers' activity counts.
REFERENCE_CONSUMER = "tiers.record_activity"
TASKS = 50
KINDS = ("once", "daily", "weekly", "monthly", "streak")
RULE_ACTIONS = ("bench_view", "bench_share", "bench_checkin")
EVENT_ACTIONS = (*RULE_ACTIONS, "purchase")
# Actions of other services' events: tasks on them are active but the load never matches them.
OTHER_ACTIONS = ("group_joined", "coupon_used")
CHANNELS = ("app", "mini")
BOX = "bench-box"
PERK = "bench-perk"
POLL_S = 0.2
SETTLE_TIMEOUT_S = 120


def task_definitions(all_manual: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """50 tasks, every kind and action, some conditions narrowed, chains, manual claims (all of
    them with ``all_manual``: nothing is paid while the events are applied)."""
    tasks: list[tuple[str, dict[str, Any]]] = []
    for i in range(TASKS):
        kind = KINDS[i % len(KINDS)]
        action = OTHER_ACTIONS[i // 10 % 2] if i % 10 == 9 else EVENT_ACTIONS[i % 4]
        condition: dict[str, Any] = {"action": action,
                                     "count": 1 if kind == "streak" else 1 + i // 5 % 3}
        if i % 3 == 0 and action in EVENT_ACTIONS:
            condition["attributes"] = {"channel": "app"}
        if action == "purchase" and i % 8 == 3:
            condition["min_amount_cents"] = 5000
        if i % 6 == 0:
            reward: dict[str, Any] = {"tickets": {"box_id": BOX, "count": 1}}
        elif i % 6 == 3:
            reward = {"perk": PERK}
        else:
            reward = {"points": 1 + i % 10}
        body: dict[str, Any] = {"name": f"Bench task {i}", "kind": kind,
                                "condition": condition, "reward": reward,
                                "claim": "manual" if all_manual or i % 7 == 0 else "auto"}
        if kind == "streak":
            body["streak_days"] = 2 + i % 6
        if i >= 10 and i % 4 == 1:
            body["after"] = f"bench-task-{i - 10}"
        tasks.append((f"bench-task-{i}", body))
    return tasks


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{what}: {response.status_code} {response.text[:500]}")
    return dict(response.json())


def prepare_tenant(base_url: str, admin_key: str, tasks: int, all_manual: bool) -> str:
    """Keys, rules, the box and perk rewards pay, the first ``tasks`` of the 50 tasks (each
    comes after an earlier one, if any); returns the ingest key."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        admin = {"Authorization": f"Bearer {admin_key}"}
        keys = {role: expect(http.post("/points/v1/keys", headers=admin,
                                       json={"role": role, "label": "tasks bench"}),
                             201, f"creating the {role} key")["key"]
                for role in ("ingest", "operator")}
        for action in RULE_ACTIONS:
            expect(http.put(f"/points/v1/rules/{action}", headers=admin, json={"points": 1}),
                   200, f"creating the rule {action!r}")
        operator = {"Authorization": f"Bearer {keys['operator']}"}
        expect(http.put(f"/rewards/v1/boxes/{BOX}", headers=operator, json={
            "name": "Bench box", "cost_points": 0,
            "prizes": [{"prize_id": "none", "name": "Thank you", "kind": "nothing",
                        "weight": 1}]}), 200, "creating the box")
        expect(http.put(f"/rewards/v1/perks/{PERK}", headers=operator,
                        json={"name": "Bench perk", "cost_points": 100}),
               200, "creating the perk")
        for task_id, body in task_definitions(all_manual)[:tasks]:
            expect(http.put(f"/rewards/v1/tasks/{task_id}", headers=operator, json=body),
                   200, f"creating the task {task_id!r}")
        return str(keys["ingest"])


def make_events(count: int, members: int, days: int, rng: random.Random,
                run: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        action = rng.choice(EVENT_ACTIONS)
        event: dict[str, Any] = {
            "event_id": f"tb-{run}-{n}",
            "member_id": f"bench-m{rng.randrange(members)}",
            "action": action,
            # Inside the last `days` days, a minute clear of now (no clock-skew refusals).
            "occurred_at": (now - timedelta(seconds=rng.uniform(60, days * 86400))).isoformat(),
            "attributes": {"channel": rng.choice(CHANNELS)},
        }
        if action == "purchase":
            event["amount_cents"] = rng.randrange(1000, 30000)
        events.append(event)
    return events


async def post_events(base_url: str, key: str, events: list[dict[str, Any]], batch: int,
                      concurrency: int) -> dict[str, Any]:
    """Posts the events in batches, `concurrency` at once; every one must be accepted (201)."""
    batches = [events[i:i + batch] for i in range(0, len(events), batch)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for item in batches:
        queue.put_nowait(item)
    refused: list[str] = []

    async def sender(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            chunk = queue.get_nowait()
            response = await http.post("/points/v1/events/batch", json={"events": chunk})
            if response.status_code != 200:
                raise BenchError(f"a batch answered {response.status_code}: "
                                 f"{response.text[:500]}")
            refused.extend(f"{item['status_code']} {item.get('error')}"
                           for item in response.json()["items"] if item["status_code"] != 201)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        started = time.monotonic()
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
        seconds = time.monotonic() - started
    if refused:
        raise BenchError(f"{len(refused)} events were not accepted, e.g. {refused[:5]}")
    return {"batches": len(batches), "seconds": round(seconds, 2),
            "events_per_s": round(len(events) / seconds, 1)}


class Inbox:
    """Counts what a consumer applied for the tenant, from its inbox rows."""

    def __init__(self, conn: asyncpg.Connection, tenant: str) -> None:
        self.conn = conn
        self.tenant = tenant

    async def applied(self, consumer: str) -> int:
        return int(await self.conn.fetchval(
            "SELECT count(*) FROM fuli.inbox WHERE tenant_id = $1 AND consumer = $2",
            self.tenant, consumer))

    async def span_s(self, consumer: str) -> float:
        """Between the first and the last transaction start that applied events."""
        return float(await self.conn.fetchval(
            "SELECT coalesce(extract(epoch FROM max(processed_at) - min(processed_at)), 0)"
            " FROM fuli.inbox WHERE tenant_id = $1 AND consumer = $2",
            self.tenant, consumer))


async def wait_applied(inbox: Inbox, consumers: tuple[str, ...], count: int, since: float,
                       limit_s: float) -> dict[str, float]:
    """Seconds from `since` (a monotonic time) until each consumer had applied `count` events."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + limit_s
    while len(done) < len(consumers):
        for consumer in consumers:
            if consumer not in done and await inbox.applied(consumer) >= count:
                done[consumer] = time.monotonic() - since
        if len(done) < len(consumers):
            if time.monotonic() > deadline:
                left = {c: count - await inbox.applied(c) for c in consumers if c not in done}
                raise BenchError(f"not applied within {limit_s:.0f} s: {left}")
            await asyncio.sleep(POLL_S)
    return done


async def task_outcomes(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """Completions and payments, once every automatic reward is paid (or the wait ran out)."""
    query = ("SELECT count(*) FILTER (WHERE completed_at IS NOT NULL) AS completed,"
             " count(*) FILTER (WHERE rewarded_at IS NOT NULL) AS rewarded,"
             " count(*) FILTER (WHERE completed_at IS NOT NULL AND rewarded_at IS NULL"
             "                  AND manual) AS waiting_claim,"
             " count(*) FILTER (WHERE completed_at IS NOT NULL AND rewarded_at IS NULL"
             "                  AND NOT manual) AS unpaid,"
             " count(DISTINCT member_id) AS members_started"
             " FROM rewards.task_progress WHERE tenant_id = $1")
    started = time.monotonic()
    row = await conn.fetchrow(query, tenant)
    while row["unpaid"] and time.monotonic() - started < SETTLE_TIMEOUT_S:
        await asyncio.sleep(0.5)
        row = await conn.fetchrow(query, tenant)
    return {**dict(row), "paid_within_s": round(time.monotonic() - started, 1)}


class Worker:
    """`fuli worker` alone, on the stack's servers (for --backlog: `fuli up` runs without)."""

    def __init__(self, stack: Stack, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # closed in stop()
        env = {**stack.env, "FULI_WORKER": "true"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.composition.cli", "worker"], cwd=REPO, env=env,
            stdout=self._log, stderr=subprocess.STDOUT)

    def cpu_s(self) -> float:
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


async def measure(stack: Stack, tenant: str, ingest_key: str, args: argparse.Namespace,
                  work: Path) -> dict[str, Any]:
    postgres = EmbeddedPostgres(stack.data_dir)
    conn = await asyncpg.connect(host=str(postgres.socket_dir), port=PG_SOCKET_PORT,
                                 user=PG_SUPERUSER, database=PG_DATABASE)
    worker: Worker | None = None
    try:
        inbox = Inbox(conn, tenant)
        rng = random.Random(args.seed)
        events = make_events(args.events, args.members, args.days, rng,
                             f"{int(time.time())}{rng.randrange(10**6)}")
        consumers = (TASK_CONSUMER, REFERENCE_CONSUMER)
        before = {c: await inbox.applied(c) for c in consumers}
        if any(before.values()):
            raise BenchError(f"the tenant's inbox is not empty: {before}")

        print(f"tasks bench: posting {args.events} events for {args.members} members",
              file=sys.stderr)
        own_cpu = time.process_time()
        with CpuMeter(stack) as cpu:
            posted_at = time.monotonic()
            earn = await post_events(stack.base_url, ingest_key, events, args.batch,
                                     args.concurrency)
            at_post_end = await inbox.applied(TASK_CONSUMER)
            since = posted_at
            if args.backlog:
                print("tasks bench: every event posted; starting the worker", file=sys.stderr)
                worker = Worker(stack, work / "worker.log")
                since = time.monotonic()
            print("tasks bench: waiting for the consumers", file=sys.stderr)
            done = await wait_applied(inbox, consumers, args.events, since, args.timeout)
        cpu.seconds["load_generator"] = round(time.process_time() - own_cpu, 1)
        if worker is not None:
            cpu.seconds["worker"] = round(worker.cpu_s(), 1)

        tasks_s = done[TASK_CONSUMER]
        reference_s = done[REFERENCE_CONSUMER]
        figures: dict[str, Any] = {
            "earn": earn,
            "task_consumer": {
                "consumer": TASK_CONSUMER,
                "seconds": round(tasks_s, 2),
                "events_per_s": round(args.events / tasks_s, 1),
                "applied_when_posting_ended": at_post_end,
                "applied_span_s": round(await inbox.span_s(TASK_CONSUMER), 2),
            },
            "reference_consumer": {
                "consumer": REFERENCE_CONSUMER,
                "seconds": round(reference_s, 2),
                "events_per_s": round(args.events / reference_s, 1),
            },
            "cpu_s": cpu.seconds,
        }
        figures["ratio"] = round(
            figures["task_consumer"]["events_per_s"] / earn["events_per_s"], 3)
        print("tasks bench: waiting for the rewards to be paid", file=sys.stderr)
        figures["tasks"] = await task_outcomes(conn, tenant)
        figures["tasks"]["completions_per_event"] = round(
            figures["tasks"]["completed"] / args.events, 2)
        return figures
    finally:
        await conn.close()
        if worker is not None:
            worker.stop()


def task_count(value: str) -> int:
    number = int(value)
    if not 0 <= number <= TASKS:
        raise argparse.ArgumentTypeError(f"must be 0 to {TASKS}")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure events per second through the task consumer (50 active tasks) "
                    "against the points earn rate, in one run against `fuli up`.")
    parser.add_argument("--events", type=positive, default=20_000,
                        help="events to post (default 20000)")
    parser.add_argument("--members", type=positive, default=2_000,
                        help="members the events are spread over (default 2000)")
    parser.add_argument("--days", type=positive, default=7,
                        help="occurred_at spread over the last DAYS days (default 7)")
    parser.add_argument("--batch", type=positive, default=500,
                        help="events per POST /points/v1/events/batch (default 500, max 1000)")
    parser.add_argument("--concurrency", type=positive, default=4,
                        help="batches in flight at once (default 4)")
    parser.add_argument("--tasks", type=task_count, default=TASKS, metavar="N",
                        help=f"define only the first N of the {TASKS} tasks (0: the consumer's "
                             f"baseline; default {TASKS})")
    parser.add_argument("--backlog", action="store_true",
                        help="run fuli up without its worker and start one only once every "
                             "event is posted: the consumer's ceiling")
    parser.add_argument("--all-manual", action="store_true",
                        help="every task claimed manually: the consumer counts and completes "
                             "but pays nothing (what paying costs is the difference)")
    parser.add_argument("--timeout", type=positive, default=900,
                        help="seconds to wait for the consumers (default 900)")
    parser.add_argument("--seed", type=int, default=14, help="random seed of the events")
    parser.add_argument("--setting", action="append", default=[], metavar="FULI_NAME=VALUE",
                        help="a setting of the stack under test (repeatable)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results",
                        help="where the JSON goes (default loadtests/results)")
    args = parser.parse_args(argv)
    if args.batch > 1000:
        parser.error("--batch is at most 1000")
    if any(not item.startswith("FULI_") or "=" not in item for item in args.setting):
        parser.error("--setting takes FULI_NAME=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    started = datetime.now(UTC)
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()

    with tempfile.TemporaryDirectory(prefix="fuli-tasks-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        settings = dict(item.split("=", 1) for item in args.setting)
        if args.backlog:
            settings["FULI_WORKER"] = "false"
        stack = Stack(data_dir, work / "fuli-up.log", group_commit=True, settings=settings)
        stopped: int | None = None
        try:
            print(f"tasks bench: starting fuli up on {stack.base_url} (data in {data_dir})",
                  file=sys.stderr)
            admin_key, tenant = stack.wait_ready()
            ingest_key = prepare_tenant(stack.base_url, admin_key, args.tasks, args.all_manual)
            figures = asyncio.run(measure(stack, tenant, ingest_key, args, work))
            if stack.process.poll() is not None:
                raise stack._failure("fuli up died during the run")
        except BenchError as exc:
            print(f"tasks bench failed: {exc}", file=sys.stderr)
            return 1
        except (subprocess.TimeoutExpired, OSError, httpx.HTTPError,
                asyncpg.PostgresError) as exc:
            print(f"tasks bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("tasks bench: interrupted", file=sys.stderr)
            return 130
        finally:
            print("tasks bench: stopping fuli up", file=sys.stderr)
            stopped = stack.stop()
        logs = "".join(path.read_text(errors="replace")
                       for path in (work / "fuli-up.log", work / "worker.log") if path.exists())
        consumers = consumer_faults(logs)
        if stopped not in (0, 128 + signal.SIGTERM):
            print(f"tasks bench: note: fuli up exited with status {stopped} on SIGTERM:\n"
                  f"{tail(logs)}", file=sys.stderr)

    report = {
        "at": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": info,
        "events": args.events,
        "members": args.members,
        "days": args.days,
        "tasks_defined": args.tasks,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "backlog": args.backlog,
        "all_manual": args.all_manual,
        "settings": args.setting,
        **figures,
        "consumers": consumers,
        "command": command,
    }
    text = json.dumps(report, indent=2)
    path = out_dir / f"tasks-bench-{stamp}.json"
    path.write_text(text + "\n")
    print(text)
    print(f"tasks bench: written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
