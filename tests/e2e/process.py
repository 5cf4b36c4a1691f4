"""Run `fuli` as a child process and talk to it over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "examples" / "walkthrough.sh"
BIN = Path(sys.executable).parent  # the virtual environment's bin: node and npm come with it
# An API key as `fuli` prints it.
KEY = re.compile(r"(fuli_[0-9a-f]{16}_[A-Za-z0-9_-]{20,})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fuli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.composition.cli", *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, check=True)


class FuliServer:
    def __init__(self, env: dict[str, str], *args: str, ready_path: str = "/health/ready") -> None:
        self.ready_path = ready_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = Path(env.get("FULI_DATA_DIR", "/tmp")) / f"fuli-{self.port}.log"
        self.env = {**env, "FULI_PORT": str(self.port)}
        self.args = args or ("up",)
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 90) -> str:
        """Start and wait until ready; returns what it printed on stdout so far."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.composition.cli", *self.args], env=self.env, cwd=REPO,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.stdout: list[str] = []
        reader = threading.Thread(target=self._read_stdout, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fuli exited early:\n{self.output}\n{self.log.read_text()}")
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=1).status_code == 200:
                    return self.output
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"fuli did not become ready:\n{self.output}\n{self.log.read_text()}")

    def start_with_admin_key(self, timeout: float = 90) -> str:
        """``start`` on a fresh data directory, and the admin key `fuli up` printed (stopped
        again when it printed none)."""
        printed = self.start(timeout)
        admin = KEY.search(printed)
        if admin is None:
            self.stop()
            raise AssertionError(f"no admin key in what fuli printed:\n{printed}")
        return admin.group(1)

    def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout.append(line)

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    def stop(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self._stderr.close()
        return code


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str,
             every_s: float = 0.05) -> Any:
    """``condition()`` once it is truthy, polling every ``every_s``; fails after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def newest_worker_pid(database_url: str) -> int | None:
    """The pid of the worker that beat last (``fuli.worker_heartbeats``)."""
    async def query() -> int | None:
        conn = await asyncpg.connect(database_url)
        try:
            pid: int | None = await conn.fetchval(
                "SELECT pid FROM fuli.worker_heartbeats ORDER BY last_beat_at DESC LIMIT 1")
            return pid
        finally:
            await conn.close()

    return asyncio.run(query())


def clean_env() -> dict[str, str]:
    """This process's environment without any FULI_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FULI_")}


@contextlib.contextmanager
def make_run_stack(prefix: str) -> Iterator[tuple[FuliServer, str]]:
    """`fuli up` as `make run` starts it, and the admin key it printed: no FULI_* settings but
    the port and a fresh data directory (not under pytest's tmp_path, whose root another pytest
    session starting may make unreachable for the PostgreSQL server's own user). It must stop
    cleanly."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        server = FuliServer({**clean_env(), "FULI_DATA_DIR": data_dir,
                             "FULI_LOG_LEVEL": "WARNING"})
        admin = server.start_with_admin_key()
        try:
            yield server, admin
        finally:
            code = server.stop()
            assert code == 0, server.log.read_text()[-4000:]


def walkthrough_env(url: str, key: str) -> dict[str, str]:
    """The environment examples/walkthrough.sh runs in against ``url`` with admin ``key``."""
    env = clean_env()
    env.update(FULI_URL=url, FULI_ADMIN_KEY=key, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env
