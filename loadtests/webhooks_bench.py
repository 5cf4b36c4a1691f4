"""Benchmark of webhook deliveries: deliveries per second to a local receiver, as a ratio to
the points earn rate measured in the same run.

In one run, on one machine:

1. start `fuli up` on a fresh embedded data directory (bench.py's Stack: API and worker, real
   PostgreSQL and Valkey) with FULI_WEBHOOKS_ALLOW_PRIVATE=true; make an ingest key and the
   rule `bench` (1 point, no limits);
2. start a receiver on 127.0.0.1 (uvicorn in this process, verifying every request with the
   `standardwebhooks` package, answering 204) and --endpoints endpoints pointing at it, each
   subscribed to PointsAwarded;
3. post --events events for --members members through POST /points/v1/events/batch
   (--concurrency batches of --batch in flight): (a) the earn rate, events accepted per second;
4. wait until the receiver has every delivery (events x endpoints, each verified):
   (b) deliveries per second, from the first event posted to the last delivery received;
5. stop the stack and write loadtests/results/webhooks-bench-<UTC time>.json (and print it).

    .venv/bin/python loadtests/webhooks_bench.py --events 5000 --endpoints 2
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
    consumer_faults,
    git_commit,
    machine,
    positive,
    tail,
)
from loadtests.tasks_bench import expect, post_events  # noqa: E402
from tests.support.webhooks import Receiver  # noqa: E402

POLL_S = 0.2
DELIVERY_TIMEOUT_S = 600


def prepare(base_url: str, admin_key: str, receiver: Receiver, endpoints: int) -> str:
    """The ingest key, the rule and the endpoints (their secrets given to the receiver)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        admin = {"Authorization": f"Bearer {admin_key}"}
        ingest = expect(http.post("/points/v1/keys", headers=admin,
                                  json={"role": "ingest", "label": "webhooks bench"}),
                        201, "creating the ingest key")["key"]
        expect(http.put("/points/v1/rules/bench", headers=admin, json={"points": 1}), 200,
               "creating the rule")
        for _ in range(endpoints):
            created = expect(http.post("/webhooks/v1/endpoints", headers=admin, json={
                "url": receiver.url, "event_types": ["PointsAwarded"], "allow_http": True}),
                201, "creating an endpoint")
            receiver.secrets.append(created["secret"])
        return str(ingest)


async def measure(stack: Stack, ingest_key: str, receiver: Receiver,
                  args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    events = [{"event_id": f"wh-{i}", "member_id": f"m-{rng.randrange(args.members)}",
               "action": "bench"} for i in range(args.events)]
    expected = args.events * args.endpoints
    started = time.monotonic()
    earn = await post_events(stack.base_url, ingest_key, events, args.batch, args.concurrency)
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while len(receiver.arrivals) < expected or len(set(receiver.delivered_ids())) < expected:
        if time.monotonic() > deadline:
            raise BenchError(f"{expected - len(set(receiver.delivered_ids()))} deliveries "
                             f"missing after {DELIVERY_TIMEOUT_S} s")
        if stack.process.poll() is not None:
            raise stack._failure("fuli up died during the run")
        await asyncio.sleep(POLL_S)
    last = max(a.at for a in receiver.arrivals)
    seconds = last - started
    unverified = sum(1 for a in receiver.arrivals if not a.verified)
    if unverified:
        raise BenchError(f"{unverified} requests did not verify")
    deliveries_per_s = expected / seconds
    return {
        "earn": earn,
        "deliveries": expected,
        "requests": len(receiver.arrivals),
        "delivery_seconds": round(seconds, 2),
        "deliveries_per_s": round(deliveries_per_s, 1),
        "ratio_deliveries_to_earn": round(deliveries_per_s / earn["events_per_s"], 3),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive, default=5000)
    parser.add_argument("--members", type=positive, default=1000)
    parser.add_argument("--endpoints", type=positive, default=1)
    parser.add_argument("--batch", type=positive, default=100)
    parser.add_argument("--concurrency", type=positive, default=8)
    parser.add_argument("--out-dir", type=Path, default=REPO / "loadtests" / "results")
    parser.add_argument("--setting", action="append", default=[],
                        help="FULI_NAME=value for the stack (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *sys.argv])
    started = datetime.now(UTC)
    out_dir: Path = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    receiver = Receiver(behaviour=lambda _id, _n: (204, 0.0, {})).start()
    with tempfile.TemporaryDirectory(prefix="fuli-webhooks-bench-") as tmp:
        work = Path(tmp)
        settings = {"FULI_WEBHOOKS_ALLOW_PRIVATE": "true",
                    **dict(item.split("=", 1) for item in args.setting)}
        stack = Stack(work / "data", work / "fuli-up.log", group_commit=True,
                      settings=settings)
        stopped: int | None = None
        try:
            print(f"webhooks bench: starting fuli up on {stack.base_url}", file=sys.stderr)
            admin_key, _ = stack.wait_ready()
            ingest_key = prepare(stack.base_url, admin_key, receiver, args.endpoints)
            figures = asyncio.run(measure(stack, ingest_key, receiver, args))
        except BenchError as exc:
            print(f"webhooks bench failed: {exc}", file=sys.stderr)
            return 1
        except (subprocess.TimeoutExpired, OSError, httpx.HTTPError) as exc:
            print(f"webhooks bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            stopped = stack.stop()
            receiver.stop()
        logs = (work / "fuli-up.log").read_text(errors="replace")
        if stopped not in (0, 128 + signal.SIGTERM):
            print(f"webhooks bench: note: fuli up exited with status {stopped}:\n{tail(logs)}",
                  file=sys.stderr)
    report = {
        "at": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": info,
        "events": args.events,
        "members": args.members,
        "endpoints": args.endpoints,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "settings": args.setting,
        **figures,
        "consumers": consumer_faults(logs),
        "command": command,
    }
    text = json.dumps(report, indent=2)
    path = out_dir / f"webhooks-bench-{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(text + "\n")
    print(text)
    print(f"webhooks bench: written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
