"""The bench suite: the hot path, POST /points/v1/events, with the database ceiling measured
beside it, and the other hot routes of the API as ratios to its earn rate, all in one run.

In one run, on one machine:

1. start `fuli up` on a fresh embedded data directory (what `make run` serves: API and worker,
   real PostgreSQL and Valkey), create an ingest key and the rule `bench` (1 point, no limits);
2. the earn phase: drive POST /points/v1/events with Locust, headless, for --duration seconds,
   sampling the resident memory of the `fuli up` processes (supervisor, API process and worker);
3. once the worker has applied the earn phase's events, pgbench for --duration seconds on the
   same database with the same single-event transaction the API runs (points.record_event):
   the raw database ceiling, measured right after the earn phase so that both see the machine
   alike; then the worker applies pgbench's events;
4. the same requests as the earn phase from light_earn.py, a lighter load generator (unless
   --no-light); then the scenarios (--scenarios, each --scenario-duration seconds, one Locust
   run each; see loadtests/scenarios.py): latency at 80 % of the earn rate, balance and entries
   reads, redemptions, blind-box draws (then the oversell check), red-packet opens, leaderboard
   reads, webhook deliveries, task progress reads and batch ingest; with the batch scenario,
   once the worker has applied what is left in the outbox, pgbench with the batch's
   transaction, 100 events per call of points.record_events;
5. stop the stack and write loadtests/results/bench-<UTC time>.json (and print it).

The machine is shared and noisy: quote ratios measured in one run (events/s / pgbench tps,
each scenario's rate / the earn rate).

    .venv/bin/python loadtests/bench.py --duration 60 --users 32 --pg-clients 16
    .venv/bin/python loadtests/bench.py --scenarios balance,draw --scenario-duration 30
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if __name__ == "__main__":
    # The scenario modules import this file as loadtests.bench: they must get this module, not
    # a second copy whose BenchError the handlers below would not catch.
    sys.modules.setdefault("loadtests.bench", sys.modules[__name__])

from services.runtime.embedded import (  # noqa: E402
    PG_BIN,
    PG_DATABASE,
    PG_SOCKET_PORT,
    PG_SUPERUSER,
    EmbeddedPostgres,
    EmbeddedValkey,
)

LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
ADMIN_KEY = re.compile(r"fuli_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}")
CREATED_TENANT = re.compile(r"Created tenant '([^']+)'")
TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
PG_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
PG_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)
LOCUST_CPU_WARNING = "CPU usage above 90%"
ROW = "POST /points/v1/events"
EARN_USER = "PointsEventsUser"
RULE = "bench"
MEMBERS = 10_000
READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
RSS_SAMPLE_S = 0.5
# What `fuli up`'s children are, by their subcommand; `fuli up` itself is the supervisor.
ROLES = {"serve": "api", "worker": "worker"}
ROLE_NAMES = ("supervisor", "api", "worker")
RSS_GOAL_MIB = 150
# Where the scenarios report whether something was sold beyond its stock.
OVERSELL_CHECKS = (("draw", "oversell"), ("redeem", "stock"))
# A scenario's rate and its unit, the first of these keys its figures have.
RATE_UNITS = (("events_per_s", "events"), ("deliveries_per_s", "deliveries"),
              ("requests_per_s", "requests"))


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Stack:
    """`fuli up` as a child process on a fresh data directory, as `make run` starts it."""

    def __init__(self, data_dir: Path, log_path: Path, *, group_commit: bool,
                 settings: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._stdout: list[str] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
        env.update(
            FULI_DATA_DIR=str(data_dir),
            FULI_PORT=str(self.port),
            FULI_LOG_LEVEL="WARNING",
            # High enough never to throttle the benchmark.
            FULI_RATE_LIMITS="key.default=100000000/60,key.events=100000000/60",
            FULI_EVENT_GROUP_COMMIT=str(group_commit).lower(),
        )
        env.update(settings or {})
        self.env = env
        self._log = open(log_path, "w")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.composition.cli", "up"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    def _failure(self, what: str) -> BenchError:
        return BenchError(f"{what}\n--- fuli up stdout ---\n{tail(self.stdout)}\n"
                          f"--- fuli up stderr ({self.log_path}) ---\n"
                          f"{tail(self.log_path.read_text(errors='replace'))}")

    def wait_ready(self) -> tuple[str, str]:
        """Wait for /health/ready; returns the printed admin key and its tenant."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        with httpx.Client(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise self._failure(f"fuli up exited with status {self.process.returncode}")
                try:
                    if http.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise self._failure(f"fuli up was not ready within {READY_TIMEOUT_S} s")
        # The banner with the key is printed before serving starts; allow the pipe to catch up.
        for _ in range(50):
            key = ADMIN_KEY.search(self.stdout)
            if key:
                tenant = CREATED_TENANT.search(self.stdout)
                return key.group(0), tenant.group(1) if tenant else "default"
            time.sleep(0.1)
        raise self._failure("fuli up printed no admin key (is the data directory fresh?)")

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def fuli_processes(self) -> dict[str, list[psutil.Process]]:
        """`fuli up`'s own processes: the supervisor and its API child ("api"), the worker.
        The embedded servers are its children too (it is their subreaper); they are left out."""
        found: dict[str, list[psutil.Process]] = {"api": [], "worker": []}
        for role, proc in self.roles():
            found["worker" if role == "worker" else "api"].append(proc)
        return found

    def roles(self) -> list[tuple[str, psutil.Process]]:
        """Each of `fuli up`'s own processes with its role: "supervisor" (`fuli up` itself),
        "api" (`fuli serve`) or "worker" (`fuli worker`)."""
        found = []
        for proc in self.processes():
            try:
                cmdline = proc.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "services.composition.cli" in cmdline:
                role = next((ROLES[word] for word in cmdline if word in ROLES), "supervisor")
                found.append((role, proc))
        return found

    def _rss_by_role(self) -> list[tuple[str, int]]:
        found = []
        for role, proc in self.roles():
            try:
                found.append((role, proc.memory_info().rss))
            except psutil.NoSuchProcess:
                pass
        return found

    def rss_mib(self) -> float:
        """Resident memory of all of `fuli up`'s own processes together."""
        return sum(rss for _, rss in self._rss_by_role()) / 2**20

    def largest_rss_mib(self, role: str) -> float:
        """Resident memory of the largest process of ``role``: the goal is per process, and
        --api-processes runs several API processes."""
        return max((rss for found, rss in self._rss_by_role() if found == role),
                   default=0) / 2**20

    def stop(self) -> int | None:
        """SIGTERM and wait (fuli up stops the worker and its embedded servers itself)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"bench: fuli up did not stop within {STOP_TIMEOUT_S} s; killing it",
                      file=sys.stderr)
                for proc in reversed(self.processes()):
                    try:
                        proc.kill()
                    except psutil.NoSuchProcess:
                        pass
                self.process.wait(timeout=10)
                # Its embedded servers outlive a killed owner: stop them as it would have.
                EmbeddedValkey(self.data_dir).stop()
                EmbeddedPostgres(self.data_dir).stop()
        self._reader.join(timeout=5)
        self._log.close()
        return self.process.returncode


class RssSampler:
    """Samples the stack's resident memory in the background."""

    def __init__(self, measure: Callable[[], float]) -> None:
        self._measure = measure
        self._stop = threading.Event()
        self.peak = 0.0
        self.last = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = self._measure()
            self.peak = max(self.peak, self.last)
            self._stop.wait(RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.last = self._measure()
        self.peak = max(self.peak, self.last)


def _own_cpu_s(proc: psutil.Process, *, reaped: bool = False) -> float:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    total = float(times.user + times.system)
    if reaped:  # children it has waited for (PostgreSQL backends that have exited)
        total += times.children_user + times.children_system
    return total


def _tree_cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    return _own_cpu_s(root, reaped=True) + sum(_own_cpu_s(child) for child in children)


class CpuMeter:
    """CPU seconds spent during a phase by each part: the API process, the worker, PostgreSQL,
    Valkey, and the load generator (this process's children reaped within the phase, and with
    ``include_self`` this process too, for load it generates itself)."""

    def __init__(self, stack: Stack, *, include_self: bool = False) -> None:
        self._stack = stack
        self._include_self = include_self
        self._postgres = EmbeddedPostgres(stack.data_dir)
        self._valkey = EmbeddedValkey(stack.data_dir)

    def _snapshot(self) -> dict[str, float]:
        parts = self._stack.fuli_processes()
        api = sum(_own_cpu_s(proc) for proc in parts["api"])
        worker = sum(_own_cpu_s(proc) for proc in parts["worker"])
        generator = [resource.getrusage(resource.RUSAGE_CHILDREN)]
        if self._include_self:
            generator.append(resource.getrusage(resource.RUSAGE_SELF))
        return {
            "api": api,
            "worker": worker,
            "postgres": _tree_cpu_s(self._postgres.running_pid()),
            "valkey": _tree_cpu_s(self._valkey.running_pid()),
            "load_generator": sum(usage.ru_utime + usage.ru_stime for usage in generator),
        }

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        self.seconds: dict[str, float] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        self.exact_seconds = {k: end[k] - self._start[k] for k in end}
        self.seconds = {k: round(v, 1) for k, v in self.exact_seconds.items()}


def prepare_tenant(base_url: str, admin_key: str) -> str:
    """Creates an ingest key and the `bench` rule; returns the ingest key."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=admin, timeout=10) as http:
        created = http.post("/points/v1/keys", json={"role": "ingest", "label": "bench"})
        if created.status_code != 201:
            raise BenchError(f"creating the ingest key failed: {created.status_code} "
                             f"{created.text[:500]}")
        rule = http.put(f"/points/v1/rules/{RULE}", json={"points": 1})
        if rule.status_code != 200:
            raise BenchError(f"creating the rule {RULE!r} failed: {rule.status_code} "
                             f"{rule.text[:500]}")
        return str(created.json()["key"])


def run_locust(stack: Stack, key: str, duration: int, users: int,
               csv_prefix: Path, members: int = MEMBERS) -> dict[str, Any]:
    """The earn phase: PointsEventsUser for `duration` seconds, events to random members out
    of bench-m1 .. bench-m<members>; `events_per_s` is its rate."""
    return locust_figures(stack, key, duration, users, csv_prefix, EARN_USER, ROW,
                          env={"FULI_BENCH_MEMBERS": str(members)}, rate_key="events_per_s")


def run_light(base_url: str, key: str, duration: int, connections: int,
              summary_path: Path) -> dict[str, Any]:
    """The earn phase's requests from light_earn.py, the lighter generator: the ceiling with
    less of the two cores spent on generating load."""
    command = [sys.executable, str(REPO / "loadtests" / "light_earn.py"), "--url",
               base_url, "--key", key, "--duration", str(duration), "--connections",
               str(connections), "--members", str(MEMBERS), "--action", RULE, "--summary",
               str(summary_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                            timeout=duration + 60, check=False)
    if result.returncode != 0 or not summary_path.exists():
        raise BenchError(f"light_earn.py failed (exit {result.returncode}):\n"
                         f"{tail(result.stderr)}")
    figures: dict[str, Any] = json.loads(summary_path.read_text())
    if not figures["requests"]:
        raise BenchError(f"light_earn.py answered no request: {figures}")
    if not figures["failures"]:
        del figures["failure_samples"]
    return figures


def locust_figures(stack: Stack, key: str, duration: int, users: int, csv_prefix: Path,
                   user_class: str, row_name: str, *, env: dict[str, str] | None = None,
                   rate_key: str = "requests_per_s") -> dict[str, Any]:
    """Runs one user class of locustfile.py headless, all users spawned at once, and returns
    the figures of its request `row_name` when it stopped: requests, failures, rate
    (`rate_key`), p50, p99; and the prizes a DrawUser was answered (`prizes_won`)."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
               "--host", stack.base_url, "--users", str(users), "--spawn-rate", str(users),
               "--run-time", f"{duration}s", "--csv", str(csv_prefix), "--only-summary",
               "--loglevel", "WARNING", user_class]
    locust_env = {**os.environ, "FULI_BENCH_KEY": key, "FULI_BENCH_MEMBERS": str(MEMBERS),
                  "FULI_BENCH_ACTION": RULE, **(env or {})}
    summary_path = csv_prefix.with_name(csv_prefix.name + "_summary.json")
    locust_env["FULI_BENCH_SUMMARY"] = str(summary_path)
    result = subprocess.run(command, cwd=REPO, env=locust_env, capture_output=True, text=True,
                            timeout=duration + 120, check=False)
    # Locust exits 1 when any request failed: the figures below still stand and say so.
    if not summary_path.exists():
        raise BenchError(f"locust wrote no summary (exit {result.returncode}):\n"
                         f"{tail(result.stderr)}")
    summary = json.loads(summary_path.read_text())
    row = summary["requests"].get(row_name)
    if row is None or row["requests"] == 0:
        raise BenchError(f"no {row_name!r} requests in {summary_path} "
                         f"(exit {result.returncode}):\n{tail(result.stderr)}")
    figures: dict[str, Any] = {
        "requests": row["requests"],
        "failures": row["failures"],
        rate_key: round(row["requests_per_s"], 1),
        "p50_ms": float(row["p50_ms"]),
        "p99_ms": float(row["p99_ms"]),
    }
    if figures["failures"]:
        figures["failure_samples"] = summary["failure_samples"]
    if summary["prizes_won"]:
        figures["prizes_won"] = summary["prizes_won"]
    if LOCUST_CPU_WARNING in result.stderr:
        # The load generator itself was CPU-bound: the API was not the only limit.
        figures["load_generator_cpu_saturated"] = True
    return figures


def psql(postgres: EmbeddedPostgres, sql: str) -> str:
    result = subprocess.run(
        [str(PG_BIN / "psql"), "-h", str(postgres.socket_dir), "-p", str(PG_SOCKET_PORT),
         "-U", PG_SUPERUSER, "-d", PG_DATABASE, "-tAXc", sql],
        capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise BenchError(f"psql failed: {result.stderr.strip()}")
    return result.stdout.strip()


def outbox_backlog(postgres: EmbeddedPostgres) -> int:
    return int(psql(postgres, "SELECT count(*) FROM fuli.outbox"))


def drain_outbox(postgres: EmbeddedPostgres, timeout: float) -> dict[str, Any]:
    """Waits (at most `timeout` s) until the worker has applied every event in the outbox, so
    that what comes next does not compete with it: the backlog found, what was left, the wait."""
    started = time.monotonic()
    backlog = outbox_backlog(postgres)
    left = backlog
    while left and time.monotonic() - started < timeout:
        time.sleep(0.5)
        left = outbox_backlog(postgres)
    return {"backlog": backlog, "left": left, "drain_s": round(time.monotonic() - started, 1)}


def wait_outbox_drained(postgres: EmbeddedPostgres, timeout: float) -> dict[str, Any]:
    """Lets the worker relay what the Locust phase left, so pgbench does not compete with it."""
    drained = drain_outbox(postgres, timeout)
    return {"backlog_after_locust": drained["backlog"], "left_at_pgbench_start": drained["left"],
            "drain_s": drained["drain_s"]}


def checked_tenant(tenant: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tenant):
        raise BenchError(f"unexpected tenant id {tenant!r}")
    return tenant


def pgbench_script(tenant: str) -> str:
    # What POST /points/v1/events runs for one event, minus HTTP: one call of
    # points.record_event in its own transaction, a new event id each time, a random member.
    return (
        f"\\set m random(1, {MEMBERS})\n"
        f"SELECT * FROM points.record_event('{checked_tenant(tenant)}', "
        "'pgb-' || :client_id || '-' || gen_random_uuid()::text, '\\x00'::bytea, "
        f"'bench-m' || :m, '{RULE}', now(), NULL, NULL, now());\n"
    )


def pgbench_batch_script(tenant: str, events: int) -> str:
    # What POST /points/v1/events/batch runs for `events` events, minus HTTP: one call of
    # points.record_events with arrays of that many new events for random members.
    return (
        f"SELECT count(*) FROM points.record_events('{checked_tenant(tenant)}', "
        f"ARRAY(SELECT 'pgb-' || :client_id || '-' || gen_random_uuid()::text "
        f"FROM generate_series(1, {events})), "
        f"array_fill('\\x00'::bytea, ARRAY[{events}]), "
        f"ARRAY(SELECT 'bench-m' || (1 + floor(random() * {MEMBERS}))::int "
        f"FROM generate_series(1, {events})), "
        f"array_fill('{RULE}'::text, ARRAY[{events}]), array_fill(now(), ARRAY[{events}]), "
        f"array_fill(NULL::bigint, ARRAY[{events}]), array_fill(NULL::jsonb, ARRAY[{events}]), "
        "now());\n"
    )


def run_pgbench(postgres: EmbeddedPostgres, tenant: str, duration: int, clients: int,
                script: Path, *, sql: str | None = None) -> dict[str, Any]:
    """pgbench with `sql` (default: the single-event transaction of pgbench_script) written to
    `script`, `clients` clients for `duration` seconds."""
    binary = PG_BIN / "pgbench"
    if not binary.exists():
        raise BenchError(f"pgbench not found at {binary}")
    script.write_text(pgbench_script(tenant) if sql is None else sql)
    command = [str(binary), "-n", "-h", str(postgres.socket_dir), "-p", str(PG_SOCKET_PORT),
               "-U", PG_SUPERUSER, "-c", str(clients), "-j", str(min(2, clients)),
               "-T", str(duration), "-M", "prepared", "-f", str(script), PG_DATABASE]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120,
                            check=False)
    tps = TPS.search(result.stdout)
    if result.returncode != 0 or tps is None:
        raise BenchError(f"pgbench failed (exit {result.returncode}):\n"
                         f"{tail(result.stdout)}\n{tail(result.stderr)}")
    figures: dict[str, Any] = {"clients": clients, "tps": round(float(tps.group(1)), 1)}
    latency = PG_LATENCY.search(result.stdout)
    if latency:
        figures["latency_avg_ms"] = round(float(latency.group(1)), 2)
    failed = PG_FAILED.search(result.stdout)
    if failed:
        figures["failed_transactions"] = int(failed.group(1))
    figures["command"] = shlex.join(command)
    return figures


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def whole_number(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return number
    return whole_number


positive = at_least(1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from loadtests.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(
        description="Measure POST /points/v1/events against `fuli up`, with pgbench running "
                    "the same transaction on the same database as the ceiling, and the other "
                    "hot routes as ratios to its rate.")
    parser.add_argument("--duration", type=positive, default=30,
                        help="seconds of the earn phase and of pgbench (default 30)")
    parser.add_argument("--users", type=positive, default=32,
                        help="concurrent Locust users, all spawned at once (default 32)")
    parser.add_argument("--pg-clients", type=positive, default=16,
                        help="pgbench clients (default 16)")
    parser.add_argument("--scenarios", default="all",
                        help=f"comma-separated scenarios to run after the earn phase, 'all' "
                             f"(default) or 'none': {', '.join(SCENARIOS)}")
    parser.add_argument("--scenario-duration", type=positive, default=15,
                        help="seconds of each scenario (default 15)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results",
                        help="where the JSON and Locust CSV files go (default loadtests/results)")
    parser.add_argument("--group-commit", action=argparse.BooleanOptionalAction, default=True,
                        help="FULI_EVENT_GROUP_COMMIT of the stack under test (default on)")
    parser.add_argument("--api-processes", type=positive, default=1,
                        help="FULI_WORKERS of the stack under test: API processes serving the "
                             "one socket, each with its own pools and group committer "
                             "(default 1)")
    parser.add_argument("--light", action=argparse.BooleanOptionalAction, default=True,
                        help="after the earn phase, the same requests from light_earn.py, a "
                             "lighter load generator, with --users connections (default on)")
    parser.add_argument("--worker-paused", action="store_true",
                        help="stop the worker during the earn phase and the pgbench phase (a "
                             "diagnostic: the earn path and pgbench without the relay and the "
                             "consumers beside them)")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    if names == ["all"]:
        names = list(SCENARIOS)
    elif names == ["none"]:
        names = []
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.scenarios = names
    return args


def consumer_faults(log: str) -> dict[str, int]:
    """What the worker's log says went wrong in consumers: batches that failed and were
    applied one event at a time, deadlocks, and events the relay had to send again."""
    return {"batch_fallbacks": log.count("batch failed; applying its events one by one"),
            "deadlocks": log.count("DeadlockDetected"),
            "resend_rounds": log.count("sending again events not applied in time")}


def role_memory(idle: dict[str, float],
                samplers: dict[str, RssSampler]) -> dict[str, Any]:
    """Resident memory of each of `fuli up`'s processes over the whole run, against the goal."""
    per_process = {role: {"idle_mib": round(idle[role], 1),
                          "peak_mib": round(sampler.peak, 1),
                          "end_mib": round(sampler.last, 1)}
                   for role, sampler in samplers.items()}
    return {"per_process": per_process,
            "per_process_goal": {
                "target": f"peak_mib <= {RSS_GOAL_MIB} for each process",
                "met": all(p["peak_mib"] <= RSS_GOAL_MIB for p in per_process.values())}}


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the run, where it was met or not."""
    found = [{"figure": f"scenarios.{name}", **figures["goal"]}
             for name, figures in report.get("scenarios", {}).items() if "goal" in figures]
    found.append({"figure": "memory.per_process", **report["memory"]["per_process_goal"]})
    return found


def stack_cpu_ms(cpu_s: dict[str, float], requests: int) -> float:
    """CPU milliseconds the stack (API, worker, PostgreSQL, Valkey) spent per request."""
    return round(1000 * sum(v for k, v in cpu_s.items() if k != "load_generator") / requests, 2)


def summary(report: dict[str, Any]) -> str:
    """A table of the run's figures, each with the load generator's CPU seconds beside it, and
    the stack's CPU per request (steadier than rates when the machine is shared)."""
    earn = report["locust"]
    lines = [f"{'figure':<13}{'rate/s':>10} {'unit':<11}{'p50 ms':>8}{'p99 ms':>8}"
             f"{'fail':>6}{'x earn':>8}{'gen CPU s':>11}{'CPU ms/req':>12}  goal",
             f"{'earn':<13}{earn['events_per_s']:>10} {'events':<11}{earn['p50_ms']:>8}"
             f"{earn['p99_ms']:>8}{earn['failures']:>6}{1:>8}"
             f"{report['cpu_s']['locust_phase']['load_generator']:>11}"
             f"{stack_cpu_ms(report['cpu_s']['locust_phase'], earn['requests']):>12}"]
    light = report.get("light")
    if light is not None:
        lines.append(
            f"{'earn, light':<13}{light['events_per_s']:>10} {'events':<11}{light['p50_ms']:>8}"
            f"{light['p99_ms']:>8}{light['failures']:>6}"
            f"{round(light['events_per_s'] / earn['events_per_s'], 2):>8}"
            f"{light['cpu_s']['load_generator']:>11}"
            f"{stack_cpu_ms(light['cpu_s'], light['requests']):>12}")
    for name, figures in report.get("scenarios", {}).items():
        unit, rate = next((unit, figures[key]) for key, unit in RATE_UNITS if key in figures)
        goal = figures.get("goal")
        lines.append(
            f"{name:<13}{rate:>10} {unit:<11}{figures['p50_ms']:>8}{figures['p99_ms']:>8}"
            f"{figures['failures']:>6}{figures['ratio_to_earn']:>8}"
            f"{figures['load_generator_cpu_s']:>11}"
            f"{stack_cpu_ms(figures['cpu_s'], figures['requests']):>12}  "
            + (f"{goal['target']}: {'met' if goal['met'] else 'NOT met'}" if goal else ""))
    lines.append(f"pgbench: {report['pgbench']['tps']} tps, ratio earn / pgbench "
                 f"{report['ratio']}" + (f" (light generator: {report['ratio_light']})"
                                         if light is not None else ""))
    batch = report.get("scenarios", {}).get("batch")
    if batch is not None:
        lines.append(f"pgbench with batches: {batch['pgbench']['events_per_s']} events/s, "
                     f"ratio batch / pgbench {batch['ratio_to_pgbench']}")
    unapplied = {"pgbench": report["outbox"]["left_at_pgbench_start"]}
    if batch is not None:
        unapplied["pgbench with batches"] = batch["outbox_at_pgbench_start"]["left"]
    for name, left in unapplied.items():
        if left:
            lines.append(f"note: {name} started with {left} events not yet applied: the "
                         f"worker competed with it (the machine was too busy to drain them)")
    memory = report["memory"]["per_process"]
    lines.append("peak RSS MiB: " + ", ".join(f"{role} {m['peak_mib']}"
                                              for role, m in memory.items()))
    if report.get("zero_oversell") is not None:
        lines.append(f"zero oversell: {report['zero_oversell']}")
    return "\n".join(lines)


@contextlib.contextmanager
def worker_paused(stack: Stack, paused: bool) -> Iterator[None]:
    """With ``paused``, the worker is stopped (SIGSTOP) for the block and let go after it: the
    earn path and pgbench then run without the relay and the consumers beside them, whose work
    waits for the pause to end. A diagnostic, not how fuli runs."""
    workers = stack.fuli_processes()["worker"] if paused else []
    for proc in workers:
        proc.suspend()
    try:
        yield
    finally:
        for proc in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.resume()


def main(argv: list[str] | None = None) -> int:
    from loadtests.scenarios import Run, batch_ceiling, run_scenarios

    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    started = datetime.now(UTC)
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    suite: dict[str, dict[str, Any]] = {}

    with tempfile.TemporaryDirectory(prefix="fuli-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        # Private targets for the webhook scenario's receiver on 127.0.0.1.
        stack = Stack(data_dir, work / "fuli-up.log", group_commit=args.group_commit,
                      settings={"FULI_WEBHOOKS_ALLOW_PRIVATE": "true",
                                "FULI_WORKERS": str(args.api_processes)})
        stopped: int | None = None
        try:
            print(f"bench: starting fuli up on {stack.base_url} (data in {data_dir})",
                  file=sys.stderr)
            admin_key, tenant = stack.wait_ready()
            ingest_key = prepare_tenant(stack.base_url, admin_key)
            postgres = EmbeddedPostgres(data_dir)
            idle_rss = stack.rss_mib()
            idle_by_role = {role: stack.largest_rss_mib(role) for role in ROLE_NAMES}

            with contextlib.ExitStack() as sampling:
                by_role = {role: sampling.enter_context(RssSampler(
                    functools.partial(stack.largest_rss_mib, role))) for role in ROLE_NAMES}
                print(f"bench: locust, {args.users} users for {args.duration} s",
                      file=sys.stderr)
                with RssSampler(stack.rss_mib) as rss, CpuMeter(stack) as locust_cpu, \
                        worker_paused(stack, args.worker_paused):
                    locust = run_locust(stack, ingest_key, args.duration, args.users,
                                        out_dir / f"bench-{stamp}")
                if stack.process.poll() is not None:
                    raise stack._failure("fuli up died during the Locust phase")
                running = [role for role, _ in stack.roles()]
                processes = {role: running.count(role) for role in ROLE_NAMES}

                outbox = wait_outbox_drained(postgres, timeout=max(30, 2 * args.duration))
                # pgbench right after the earn phase, so that the ratio of the two compares the
                # machine at nearly the same moment (a shared machine drifts within minutes).
                print(f"bench: pgbench, {args.pg_clients} clients for {args.duration} s",
                      file=sys.stderr)
                with CpuMeter(stack) as pgbench_cpu, worker_paused(stack, args.worker_paused):
                    pgbench = run_pgbench(postgres, tenant, args.duration, args.pg_clients,
                                          work / "record_event.sql")
                # The worker applies pgbench's events before anything else is measured.
                drain_timeout = max(120, 4 * args.duration)
                drained = drain_outbox(postgres, timeout=drain_timeout)
                outbox["backlog_after_pgbench"] = drained["backlog"]
                outbox["drain_after_pgbench_s"] = drained["drain_s"]
                light: dict[str, Any] | None = None
                if args.light:
                    print(f"bench: light generator, {args.users} connections for "
                          f"{args.duration} s", file=sys.stderr)
                    with CpuMeter(stack) as light_cpu, worker_paused(stack, args.worker_paused):
                        light = run_light(stack.base_url, ingest_key, args.duration,
                                          args.users, work / "light.json")
                    light["cpu_s"] = light_cpu.seconds
                    outbox["backlog_after_light"] = drain_outbox(
                        postgres, timeout=drain_timeout)["backlog"]
                if args.scenarios:
                    run = Run(stack=stack, tenant=tenant, admin_key=admin_key,
                              ingest_key=ingest_key, earn_per_s=locust["events_per_s"],
                              duration=args.scenario_duration, users=args.users,
                              pg_clients=args.pg_clients, out_dir=out_dir, stamp=stamp,
                              work=work)
                    suite = run_scenarios(run, args.scenarios)
                    # The batches leave tens of thousands of events, and the batch's pgbench
                    # as many again: the worker applies them before the batch's pgbench run.
                    if "batch" in suite:
                        print(f"bench: pgbench with batches, {args.pg_clients} clients for "
                              f"{args.scenario_duration} s", file=sys.stderr)
                        batch_ceiling(run, suite["batch"], drain_timeout)
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        except (subprocess.TimeoutExpired, OSError, httpx.HTTPError) as exc:
            print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        finally:
            print("bench: stopping fuli up", file=sys.stderr)
            stopped = stack.stop()
        consumers = consumer_faults((work / "fuli-up.log").read_text(errors="replace"))
        # 128 + SIGTERM is `fuli up` unwinding on SIGTERM as it means to; anything else is odd.
        if stopped not in (0, 128 + signal.SIGTERM):
            print(f"bench: note: fuli up exited with status {stopped} on SIGTERM; stderr:\n"
                  f"{tail((work / 'fuli-up.log').read_text(errors='replace'))}", file=sys.stderr)

    report: dict[str, Any] = {
        "at": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": info,
        "duration_s": args.duration,
        "users": args.users,
        "group_commit": args.group_commit,
        "api_processes": args.api_processes,
        "processes": processes,
        "worker_paused": args.worker_paused,
        "locust": locust,
        "pgbench": pgbench,
        "ratio": round(locust["events_per_s"] / pgbench["tps"], 3),
        "light": light,
        "ratio_light": (round(light["events_per_s"] / pgbench["tps"], 3)
                        if light is not None else None),
        "memory": {
            "idle_rss_mib": round(idle_rss, 1),
            "peak_rss_mib": round(rss.peak, 1),
            "end_rss_mib": round(rss.last, 1),
            **role_memory(idle_by_role, by_role),
        },
        "cpu_s": {"locust_phase": locust_cpu.seconds, "pgbench_phase": pgbench_cpu.seconds},
        "outbox": outbox,
        "consumers": consumers,
        "scenario_duration_s": args.scenario_duration,
        "scenarios": suite,
    }
    checked = [suite[name][key]["oversold"] for name, key in OVERSELL_CHECKS if name in suite]
    report["zero_oversell"] = not any(checked) if checked else None
    report["goals"] = goals(report)
    report["command"] = command
    text = json.dumps(report, indent=2)
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(text + "\n")
    print(text)
    print(summary(report), file=sys.stderr)
    print(f"bench: written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
