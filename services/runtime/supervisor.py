"""What keeps ``fuli up`` running: a supervisor that restarts a dead child with back-off.

Children are the API process, the worker process and the embedded PostgreSQL and Valkey
servers. A child that dies is started again after a back-off that starts at 1 s and doubles up to
30 s while restarts keep failing; a child that then runs for a minute starts afresh at 1 s.
Every death, restart and failed restart is logged.

Process children run in their own process group, so Ctrl-C at a terminal reaches only the
supervisor, which stops them in order (the API first, then the worker, then the servers); and
on Linux they get SIGTERM if the supervisor itself dies, so none is left orphaned. The
supervisor also makes itself the "subreaper" of its descendants: the embedded servers, which
run as daemons, become its children, so it reaps them when they die (even where no init process
reaps orphans, as in a container started as ``fuli up``) and sees their death at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("fuli.supervisor")

INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_RESET_S = 60.0  # a child that ran this long before dying starts at INITIAL_BACKOFF_S
POLL_S = 0.2
STOP_TIMEOUT_S = 30.0

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def backoff_s(failures: int) -> float:
    """Delay before the restart that follows ``failures`` deaths in a row (1, 2, 4 ... 30 s)."""
    return float(min(INITIAL_BACKOFF_S * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def become_subreaper() -> bool:
    """Make orphaned descendants (daemonized servers) children of this process (Linux)."""
    return _LIBC is not None and _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap_orphans(keep: Callable[[int], bool]) -> list[int]:
    """Reap exited children that are not ours to wait for (``keep(pid)`` true: a subprocess
    another owner waits for, left as it is); returns the pids reaped."""
    reaped: list[int] = []
    if not hasattr(os, "waitid"):
        return reaped
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if found is None or found.si_pid == 0 or keep(found.si_pid):
            return reaped
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.si_pid, 0)
        reaped.append(found.si_pid)


class Child(Protocol):
    name: str

    @property
    def pid(self) -> int | None: ...

    def start(self) -> None: ...

    def exit_status(self) -> str | None:
        """None while it runs; how it ended once it does not."""

    def stop(self) -> None: ...


class ProcessChild:
    """A subprocess: ``argv`` with ``env``, inheriting ``pass_fds``."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str],
                 pass_fds: Sequence[int] = ()) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.pass_fds = tuple(pass_fds)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        parent = os.getpid()

        def die_with_parent() -> None:  # runs in the child, between fork and exec
            if _LIBC is not None:
                _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the supervisor died before prctl took effect
                os._exit(1)

        self.process = subprocess.Popen(self.argv, env=self.env, pass_fds=self.pass_fds,
                                        process_group=0, preexec_fn=die_with_parent)

    def exit_status(self) -> str | None:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        if code is None:
            return None
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("child did not stop in time; killing it",
                        extra={"fields": {"child": self.name, "pid": self.process.pid}})
            self.process.kill()
            self.process.wait()


class Server(Protocol):
    def running_pid(self) -> int | None: ...


class ServerChild:
    """An embedded server running as a daemon: alive while its pid file names a live process;
    ``restart`` starts it again. Stopping it is left to its owner (EmbeddedServers)."""

    def __init__(self, name: str, server: Server, restart: Callable[[], None]) -> None:
        self.name = name
        self.server = server
        self.restart = restart
        self._pid = server.running_pid()

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> None:
        self.restart()
        self._pid = self.server.running_pid()

    def exit_status(self) -> str | None:
        if self.server.running_pid() is not None:
            return None
        return f"process {self._pid} is gone" if self._pid else "not running"

    def stop(self) -> None:
        pass


@dataclass
class _Watch:
    started_at: float
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Watches ``children`` (those not yet running are started by ``start``), restarting each
    that dies; ``stop`` stops them in the order given."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.children = list(children)
        self._watches: dict[str, _Watch] = {}

    def start(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for child in self.children:
            if child.exit_status() is not None:
                child.start()
            self._watches[child.name] = _Watch(started_at=now)
        log.info("supervising", extra={"fields": {
            "children": {child.name: child.pid for child in self.children}}})

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop`` is set."""
        while not stop.wait(POLL_S):
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """One look at every child at monotonic time ``now``."""
        ours = {child.pid for child in self.children if isinstance(child, ProcessChild)}
        reap_orphans(keep=ours.__contains__)
        for child in self.children:
            watch = self._watches[child.name]
            if watch.restart_at is not None:
                if now >= watch.restart_at:
                    self._restart(child, watch, now)
                continue
            how = child.exit_status()
            if how is None:
                continue
            uptime = now - watch.started_at
            watch.failures = 1 if uptime >= HEALTHY_RESET_S else watch.failures + 1
            delay = backoff_s(watch.failures)
            watch.restart_at = now + delay
            log.warning("child died; restarting it", extra={"fields": {
                "child": child.name, "pid": child.pid, "how": how,
                "uptime_s": round(uptime, 1), "restart_in_s": delay,
                "restarts": watch.restarts}})

    def _restart(self, child: Child, watch: _Watch, now: float) -> None:
        try:
            child.start()
        except Exception as exc:
            watch.failures += 1
            delay = backoff_s(watch.failures)
            watch.restart_at = now + delay
            log.error("restart failed; trying again", extra={"fields": {
                "child": child.name, "error": repr(exc), "restart_in_s": delay}})
            return
        watch.restarts += 1
        watch.restart_at = None
        watch.started_at = now
        log.info("child restarted", extra={"fields": {
            "child": child.name, "pid": child.pid, "restarts": watch.restarts}})

    def stop(self) -> None:
        log.info("stopping", extra={"fields": {"children": [c.name for c in self.children]}})
        for child in self.children:
            try:
                child.stop()
            except Exception:
                log.exception("could not stop child", extra={"fields": {"child": child.name}})
