"""Bursts of concurrent keep-alive connections against a running fuli: are any dropped?

Opens --connections TCP connections at once and, in each of --rounds rounds, sends
--requests requests on every connection (one after the other on a connection, all connections
at once), pausing --gap seconds between rounds with the connections idle and open, the way a
client's keep-alive pool holds them. The requests are the hot path (POST /points/v1/events
with an ingest key) with, mixed in, --bad-share refused before the body is read (a wrong API
key: 401) and --big-share too large to be read at all (413).

Every exchange ends as a status code or as one of: `reset` (the server reset the connection:
no response), `closed` (the server closed it without a response), `timeout`, `connect_error`.
A connection the server closed while idle between rounds is reopened and counted
(`reopened_idle`): that is fine, a client sees the close before sending. The kernel's
counters of connections it reset (/proc/net/netstat: `TCPAbortOnData`, data that arrived after
the socket was closed; `TCPAbortOnClose`, a socket closed with data unread) are read before and
after; on a machine shared with other work they count theirs too.

    # against `make run` (the admin key it printed creates an ingest key and a rule):
    .venv/bin/python loadtests/burst.py --key fuli_... --connections 1000 --rounds 3
    # or on its own `fuli up` in a fresh temporary data directory:
    .venv/bin/python loadtests/burst.py --start --connections 1000 --rounds 3

Exit status 1 if any exchange ended without a response.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
ADMIN_KEY = re.compile(r"fuli_[0-9a-f]{16}_[A-Za-z0-9_-]{20,}")
DROPPED = ("reset", "closed", "timeout", "connect_error")
RULE = "burst"


# TcpExt counters of connections the kernel reset: TCPAbortOnData, data arrived after the
# socket was closed (a request sent into a connection the server was closing); TCPAbortOnClose,
# a socket closed with received data unread.
ABORT_COUNTERS = ("TCPAbortOnData", "TCPAbortOnClose")


def tcp_abort_counters() -> dict[str, int]:
    """The kernel's abort counters (empty where /proc/net/netstat is missing)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return {name: int(table.get(name, 0)) for name in ABORT_COUNTERS}
    return {}


@dataclass
class Target:
    host: str
    port: int
    key: str  # an ingest API key


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    reopened_idle: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def dropped(self) -> int:
        return sum(self.outcomes[name] for name in DROPPED)


def request_bytes(target: Target, kind: str, n: int) -> bytes:
    if kind == "big":
        # Refused on its Content-Length (413) before a byte of it is read.
        body = b"x" * 5_000_000
        key = target.key
    else:
        body = json.dumps({"event_id": f"burst-{uuid.uuid4().hex}", "action": RULE,
                           "member_id": f"burst-m{n % 5000}"}).encode()
        key = target.key if kind == "ok" else "fuli_0000000000000000_wrongwrongwrongwrong00"
    head = (f"POST /points/v1/events HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one response and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close"


def outcome_of(exc: BaseException) -> str:
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed" if not exc.partial else "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "closed"


class Connection:
    def __init__(self, target: Target, index: int) -> None:
        self.target = target
        self.index = index
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, limit_s: float) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.target.host, self.target.port), limit_s)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, kind: str, n: int, tally: Tally, limit_s: float) -> None:
        if self.reader is not None and self.reader.at_eof():
            # Closed by the server while idle (its keep-alive timeout): a client sees the FIN
            # before sending and opens a new connection.
            tally.reopened_idle += 1
            self.close()
        if self.reader is None:
            try:
                await self.open(limit_s)
            except (OSError, TimeoutError) as exc:
                tally.outcomes["connect_error"] += 1
                tally.errors[type(exc).__name__] += 1
                return
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request_bytes(self.target, kind, n))
            await asyncio.wait_for(self.writer.drain(), limit_s)
            status, keep = await asyncio.wait_for(read_response(self.reader), limit_s)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            tally.outcomes[outcome_of(exc)] += 1
            tally.errors[f"{kind}: {type(exc).__name__}"] += 1
            self.close()
            return
        tally.outcomes[str(status)] += 1
        if not keep:
            self.close()


def kind_of(n: int, bad_share: float, big_share: float) -> str:
    # Deterministic spread: every 1/share-th request is of the special kind.
    if big_share and n % max(1, round(1 / big_share)) == 1:
        return "big"
    if bad_share and n % max(1, round(1 / bad_share)) == 0:
        return "bad"
    return "ok"


async def run_burst(target: Target, *, connections: int, rounds: int, requests: int = 1,
                    gap_s: float = 1.0, bad_share: float = 0.05, big_share: float = 0.0,
                    timeout_s: float = 60.0) -> dict[str, Any]:
    """Run the bursts; returns per-round tallies and their sum."""
    pool = [Connection(target, i) for i in range(connections)]
    counter = iter(range(1, 1 << 62))
    report: dict[str, Any] = {"rounds": []}
    total = Tally()
    aborts_before = tcp_abort_counters()

    async def drive(conn: Connection, tally: Tally) -> None:
        for _ in range(requests):
            n = next(counter)
            await conn.exchange(kind_of(n, bad_share, big_share), n, tally, timeout_s)

    try:
        for number in range(1, rounds + 1):
            if number > 1:
                await asyncio.sleep(gap_s)
            tally = Tally()
            started = time.perf_counter()
            await asyncio.gather(*(drive(conn, tally) for conn in pool))
            elapsed = time.perf_counter() - started
            report["rounds"].append({
                "round": number, "seconds": round(elapsed, 2),
                "outcomes": dict(sorted(tally.outcomes.items())),
                "dropped": tally.dropped, "reopened_idle": tally.reopened_idle,
                "errors": dict(tally.errors)})
            total.outcomes.update(tally.outcomes)
            total.errors.update(tally.errors)
            total.reopened_idle += tally.reopened_idle
    finally:
        for conn in pool:
            conn.close()
    aborts_after = tcp_abort_counters()
    report.update(
        connections=connections, requests_per_connection=requests, gap_s=gap_s,
        bad_share=bad_share, big_share=big_share,
        outcomes=dict(sorted(total.outcomes.items())), dropped=total.dropped,
        resets=total.outcomes["reset"], reopened_idle=total.reopened_idle,
        kernel_resets={name: {"before": aborts_before[name], "after": aborts_after[name],
                              "delta": aborts_after[name] - aborts_before[name]}
                       for name in aborts_before if name in aborts_after})
    return report


def prepare(base_url: str, admin_key: str) -> str:
    """An ingest key and the rule the bursts post (1 point, no limits); returns the key."""
    import httpx

    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        rule = http.put(f"/points/v1/rules/{RULE}", json={"points": 1})
        rule.raise_for_status()
        created = http.post("/points/v1/keys", json={"role": "ingest", "label": "burst"})
        created.raise_for_status()
        return str(created.json()["key"])


@contextlib.contextmanager
def started_fuli(data_dir: Path, settings: dict[str, str] | None = None
                 ) -> Iterator[tuple[str, str]]:
    """`fuli up` on a fresh data directory with unthrottled rate limits (and ``settings``,
    FULI_* variables); yields its base URL and the admin key it printed."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
    env.update(FULI_DATA_DIR=str(data_dir), FULI_PORT=str(port), FULI_LOG_LEVEL="WARNING",
               FULI_RATE_LIMITS="key.default=100000000/60,key.events=100000000/60")
    env.update(settings or {})
    log = open(data_dir / "fuli.log", "w")  # closed below
    process = subprocess.Popen([sys.executable, "-m", "services.composition.cli", "up"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    printed: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        printed.extend(process.stdout)

    threading.Thread(target=read, daemon=True).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fuli up did not start; see {data_dir / 'fuli.log'}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base_url + "/health/ready", timeout=2).status_code == 200:
                    key = ADMIN_KEY.search("".join(printed))
                    if key:
                        break
            time.sleep(0.2)
        yield base_url, key.group(0)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def raise_fd_limit(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, connections + 256))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", help="the admin key (`make run` prints it)")
    parser.add_argument("--start", action="store_true",
                        help="start `fuli up` on a fresh temporary data directory")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1, help="per connection and round")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--bad-share", type=float, default=0.05,
                        help="share of requests with a wrong key (401)")
    parser.add_argument("--big-share", type=float, default=0.0,
                        help="share of requests with a body over FULI_MAX_BODY_BYTES (413)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--setting", action="append", default=[], metavar="FULI_NAME=VALUE",
                        help="with --start: a setting of the started fuli (repeatable)")
    args = parser.parse_args()
    raise_fd_limit(args.connections)

    def burst(base_url: str, admin_key: str) -> dict[str, Any]:
        parts = urlsplit(base_url)
        target = Target(parts.hostname or "127.0.0.1", parts.port or 80,
                        prepare(base_url, admin_key))
        return asyncio.run(run_burst(
            target, connections=args.connections, rounds=args.rounds, requests=args.requests,
            gap_s=args.gap, bad_share=args.bad_share, big_share=args.big_share,
            timeout_s=args.timeout))

    if args.start:
        with tempfile.TemporaryDirectory(prefix="fuli-burst-") as data_dir, \
                started_fuli(Path(data_dir), dict(item.split("=", 1) for item in args.setting)
                             ) as (base_url, admin_key):
            report = burst(base_url, admin_key)
    elif args.key:
        report = burst(args.url, args.key)
    else:
        parser.error("give --key (the admin key of the running fuli) or --start")
    report["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    print(json.dumps(report, indent=2))
    return 1 if report["dropped"] else 0


if __name__ == "__main__":
    sys.exit(main())
