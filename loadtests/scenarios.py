"""The bench suite's scenarios beyond the earn phase: each sets up its data through the public
API, waits until the worker has applied what came before, then drives one route (one Locust
user class of locustfile.py, one Locust run) for --scenario-duration seconds and reports its rate,
p50, p99, failures and CPU per part, as a ratio to the earn rate of the same run.

bench.py runs them between its earn phase and its pgbench phases; `SCENARIOS` is their order.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from loadtests import tasks_bench, webhooks_bench
from loadtests.bench import (
    MEMBERS,
    ROLE_NAMES,
    ROW,
    BenchError,
    CpuMeter,
    Stack,
    drain_outbox,
    locust_figures,
    pgbench_batch_script,
    run_pgbench,
)
from services.runtime.embedded import (
    PG_DATABASE,
    PG_SOCKET_PORT,
    PG_SUPERUSER,
    EmbeddedPostgres,
)
from tests.support.webhooks import Receiver

MEMBER_POINTS = 100_000  # granted to every member: enough for any run's redemptions and draws
PERK = "suite-perk"
PERK_STOCK = 10_000_000
BOX = "suite-box"
LIMITED_PRIZE = "limited"
# Drawn one time in four, so it runs out after about a hundred draws: the oversell check then
# looks at a prize that sold out under load.
LIMITED_STOCK = 25
# The box's prizes, 1 point a draw (loadtests/request_cost.py draws from the same).
BOX_PRIZES: list[dict[str, Any]] = [
    {"prize_id": LIMITED_PRIZE, "name": "Limited", "kind": "points", "points": 10, "weight": 25,
     "stock": LIMITED_STOCK},
    {"prize_id": "small", "name": "1 point", "kind": "points", "points": 1, "weight": 25},
    {"prize_id": "none", "name": "Thank you", "kind": "nothing", "weight": 50},
]
POOL = "suite-pool"
POOL_PACKETS = 100_000
POOL_POINTS = 1_000_000
CAMPAIGN = "suite-teambuy"
TEAMS = 100
TASK_MEMBERS = 100
# Events advancing the tasks per second of --scenario-duration (450 with the default 15 s): the
# worker applies them before the reads, at well under a hundred a second with 50 tasks.
TASK_EVENTS_PER_S = 30
BATCH_EVENTS = 100
WEBHOOK_EVENTS_PER_S = 100  # events posted per second of --scenario-duration
LATENCY_LOAD = 0.8  # of the earn rate
LATENCY_P99_GOAL_MS = 50.0
DRAIN_TIMEOUT_S = 60
SETUP_TIMEOUT_S = 60
POLL_S = 0.2


@dataclass
class Run:
    """What the scenarios of one run share: the stack, its keys and the earn rate."""

    stack: Stack
    tenant: str
    admin_key: str
    ingest_key: str
    earn_per_s: float
    duration: int
    users: int
    pg_clients: int
    out_dir: Path
    stamp: str
    work: Path
    members_funded: bool = False
    postgres: EmbeddedPostgres = field(init=False)

    def __post_init__(self) -> None:
        self.postgres = EmbeddedPostgres(self.stack.data_dir)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {self.admin_key}"})

    def csv_prefix(self, scenario: str) -> Path:
        return self.out_dir / f"bench-{self.stamp}-{scenario}"


@dataclass(frozen=True)
class Goal:
    text: str
    met: Callable[[dict[str, Any]], bool]


def ratio_at_least(key: str, minimum: float) -> Goal:
    return Goal(f"{key} >= {minimum}", lambda figures: figures[key] >= minimum)


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise BenchError(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json()


def query_row(postgres: EmbeddedPostgres, sql: str, *args: Any) -> asyncpg.Record:
    async def fetch() -> asyncpg.Record:
        conn = await asyncpg.connect(host=str(postgres.socket_dir), port=PG_SOCKET_PORT,
                                     user=PG_SUPERUSER, database=PG_DATABASE)
        try:
            row = await conn.fetchrow(sql, *args)
        finally:
            await conn.close()
        assert row is not None
        return row
    return asyncio.run(fetch())


def measured(run: Run, route: str, figures: dict[str, Any], cpu: CpuMeter, *,
             rate_key: str = "requests_per_s", goal: Goal | None = None) -> dict[str, Any]:
    """A scenario's figures with its ratio to the earn rate, its goal and the CPU per part."""
    seconds = dict(cpu.seconds)
    report = {"route": route, **figures,
              "ratio_to_earn": round(figures[rate_key] / run.earn_per_s, 3)}
    # Less noisy than rates on a shared machine: what each request cost each part.
    report["cpu_ms_per_request"] = {part: round(1000 * spent / figures["requests"], 2)
                                    for part, spent in seconds.items()}
    if goal is not None:
        report["goal"] = {"target": goal.text, "met": goal.met(report)}
    report["load_generator_cpu_s"] = seconds.pop("load_generator")
    report["cpu_s"] = seconds
    return report


def locust_scenario(run: Run, name: str, user_class: str, route: str, *,
                    env: dict[str, str] | None = None, rate_key: str = "requests_per_s",
                    goal: Goal | None = None) -> dict[str, Any]:
    with CpuMeter(run.stack) as cpu:
        figures = locust_figures(run.stack, run.ingest_key, run.duration, run.users,
                                 run.csv_prefix(name), user_class, route, env=env,
                                 rate_key=rate_key)
    return measured(run, route, {"users": run.users, "duration_s": run.duration, **figures},
                    cpu, rate_key=rate_key, goal=goal)


def first_request(run: Run, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request of the scenario's kind before the load, answered 201: what the first one
    costs (scripts loaded, caches filled) stays out of the figures, and is reported apart."""
    started = time.monotonic()
    with httpx.Client(base_url=run.stack.base_url, timeout=60,
                      headers={"Authorization": f"Bearer {run.ingest_key}"}) as http:
        expect(http.post(path, json=body), 201, f"the first request to {path}")
    return {"first_request_ms": round((time.monotonic() - started) * 1000, 1)}


def fund_members(run: Run) -> None:
    """Every member of the earn phase's range gets points (once per run): balances to read and
    points to spend on redemptions and draws."""
    if run.members_funded:
        return
    with run.admin() as http:
        expect(http.post("/points/v1/grants", json={
            "grant_id": f"suite-{run.stamp}", "reason": "bench suite",
            "items": [{"member_id": f"bench-m{n}", "points": MEMBER_POINTS}
                      for n in range(1, MEMBERS + 1)]}), 201, "granting the members' points")
    run.members_funded = True


# --- the scenarios ---------------------------------------------------------------------------

def latency(run: Run) -> dict[str, Any]:
    """Earning events at LATENCY_LOAD of the earn phase's rate, each user paced."""
    target = LATENCY_LOAD * run.earn_per_s
    report = locust_scenario(
        run, "latency", "PacedPointsEventsUser", ROW, rate_key="events_per_s",
        env={"FULI_BENCH_USER_RATE": f"{target / run.users:.4f}"},
        goal=Goal(f"p99_ms <= {LATENCY_P99_GOAL_MS:g}",
                  lambda figures: figures["p99_ms"] <= LATENCY_P99_GOAL_MS))
    return {"target_events_per_s": round(target, 1), **report}


def balance(run: Run) -> dict[str, Any]:
    return locust_scenario(run, "balance", "BalanceReadUser", "GET /points/v1/members/{id}",
                           goal=ratio_at_least("ratio_to_earn", 2.0))


def entries(run: Run) -> dict[str, Any]:
    return locust_scenario(run, "entries", "EntriesReadUser",
                           "GET /points/v1/members/{id}/entries")


def create_perk(run: Run) -> dict[str, Any]:
    fund_members(run)
    with run.admin() as http:
        expect(http.put(f"/rewards/v1/perks/{PERK}", json={
            "name": "Bench perk", "cost_points": 1, "stock": PERK_STOCK}), 200,
            "creating the perk")
    return first_request(run, "/rewards/v1/redemptions", {
        "redemption_id": f"suite-first-{run.stamp}", "member_id": "bench-m1", "sku": PERK})


def redeem(run: Run) -> dict[str, Any]:
    report = locust_scenario(run, "redeem", "RedemptionUser", "POST /rewards/v1/redemptions",
                             env={"FULI_BENCH_TARGET": PERK})
    report["stock"] = perk_stock(run, acknowledged=report["requests"] - report["failures"])
    return report


def perk_stock(run: Run, acknowledged: int) -> dict[str, Any]:
    """The perk's stock after the redemptions, from the API and the database: nothing sold
    beyond it, and sold + unfinished + left = the stock."""
    with run.admin() as http:
        perks = expect(http.get("/rewards/v1/perks"), 200, "reading the perks")["items"]
    left_api = next(perk["stock"] for perk in perks if perk["sku"] == PERK)
    row = query_row(
        run.postgres,
        "SELECT coalesce(sum(r.quantity) FILTER (WHERE r.status IN"
        "  ('completed', 'pending_fulfilment')), 0) AS sold,"
        " coalesce(sum(r.quantity) FILTER (WHERE r.status = 'reserved'), 0) AS unfinished,"
        " (SELECT stock_left FROM rewards.perks WHERE tenant_id = $1 AND sku = $2) AS left"
        " FROM rewards.redemptions r WHERE r.tenant_id = $1 AND r.sku = $2", run.tenant, PERK)
    return {"stock": PERK_STOCK, "acknowledged": acknowledged, "sold": row["sold"],
            "unfinished": row["unfinished"], "left_api": left_api, "left_database": row["left"],
            "oversold": max(acknowledged, row["sold"]) > PERK_STOCK,
            "adds_up": (row["sold"] + row["unfinished"] + row["left"] == PERK_STOCK
                        and left_api == row["left"])}


def create_box(run: Run) -> dict[str, Any]:
    fund_members(run)
    with run.admin() as http:
        expect(http.put(f"/rewards/v1/boxes/{BOX}", json={
            "name": "Bench box", "cost_points": 1, "prizes": BOX_PRIZES}),
            200, "creating the box")
    return first_request(run, f"/rewards/v1/boxes/{BOX}/draws", {
        "draw_id": f"suite-first-{run.stamp}", "member_id": "bench-m1"})


def draw(run: Run) -> dict[str, Any]:
    report = locust_scenario(run, "draw", "DrawUser", "POST /rewards/v1/boxes/{id}/draws",
                             env={"FULI_BENCH_TARGET": BOX},
                             goal=ratio_at_least("ratio_to_earn", 0.3))
    won = report.get("prizes_won", {})
    report["oversell"] = box_oversell(run, acknowledged=int(won.get(LIMITED_PRIZE, 0)))
    return report


def box_oversell(run: Run, acknowledged: int) -> dict[str, Any]:
    """The limited prize after the draws: won as the API answered the draws (`acknowledged`),
    as the box's stats count it and as the database records it, never beyond its stock; and
    won + unfinished + left = the stock."""
    with run.admin() as http:
        definition = expect(http.get(f"/rewards/v1/boxes/{BOX}"), 200, "reading the box")
        stats = expect(http.get(f"/rewards/v1/boxes/{BOX}/stats"), 200, "reading its stats")
    left_api = next(prize["stock"] for prize in definition["definition"]["prizes"]
                    if prize["prize_id"] == LIMITED_PRIZE)
    observed = next(prize["observed"] for prize in stats["prizes"]
                    if prize["prize_id"] == LIMITED_PRIZE)
    row = query_row(
        run.postgres,
        # A drawn prize is taken from the stock; a draw released after the pick gives it back.
        "SELECT count(*) FILTER (WHERE d.status = 'completed') AS won,"
        " count(*) FILTER (WHERE d.status = 'drawn') AS unfinished,"
        " (SELECT stock_left FROM rewards.box_prizes"
        "  WHERE tenant_id = $1 AND box_id = $2 AND prize_id = $3) AS left"
        " FROM rewards.draws d WHERE d.tenant_id = $1 AND d.box_id = $2 AND d.prize_id = $3",
        run.tenant, BOX, LIMITED_PRIZE)
    return {"prize_id": LIMITED_PRIZE, "stock": LIMITED_STOCK,
            "won_acknowledged": acknowledged, "won_stats_api": observed,
            "won_database": row["won"], "unfinished": row["unfinished"],
            "left_api": left_api, "left_database": row["left"], "sold_out": row["left"] == 0,
            "oversold": max(acknowledged, observed, row["won"]) > LIMITED_STOCK,
            "adds_up": (row["won"] + row["unfinished"] + row["left"] == LIMITED_STOCK
                        and left_api == row["left"])}


def create_pool(run: Run) -> dict[str, Any]:
    with run.admin() as http:
        expect(http.post("/rewards/v1/pools", json={
            "pool_id": POOL, "name": "Bench pool", "total_points": POOL_POINTS,
            "packets": POOL_PACKETS, "per_member_opens": 1000,
            "ends_at": "2099-01-01T00:00:00Z"}), 201, "creating the pool")
    return first_request(run, f"/rewards/v1/pools/{POOL}/opens", {
        "open_id": f"suite-first-{run.stamp}", "member_id": "bench-m1"})


def open_packets(run: Run) -> dict[str, Any]:
    report = locust_scenario(run, "open", "PoolOpenUser", "POST /rewards/v1/pools/{id}/opens",
                             env={"FULI_BENCH_TARGET": POOL})
    with run.admin() as http:
        pool = expect(http.get(f"/rewards/v1/pools/{POOL}"), 200, "reading the pool")
    taken = query_row(run.postgres, "SELECT count(*) AS opens FROM rewards.pool_opens"
                      " WHERE tenant_id = $1 AND pool_id = $2 AND status <> 'failed'",
                      run.tenant, POOL)["opens"]
    # Opens the server took while Locust stopped are not among the acknowledged ones.
    report["packets"] = {"packets": POOL_PACKETS,
                         "acknowledged": report["requests"] - report["failures"],
                         "taken_database": taken, "left_api": pool["remaining_packets"],
                         "adds_up": taken + pool["remaining_packets"] == POOL_PACKETS}
    return report


def form_teams(run: Run) -> None:
    """TEAMS teams of two, each member's purchase scored; waits until the board shows all."""
    ingest = {"Authorization": f"Bearer {run.ingest_key}"}
    with run.admin() as http:
        expect(http.put(f"/rewards/v1/campaigns/{CAMPAIGN}", json={
            "name": "Bench team-buy", "team_sizes": [2], "starts_at": "2020-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z"}), 200, "creating the campaign")
        purchases = []
        for team in range(1, TEAMS + 1):
            captain, mate = f"bench-m{2 * team - 1}", f"bench-m{2 * team}"
            expect(http.post(f"/rewards/v1/campaigns/{CAMPAIGN}/teams", headers=ingest, json={
                "team_id": f"team-{team}", "captain_member_id": captain, "size": 2}), 201,
                "forming a team")
            expect(http.post(f"/rewards/v1/campaigns/{CAMPAIGN}/teams/team-{team}/members",
                             headers=ingest, json={"member_id": mate}), 201, "joining a team")
            purchases += [{"event_id": f"suite-buy-{member}", "member_id": member,
                           "action": "purchase", "amount_cents": 100 * (team + n)}
                          for n, member in enumerate((captain, mate))]
        answer = expect(http.post("/points/v1/events/batch", headers=ingest,
                                  json={"events": purchases}), 200, "posting the purchases")
        refused = [item for item in answer["items"] if item["status_code"] != 201]
        if refused:
            raise BenchError(f"{len(refused)} purchases refused, e.g. {refused[0]}")
        # The worker scores the purchases; the board shows every team once it has.
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while len(expect(http.get(f"/rewards/v1/campaigns/{CAMPAIGN}/leaderboard?limit=100"),
                         200, "reading the leaderboard")["items"]) < TEAMS:
            if time.monotonic() > deadline:
                raise BenchError(f"the leaderboard did not show {TEAMS} teams within "
                                 f"{SETUP_TIMEOUT_S} s")
            time.sleep(POLL_S)


def leaderboard(run: Run) -> dict[str, Any]:
    report = locust_scenario(run, "leaderboard", "LeaderboardReadUser",
                             "GET /rewards/v1/campaigns/{id}/leaderboard",
                             env={"FULI_BENCH_TARGET": CAMPAIGN},
                             goal=ratio_at_least("ratio_to_earn", 2.0))
    return {"teams": TEAMS, **report}


def webhooks(run: Run) -> dict[str, Any]:
    """webhooks_bench's measurement: events posted in batches, every delivery received and
    verified by a receiver in this process; the delivery lag from the database."""
    receiver = Receiver(behaviour=lambda _id, _n: (204, 0.0, {})).start()
    try:
        ingest_key = webhooks_bench.prepare(run.stack.base_url, run.admin_key, receiver, 1)
        events = WEBHOOK_EVENTS_PER_S * run.duration
        options = argparse.Namespace(events=events, members=1000, endpoints=1, batch=100,
                                     concurrency=8)
        with CpuMeter(run.stack, include_self=True) as cpu:
            figures = asyncio.run(webhooks_bench.measure(run.stack, ingest_key, receiver,
                                                         options))
    finally:
        receiver.stop()
    lag = query_row(
        run.postgres,
        "SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered,"
        " count(*) FILTER (WHERE status <> 'delivered') AS undelivered,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY delivered_at - created_at) AS p50,"
        " percentile_cont(0.99) WITHIN GROUP (ORDER BY delivered_at - created_at) AS p99"
        " FROM webhooks.deliveries WHERE tenant_id = $1", run.tenant)
    disable_endpoints(run)
    return measured(run, "webhook deliveries (POST to the receiver)", {
        "events": events, "deliveries": figures["deliveries"], "requests": figures["requests"],
        "failures": lag["undelivered"], "deliveries_per_s": figures["deliveries_per_s"],
        # From a delivery's row (the event applied) until the receiver's answer was recorded.
        "p50_ms": round(lag["p50"].total_seconds() * 1000, 1),
        "p99_ms": round(lag["p99"].total_seconds() * 1000, 1),
        "delivery_seconds": figures["delivery_seconds"],
        "batch_earn_events_per_s": figures["earn"]["events_per_s"]},
        cpu, rate_key="deliveries_per_s")


def disable_endpoints(run: Run) -> None:
    """Later scenarios' events are not for the receiver, which is gone."""
    with run.admin() as http:
        for endpoint in expect(http.get("/webhooks/v1/endpoints"), 200,
                               "listing the endpoints")["items"]:
            expect(http.patch(f"/webhooks/v1/endpoints/{endpoint['endpoint_id']}",
                              json={"enabled": False}), 200, "disabling an endpoint")


def define_tasks(run: Run) -> None:
    """tasks_bench's 50 tasks, and events that advance them for TASK_MEMBERS members (the
    worker applies them before the reads start)."""
    ingest_key = tasks_bench.prepare_tenant(run.stack.base_url, run.admin_key,
                                            tasks_bench.TASKS, all_manual=False)
    events = tasks_bench.make_events(TASK_EVENTS_PER_S * run.duration, TASK_MEMBERS,
                                     days=7, rng=random.Random(14), run=run.stamp)
    asyncio.run(tasks_bench.post_events(run.stack.base_url, ingest_key, events, batch=500,
                                        concurrency=2))


def tasks(run: Run) -> dict[str, Any]:
    """The members' task lists read; the tasks are disabled afterwards, so later events do not
    advance them."""
    progress = query_row(run.postgres, "SELECT count(*) AS rows,"
                         " count(*) FILTER (WHERE completed_at IS NOT NULL) AS completed"
                         " FROM rewards.task_progress WHERE tenant_id = $1", run.tenant)
    report = locust_scenario(run, "tasks", "TaskProgressReadUser",
                             "GET /rewards/v1/members/{id}/tasks",
                             env={"FULI_BENCH_MEMBERS": str(TASK_MEMBERS)})
    with run.admin() as http:
        for task_id, body in tasks_bench.task_definitions():
            expect(http.put(f"/rewards/v1/tasks/{task_id}", json={**body, "enabled": False}),
                   200, f"disabling the task {task_id}")
    return {"tasks": tasks_bench.TASKS, "members": TASK_MEMBERS,
            "progress_rows": progress["rows"], "completed": progress["completed"], **report}


def batch(run: Run) -> dict[str, Any]:
    """POST /points/v1/events/batch with BATCH_EVENTS events each; its pgbench counterpart
    runs after the earn phase's pgbench (batch_ceiling)."""
    report = locust_scenario(run, "batch", "BatchEventsUser", "POST /points/v1/events/batch",
                             env={"FULI_BENCH_BATCH": str(BATCH_EVENTS)})
    events_per_s = round(report["requests_per_s"] * BATCH_EVENTS, 1)
    report["events_per_request"] = BATCH_EVENTS
    report["events_per_s"] = events_per_s
    report["ratio_to_earn"] = round(events_per_s / run.earn_per_s, 3)
    return report


def batch_ceiling(run: Run, report: dict[str, Any], drain_timeout: float) -> None:
    """pgbench with the batch's transaction, one points.record_events call of BATCH_EVENTS
    events each, against the batch scenario's events per second; once the worker has applied
    the scenarios' events, as the API's batches found it idle."""
    report["outbox_at_pgbench_start"] = drain_outbox(run.postgres, drain_timeout)
    with CpuMeter(run.stack) as cpu:
        pgbench = run_pgbench(run.postgres, run.tenant, run.duration, run.pg_clients,
                              run.work / "record_events.sql",
                              sql=pgbench_batch_script(run.tenant, BATCH_EVENTS))
    pgbench["events_per_s"] = round(pgbench["tps"] * BATCH_EVENTS, 1)
    pgbench["cpu_s"] = cpu.seconds
    report["pgbench"] = pgbench
    report["ratio_to_pgbench"] = round(report["events_per_s"] / pgbench["events_per_s"], 3)
    goal = ratio_at_least("ratio_to_pgbench", 0.5)
    report["goal"] = {"target": goal.text, "met": goal.met(report)}


@dataclass(frozen=True)
class Scenario:
    """`prepare` sets up its data (before the wait for the worker, which applies what the
    set-up sent) and may return figures of its own; `measure` drives the load and returns the
    figures."""

    measure: Callable[[Run], dict[str, Any]]
    prepare: Callable[[Run], dict[str, Any] | None] | None = None


# The order they run in: reads and rewards first; the batch last, since the worker needs a while
# to apply the many events it leaves (bench.py waits for that before its pgbench runs).
SCENARIOS: dict[str, Scenario] = {
    "latency": Scenario(latency),
    "balance": Scenario(balance, fund_members),
    "entries": Scenario(entries, fund_members),
    "redeem": Scenario(redeem, create_perk),
    "draw": Scenario(draw, create_box),
    "open": Scenario(open_packets, create_pool),
    "leaderboard": Scenario(leaderboard, form_teams),
    "webhooks": Scenario(webhooks),
    "tasks": Scenario(tasks, define_tasks),
    "batch": Scenario(batch),
}


def run_scenarios(run: Run, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each of `names` in SCENARIOS' order: its set-up, then once the worker has applied what
    came before, its load; with its set-up time, the outbox left at its start and `fuli up`'s
    memory per process at its end."""
    results: dict[str, dict[str, Any]] = {}
    for name in [name for name in SCENARIOS if name in names]:
        scenario = SCENARIOS[name]
        print(f"bench: scenario {name}, {run.duration} s", file=sys.stderr)
        started = time.monotonic()
        prepared = scenario.prepare(run) if scenario.prepare is not None else None
        drained = drain_outbox(run.postgres, DRAIN_TIMEOUT_S)
        setup_s = round(time.monotonic() - started, 1)
        report = scenario.measure(run)
        if run.stack.process.poll() is not None:
            raise run.stack._failure(f"fuli up died during the scenario {name}")
        report.update(prepared or {})
        report["setup_s"] = setup_s
        report["outbox_at_start"] = drained
        report["rss_end_mib"] = {role: round(run.stack.largest_rss_mib(role), 1)
                                 for role in ROLE_NAMES}
        results[name] = report
    return results
