"""A stack laid out as in production, each part its own process so each can be killed alone:
embedded PostgreSQL and Valkey started here (under a temporary directory), the API
(`fuli serve`: every service on one port, without the worker) and `fuli worker`, both pointed
at the servers with FULI_DATABASE_URL / FULI_REDIS_URL (and FULI_BROKER_URL when
RabbitMQ is configured). What a supervisor would do after a crash (start the process again) is
done by the fault that caused it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import redis

from services.runtime.embedded import EmbeddedPostgres, EmbeddedValkey

REPO = Path(__file__).resolve().parents[2]
# High enough never to throttle the traffic: the suite is about faults, not rate limits.
RATE_LIMITS = "key.default=100000000/60,key.events=100000000/60"
READY_TIMEOUT_S = 120
# The suite's own database connections: not 'fuli%', so terminating the services' backends
# leaves them alone.
CHECKER_APPLICATION = "fault-suite"
# The Redis broker's key prefix (services/runtime/worker.py).
DRAMATIQ_NAMESPACE = "fuli-dramatiq"


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    """Every living descendant of ``root``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The parent pid is the 2nd field after the parenthesised command name.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Child:
    """One `fuli` command as a child process in its own process group, its output appended
    to one log file across restarts."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"--- {self.name} start {self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.composition.cli", *self.args], cwd=REPO,
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group and every descendant (in a group of its own or not), as a
        node loss or a container's OOM kill would."""
        if self.process is None:
            return
        descendants = _descendants(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in descendants:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""


class RabbitBroker:
    """A configured RabbitMQ broker. With `rabbitmqctl` at hand the stack gets a private
    virtual host (so other users' queues are never mixed with the suite's) and can restart
    the broker application."""

    def __init__(self, url: str) -> None:
        self.base_url = url
        self.ctl = shutil.which("rabbitmqctl")
        self.vhost: str | None = None

    @property
    def url(self) -> str:
        if self.vhost is None:
            return self.base_url
        parts = urlsplit(self.base_url)
        return urlunsplit(parts._replace(path="/" + quote(self.vhost, safe="")))

    def _ctl(self, *args: str, timeout: float = 120) -> None:
        assert self.ctl is not None
        result = subprocess.run([self.ctl, *args], capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise StackError(f"rabbitmqctl {' '.join(args)} failed: "
                             f"{result.stderr.strip() or result.stdout.strip()}")

    def open(self) -> None:
        if self.ctl is None:
            return
        user = urlsplit(self.base_url).username or "guest"
        vhost = f"fuli-faults-{uuid.uuid4().hex[:8]}"
        self._ctl("add_vhost", vhost)
        self.vhost = vhost
        self._ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def close(self) -> None:
        if self.ctl is not None and self.vhost is not None:
            try:
                self._ctl("delete_vhost", self.vhost)
            except (StackError, subprocess.TimeoutExpired) as exc:
                print(f"faults: could not delete RabbitMQ vhost {self.vhost}: {exc}",
                      file=sys.stderr)
            self.vhost = None

    @property
    def restartable(self) -> bool:
        return self.ctl is not None

    def stop_app(self) -> None:
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")

    def backlog(self) -> int | None:
        """Messages in the suite's queues, ready or delivered but not acknowledged."""
        if self.ctl is None or self.vhost is None:
            return None
        result = subprocess.run([self.ctl, "list_queues", "-q", "-p", self.vhost, "name",
                                 "messages"], capture_output=True, text=True, timeout=60,
                                check=False)
        if result.returncode != 0:
            return None
        total = 0
        for line in result.stdout.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[1].isdigit():
                total += int(fields[1])
        return total


class FaultStack:
    """PostgreSQL and Valkey, the API and the worker; every part can be killed and started."""

    def __init__(self, root: Path, broker_url: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.extra_env = extra_env or {}
        self.postgres = EmbeddedPostgres(root, durable=False)
        # Durable like `make run`: Valkey keeps an append-only file, so a restart after a kill
        # comes back with what was written up to about a second before.
        self.valkey = EmbeddedValkey(root, durable=True)
        self.rabbit = RabbitBroker(broker_url) if broker_url and broker_url.startswith(
            ("amqp://", "amqps://")) else None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api: Child | None = None
        self.worker: Child | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}
        env.update(FULI_DATABASE_URL=self.postgres.url, FULI_REDIS_URL=self.valkey.url,
                   FULI_DATA_DIR=str(self.root), FULI_PORT=str(self.port),
                   FULI_LOG_LEVEL="WARNING", FULI_RATE_LIMITS=RATE_LIMITS)
        if self.rabbit is not None:
            env["FULI_BROKER_URL"] = self.rabbit.url
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.valkey.start()
        if self.rabbit is not None:
            self.rabbit.open()
        env = self.env()
        self.api = Child("api", ["serve"], env, self.root / "api.log")
        self.worker = Child("worker", ["worker"], env, self.root / "worker.log")
        # The API applies the migrations before it answers; the worker starts after it.
        self.start_api()
        self.start_worker()

    def stop(self) -> None:
        for child in (self.worker, self.api):
            if child is not None:
                child.stop()
        if self.rabbit is not None:
            self.rabbit.close()
        self.valkey.stop()
        self.postgres.stop()

    # --- the API ---------------------------------------------------------------------------

    def start_api(self) -> None:
        assert self.api is not None
        self.api.start()
        self.wait_api_ready()

    def wait_api_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        assert self.api is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if not self.api.alive:
                    raise StackError(f"the API exited:\n{tail(self.api.log_path)}")
                try:
                    if http.get("/health/live").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise StackError(f"the API did not start within {timeout} s:\n{tail(self.api.log_path)}")

    def kill_api(self) -> None:
        assert self.api is not None
        self.api.kill()

    # --- the worker ------------------------------------------------------------------------

    def start_worker(self) -> None:
        assert self.worker is not None
        self.worker.start()

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.kill()

    # --- Valkey ----------------------------------------------------------------------------

    def redis_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.valkey.url, socket_timeout=5)

    def flushall(self) -> None:
        with self.redis_client() as client:
            client.flushall()

    def kill_redis(self) -> None:
        pid = self.valkey.running_pid()
        if pid is None:
            raise StackError("Valkey is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise StackError(f"Valkey (pid {pid}) survived SIGKILL")

    def broker_backlog(self) -> int | None:
        """Messages the broker holds that no worker has finished: queued, delayed (retries
        waiting for their time) and fetched but not acknowledged, including those of workers
        that died. None when it cannot be read."""
        if self.rabbit is not None:
            return self.rabbit.backlog()
        try:
            with self.redis_client() as client:
                total = 0
                for key in client.scan_iter(match=f"{DRAMATIQ_NAMESPACE}:*", count=1000):
                    kind = client.type(key)
                    if kind == b"list":
                        total += int(client.llen(key))
                    elif kind == b"set" and b":__acks__." in key:
                        total += int(client.scard(key))
                return total
        except redis.RedisError:
            return None

    def dead_letters(self) -> int:
        """Messages the Redis broker gave up on (dead-lettered after their last retry)."""
        if self.rabbit is not None:
            return 0
        try:
            with self.redis_client() as client:
                return sum(int(client.zcard(key)) for key in
                           client.scan_iter(match=f"{DRAMATIQ_NAMESPACE}:*.XQ", count=1000))
        except redis.RedisError:
            return 0

    def start_redis(self) -> None:
        """Valkey again on the same socket and data directory (its append-only file)."""
        self.valkey.start()

    # --- PostgreSQL ------------------------------------------------------------------------

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.postgres.url,
                                     server_settings={"application_name": CHECKER_APPLICATION})

    async def terminate_backends(self) -> int:
        """pg_terminate_backend of every backend of the services ('fuli%' application names);
        returns how many were terminated."""
        conn = await self.connect()
        try:
            return int(await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                " FROM pg_stat_activity"
                " WHERE application_name LIKE 'fuli%' AND pid <> pg_backend_pid()"))
        finally:
            await conn.close()

    # --- the command line ------------------------------------------------------------------

    def fuli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services.composition.cli", *args],
                              env=self.env(), cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, check=False)

    # --- health ----------------------------------------------------------------------------

    def ensure_running(self) -> list[str]:
        """Start whatever is down (a fault that failed to restore leaves it so); returns what
        had to be started."""
        started = []
        if self.valkey.running_pid() is None:
            self.start_redis()
            started.append("valkey")
        assert self.api is not None and self.worker is not None
        if not self.api.alive:
            self.start_api()
            started.append("api")
        if not self.worker.alive:
            self.start_worker()
            started.append("worker")
        return started
