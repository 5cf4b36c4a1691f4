"""uvicorn against granian, side by side: the API process `fuli up` runs (uvicorn with httptools
and uvloop) and a granian server of the same app on the same database and Valkey, each sent the
earn path's requests by light_earn.py in turn, round after round, with the CPU each server
spent per event. granian is not a dependency of fuli: install it into .venv first.

    .venv/bin/pip install granian
    .venv/bin/python loadtests/asgi_servers.py --duration 20 --rounds 3 --connections 32

Writes loadtests/results/asgi-servers-<UTC time>.json and prints a line per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtests.bench import (  # noqa: E402
    BenchError,
    Stack,
    _tree_cpu_s,
    free_port,
    positive,
    prepare_tenant,
    run_light,
)
from services.runtime.embedded import EmbeddedPostgres, EmbeddedValkey  # noqa: E402

# What granian imports: the app `fuli serve` serves, settings from the environment.
APP_MODULE = """\
from services.composition.registry import SERVICES
from services.runtime.settings import load_settings
from services.runtime.stack import Stack

app = Stack(load_settings(), SERVICES)
"""


def start_granian(stack: Stack, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    granian = shutil.which("granian", path=str(Path(sys.executable).parent))
    if granian is None:
        raise BenchError("granian is not installed: .venv/bin/pip install granian")
    (work / "granian_app.py").write_text(APP_MODULE)
    port = free_port()
    env = {**stack.env, "FULI_DATABASE_URL": EmbeddedPostgres(stack.data_dir).url,
           "FULI_REDIS_URL": EmbeddedValkey(stack.data_dir).url,
           "PYTHONPATH": f"{work}:{REPO}"}
    process = subprocess.Popen(
        [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--loop", "uvloop", "--http", "1", "--no-ws", "--log-level",
         "warning", "granian_app:app"],
        cwd=REPO, env=env, stderr=open(work / "granian.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"granian exited: {(work / 'granian.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise BenchError("granian was not ready within 60 s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=positive, default=20,
                        help="seconds of each run (default 20)")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="runs of each server, alternately (default 3)")
    parser.add_argument("--connections", type=positive, default=32)
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fuli-asgi-") as tmp:
        work = Path(tmp)
        stack = Stack(work / "data", work / "fuli-up.log", group_commit=True)
        granian: subprocess.Popen[bytes] | None = None
        try:
            key = prepare_tenant(stack.base_url, stack.wait_ready()[0])
            granian, granian_url = start_granian(stack, work)
            uvicorn_pid = next(proc.pid for role, proc in stack.roles() if role == "api")
            postgres_pid = EmbeddedPostgres(stack.data_dir).running_pid()
            # granian's CPU is its process tree's: the server and its worker.
            servers = (("uvicorn", stack.base_url, uvicorn_pid),
                       ("granian", granian_url, granian.pid))
            for round_ in range(1, args.rounds + 1):
                for name, url, pid in servers:
                    before, pg_before = _tree_cpu_s(pid), _tree_cpu_s(postgres_pid)
                    figures = run_light(url, key, args.duration, args.connections,
                                        work / f"{name}-{round_}.json")
                    events = figures["requests"]
                    run = {"round": round_, "server": name, **figures,
                           "server_cpu_ms_per_event": round(
                               1000 * (_tree_cpu_s(pid) - before) / events, 3),
                           "postgres_cpu_ms_per_event": round(
                               1000 * (_tree_cpu_s(postgres_pid) - pg_before) / events, 3)}
                    runs.append(run)
                    print(f"round {round_} {name}: {run['events_per_s']} events/s, p50 "
                          f"{run['p50_ms']} / p99 {run['p99_ms']} ms, {run['failures']} "
                          f"failed, server {run['server_cpu_ms_per_event']} ms CPU per event, "
                          f"PostgreSQL {run['postgres_cpu_ms_per_event']}", file=sys.stderr)
                    time.sleep(3)  # the worker catches up between runs
        except BenchError as exc:
            print(f"asgi_servers failed: {exc}", file=sys.stderr)
            return 1
        finally:
            if granian is not None:
                granian.terminate()
                granian.wait(10)
            stack.stop()
    report = {"at": started.isoformat(timespec="seconds"), "duration_s": args.duration,
              "connections": args.connections, "runs": runs}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / f"asgi-servers-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
