"""Fault injection under load: does the system lose, double or misderive anything?

One stack for the run, laid out as in production, each part its own process: embedded
PostgreSQL and Valkey (a fresh temporary directory), the API (`fuli serve`: every service, no
worker) and `fuli worker`, plus RabbitMQ when FULI_BROKER_URL is an amqp:// URL. For each
fault, on a fresh tenant: mixed traffic (earning events, debits, holds, redemptions, draws,
pool opens) for --duration seconds, every request retried with its id until a definite
answer, while the fault is injected and repaired; then the wait for the system to settle (at
most --settle-bound seconds) and the invariants: ledger check, acknowledged effects exactly
once, no oversell, and every derived figure (tiers, team scores, leaderboard) equal to its
source.

    .venv/bin/python loadtests/faults.py --duration 60 --faults all
    .venv/bin/python loadtests/faults.py --duration 30 --faults worker_kill,redis_flushall

Prints a table and writes loadtests/results/faults-<UTC time>.json. Exit status 1 if any
invariant broke or any 5xx other than 503 with Retry-After was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.faults.injection import FAULTS, Fault  # noqa: E402
from tests.faults.stack import FaultStack  # noqa: E402
from tests.faults.suite import Plan, Result, run_scenario, summary_json, table  # noqa: E402

OUT_DIR = REPO / "loadtests" / "results"


def select(spec: str, rabbitmq: bool) -> list[Fault]:
    if spec == "all":
        return [f for f in FAULTS.values() if rabbitmq or not f.needs_rabbitmq]
    chosen = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name not in FAULTS:
            raise SystemExit(f"faults: unknown fault {name!r}; one of: all, {', '.join(FAULTS)}")
        if FAULTS[name].needs_rabbitmq and not rabbitmq:
            raise SystemExit(f"faults: {name} needs FULI_BROKER_URL=amqp://... and rabbitmqctl")
        chosen.append(FAULTS[name])
    return chosen


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, check=True).stdout
        return commit + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60,
                        help="seconds of traffic per fault (default 60)")
    parser.add_argument("--faults", default="all",
                        help=f"all, or a comma-separated list of: {', '.join(FAULTS)}")
    parser.add_argument("--users", type=int, default=16, help="concurrent virtual users")
    parser.add_argument("--rate", type=float, default=100,
                        help="operations started per second at most, 0 for no limit "
                             "(default 100: what a 2-core machine's worker keeps up with)")
    parser.add_argument("--settle-bound", type=float, default=60,
                        help="longest wait for derived state to settle, in seconds (default 60)")
    parser.add_argument("--quiet", type=float,
                        help="also end the wait after this many seconds without movement and "
                             "with nothing pending (off by default: periodic repairs are "
                             "then not waited for)")
    parser.add_argument("--drain", type=float, default=30,
                        help="seconds an operation under way at the end may still retry")
    parser.add_argument("--seed", type=int, help="seed of the traffic's choices")
    parser.add_argument("--keep", action="store_true",
                        help="keep the data directory and logs (printed at the end)")
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    return parser.parse_args(argv)


async def run(stack: FaultStack, faults: list[Fault], plan: Plan) -> list[Result]:
    results = []
    for fault in faults:
        print(f"faults: {fault.name}: {fault.summary} ...", flush=True)
        result = await run_scenario(stack, fault, plan)
        print(f"faults: {fault.name}: {'ok' if result.ok else 'BROKEN'} "
              f"({result.stats.operations} operations; settle: {result.settle})", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    broker_url = os.environ.get("FULI_BROKER_URL") or None
    rabbitmq = bool(broker_url and broker_url.startswith(("amqp://", "amqps://"))
                    and shutil.which("rabbitmqctl"))
    faults = select(args.faults, rabbitmq)
    plan = Plan(duration_s=args.duration, users=args.users, rate=args.rate or None,
                drain_s=args.drain, settle_bound_s=args.settle_bound, quiet_s=args.quiet,
                seed=args.seed)
    root = Path(tempfile.mkdtemp(prefix="fuli-faults-"))
    stack = FaultStack(root, broker_url)
    started = datetime.now(UTC)
    loadavg = os.getloadavg()
    print(f"faults: starting the stack under {root} "
          f"(broker: {'RabbitMQ' if stack.rabbit else 'Redis'})", flush=True)
    try:
        stack.start()
        results = asyncio.run(run(stack, faults, plan))
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(table(results))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"faults-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(summary_json(results, plan, {
        "commit": git_commit(), "broker": "rabbitmq" if stack.rabbit else "redis",
        "cores": os.cpu_count(), "loadavg_at_start": loadavg,
        "command": " ".join(sys.argv)}))
    print(f"\nfaults: results in {out}" + (f"; data and logs kept in {root}" if args.keep else ""))
    ok = all(r.ok for r in results)
    print("faults: every invariant held" if ok else
          f"faults: {sum(len(r.broken) for r in results)} invariant(s) broken")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
