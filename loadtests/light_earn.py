"""A light load generator for the earn path's ceiling: the requests of Locust's
`PointsEventsUser` (one event per `POST /points/v1/events`, a fresh id, a random member out of
`bench-m1` .. `bench-m<members>`, anything but a fresh 201 a failure) from plain asyncio
connections, HTTP/1.1 keep-alive, one request at a time on each. Locust spends about a fifth of
the two cores on the earn phase; this spends a fraction of that, so what it reaches is nearer
what the stack can do. Locust stays the tool of every scenario; the bench reports both.

    .venv/bin/python loadtests/light_earn.py --url http://127.0.0.1:8000 --key fuli_... \\
        --duration 30 --connections 32

It prints (or writes to --summary) `requests`, `failures`, `events_per_s`, `p50_ms`, `p99_ms`
and `failure_samples`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONTENT_LENGTH = b"\r\ncontent-length:"
REPLAYED = b"\r\nidempotent-replayed: true"


class Tally:
    """What every connection answered."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.failures: Counter[str] = Counter()


async def connection(host: str, port: int, key: str, action: str, members: int,
                     prefix: str, deadline: float, tally: Tally) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        tally.failures[f"connect: {exc}"] += 1
        return
    head = (f"POST /points/v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: ").encode()
    draw = random.Random()
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            body = json.dumps({"event_id": f"{prefix}-{n}",
                               "member_id": f"bench-m{draw.randint(1, members)}",
                               "action": action}).encode()
            started = time.perf_counter()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = _content_length(answer)
            answered = await reader.readexactly(length)
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            status = answer[9:12]
            if status != b"201":
                tally.failures[f"status {status.decode()}: {answered[:200]!r}"] += 1
            elif REPLAYED in answer.lower():
                tally.failures["unexpected idempotent replay"] += 1
    except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
        # The connection is lost: counted, and this connection sends no more.
        tally.failures[f"{type(exc).__name__}: {exc}"[:200]] += 1
    finally:
        writer.close()


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(CONTENT_LENGTH)
    if at < 0:
        raise RuntimeError(f"an answer without content-length: {head[:200]!r}")
    end = lowered.find(b"\r\n", at + len(CONTENT_LENGTH))
    return int(lowered[at + len(CONTENT_LENGTH):end])


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


async def drive(url: str, key: str, duration: float, connections: int, members: int,
                action: str) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    prefix = f"ll-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    await asyncio.gather(*(
        connection(host, port, key, action, members, f"{prefix}-{c}", started + duration, tally)
        for c in range(connections)))
    elapsed = time.monotonic() - started
    ordered = sorted(tally.latencies_ms)
    return {
        "requests": len(ordered),
        "failures": sum(tally.failures.values()),
        "events_per_s": round(len(ordered) / elapsed, 1),
        "p50_ms": percentile(ordered, 0.5),
        "p99_ms": percentile(ordered, 0.99),
        "failure_samples": [f"{n} x {what}" for what, n in tally.failures.most_common(5)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the API's base URL (http only)")
    parser.add_argument("--key", required=True, help="an ingest API key of the tenant")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--action", default="bench")
    parser.add_argument("--summary", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    try:
        import uvloop  # uvicorn's event loop, installed with the project
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    figures = runner(drive(args.url, args.key, args.duration, args.connections, args.members,
                           args.action))
    text = json.dumps(figures)
    if args.summary:
        args.summary.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
