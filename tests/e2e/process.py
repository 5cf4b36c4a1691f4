"""Run `fuli` as a child process and talk to it over real HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


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
