"""The ``fuli`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

import proto
from services.composition.registry import (
    MIGRATIONS,
    SERVICE_NAMES,
    SERVICES,
    jobs,
    openapi_documents,
)
from services.runtime import tenants
from services.runtime.db import Conn, init_connection
from services.runtime.embedded import EmbeddedServers
from services.runtime.errors import FuliError, NotFound
from services.runtime.heartbeat import check_worker
from services.runtime.migrations import migrate
from services.runtime.observability import configure_logging
from services.runtime.server import listen_socket, serve
from services.runtime.settings import Settings, SettingsError, load_settings
from services.runtime.stack import Stack
from services.runtime.supervisor import (
    Child,
    ProcessChild,
    ServerChild,
    Supervisor,
    become_subreaper,
)

OPENAPI_DIR = Path(proto.__file__).resolve().parent / "openapi"
# What `make console` builds (console/ of this checkout, beside services/).
CONSOLE_DIST = Path(__file__).resolve().parents[2] / "console" / "dist"
# How `fuli up` and `fuli serve` start their API and worker processes.
CLI = [sys.executable, "-m", "services.composition.cli"]


def console_directory(settings: Settings) -> Path:
    return Path(settings.console_dir) if settings.console_dir else CONSOLE_DIST


@contextlib.contextmanager
def resolved_with_servers(settings: Settings
                          ) -> Iterator[tuple[Settings, EmbeddedServers | None]]:
    """Settings with both URLs filled in, starting the embedded servers for what is missing,
    and those servers (None when both URLs are set)."""
    if not settings.embedded:
        yield settings, None
        return
    servers = EmbeddedServers(settings.data_dir)
    try:
        urls = servers.start(postgres=settings.database_url is None,
                             valkey=settings.redis_url is None)
        yield msgspec.structs.replace(
            settings,
            database_url=settings.database_url or urls.database_url,
            redis_url=settings.redis_url or urls.redis_url,
        ), servers
    finally:
        servers.stop()


@contextlib.contextmanager
def resolved(settings: Settings) -> Iterator[Settings]:
    """Settings with both URLs filled in, starting the embedded servers for what is missing."""
    with resolved_with_servers(settings) as (ready, _):
        yield ready


async def _with_connection(settings: Settings,
                           action: Callable[[Conn], Awaitable[Any]]) -> Any:
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    try:
        return await action(conn)
    finally:
        await conn.close()


async def prepare_database(settings: Settings, *, create_default_tenant: bool) -> str | None:
    """Apply migrations and the bootstrap key; returns a new admin key if one was made."""

    async def run(conn: Conn) -> str | None:
        await migrate(conn, MIGRATIONS)
        if settings.bootstrap_key:
            await tenants.ensure_tenant_with_key(conn, "default", settings.bootstrap_key)
            return None
        if create_default_tenant and await tenants.tenant_count(conn) == 0:
            return (await tenants.create_tenant(conn, "default")).key
        return None

    return await _with_connection(settings, run)  # type: ignore[no-any-return]


def _banner(settings: Settings, services: tuple[str, ...], admin_key: str | None,
            *, key_hint: bool = False) -> None:
    base = f"http://{settings.host}:{settings.port}"
    lines = [f"fuli is serving on {base}"]
    for name in services:
        lines.append(f"  {name:8} API {base}/{name}/v1   docs {base}/{name}/docs")
    lines.append(f"  console  {base}/console/")
    lines.append(f"  health   {base}/health/ready   metrics {base}/metrics")
    if settings.database_url and "host=" in settings.database_url:
        lines.append(f"  data     {Path(settings.data_dir).resolve()}")
    if admin_key:
        lines.append("")
        lines.append("Created tenant 'default'. Its admin key (shown once):")
        lines.append(f"  {admin_key}")
    elif key_hint:
        # The first start printed the admin key once; it cannot be shown again.
        lines.append("")
        lines.append("The admin key was shown at the first start. For a new one, run:")
        lines.append(f"  {_command_name()} key create --tenant default --role admin")
    print("\n".join(lines), flush=True)


def _command_name() -> str:
    """How this command was invoked (`.venv/bin/fuli` under `make run`), for hints."""
    invoked = Path(sys.argv[0])
    return str(invoked) if invoked.name == "fuli" else "fuli"


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    """The API and the worker as supervised child processes, over the embedded servers (also
    supervised) unless the URLs are set. The listening socket is bound here, before anything
    starts (a taken port stops start-up at once), and handed to each API process in turn."""
    listener = _listener(settings)
    if listener is None:
        return 1
    become_subreaper()
    with listener, resolved_with_servers(settings) as (ready, servers):
        admin_key = asyncio.run(prepare_database(ready, create_default_tenant=True))
        key_hint = admin_key is None and not settings.bootstrap_key and asyncio.run(
            _with_connection(ready, lambda conn: tenants.tenant_exists(conn, "default")))
        if ready.worker:
            ready = ready.with_worker_readiness()
        _supervise(Supervisor(_children(ready, servers, listener.fileno())),
                   lambda: _banner(ready, SERVICE_NAMES, admin_key, key_hint=key_hint))
    return 0


def _listener(settings: Settings) -> socket.socket | None:
    """The listening socket on FULI_HOST:FULI_PORT; None, said on stderr, if it is taken."""
    try:
        return listen_socket(settings.host, settings.port)
    except OSError as exc:
        print(f"fuli: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return None


def _supervise(supervisor: Supervisor, started: Callable[[], None]) -> None:
    """Starts the supervisor's children, calls ``started``, and watches them until SIGINT or
    SIGTERM; then stops them."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        supervisor.start()
        started()
        supervisor.run(stop)
    finally:
        supervisor.stop()


def _children(settings: Settings, servers: EmbeddedServers | None,
              listen_fd: int) -> list[Child]:
    """What `fuli up` supervises, in the order it stops them: the API first (no new work),
    the worker (it relays what the last requests wrote), then the servers."""
    env = _child_env(settings)
    children: list[Child] = list(_api_children(settings, env, listen_fd))
    if settings.worker:
        children.append(ProcessChild("worker", [*CLI, "worker"], env))
    if servers is not None and servers.owner:
        if servers.postgres.url == settings.database_url:
            children.append(ServerChild("postgres", servers.postgres,
                                        lambda: servers.restart(servers.postgres)))
        if servers.valkey.url == settings.redis_url:
            children.append(ServerChild("valkey", servers.valkey,
                                        lambda: servers.restart(servers.valkey)))
    return children


def _api_children(settings: Settings, env: dict[str, str], listen_fd: int,
                  service: str | None = None) -> list[ProcessChild]:
    """``settings.workers`` API processes serving the listening socket ``listen_fd``."""
    argv = [*CLI, "serve", "--listen-fd", str(listen_fd),
            *(["--service", service] if service else [])]
    names = ["api"] if settings.workers == 1 else [
        f"api-{n}" for n in range(1, settings.workers + 1)]
    return [ProcessChild(name, argv, {**env, "FULI_WORKERS": "1"}, pass_fds=[listen_fd])
            for name in names]


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["FULI_DATABASE_URL"] = settings.database_url or ""
    env["FULI_REDIS_URL"] = settings.redis_url or ""
    for name, value in (("FULI_READY_MAX_HEARTBEAT_AGE_S", settings.ready_max_heartbeat_age_s),
                        ("FULI_READY_MAX_LAG_S", settings.ready_max_lag_s)):
        if value is not None:
            env[name] = str(value)
    return env


def freeze_startup_heap() -> None:
    """Leaves what the process built to start (imported modules, the app) out of the garbage
    collector's full passes. Each full pass walked all of it: in the API process that was a
    pause of 80-130 ms every few seconds under load, every request in flight waiting."""
    gc.collect()
    gc.freeze()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    mounted = (args.service,) if args.service else SERVICE_NAMES
    # Under `fuli up`: the listening socket it bound, and it prints the banner.
    inherited = None if args.listen_fd is None else socket.socket(fileno=args.listen_fd)
    if inherited is None and settings.workers > 1:
        return _serve_with_processes(settings, args.service, mounted)
    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        if inherited is None:
            _banner(ready, mounted, None)
        # The other services are hosted too (not mounted), for in-process calls when
        # FULI_POINTS_URL and friends are not set.
        stack = Stack(ready, SERVICES, mounted=list(mounted), console=console_directory(ready))
        freeze_startup_heap()
        serve(stack, ready, inherited)
    return 0


def _serve_with_processes(settings: Settings, service: str | None,
                          mounted: tuple[str, ...]) -> int:
    """`fuli serve` with FULI_WORKERS > 1: binds the socket and supervises that many API
    processes serving it, as `fuli up` does."""
    listener = _listener(settings)
    if listener is None:
        return 1
    with listener, resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        _supervise(Supervisor(_api_children(ready, _child_env(ready), listener.fileno(),
                                            service)),
                   lambda: _banner(ready, mounted, None))
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.check:
        ok, message = check_worker(settings)
        print(message, file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1

    from services.runtime.worker import run_worker

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        actors, periodic = jobs(args.service or SERVICE_NAMES)
        freeze_startup_heap()
        run_worker(ready, SERVICES, actors, periodic, stop)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as ready:
        applied = asyncio.run(_with_connection(ready, lambda conn: migrate(conn, MIGRATIONS)))
    for migration in applied:
        print(f"applied {migration.service}/{migration.version:04d}_{migration.name}.sql")
    print(f"{len(applied)} migration(s) applied; the schema is up to date")
    return 0


def cmd_tenant_create(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        issued = asyncio.run(_with_connection(
            ready, lambda conn: tenants.create_tenant(conn, args.name, args.time_zone)))
    print(f"tenant {args.name} created; admin key {issued.key_id} (shown once):")
    print(issued.key)
    return 0


def cmd_key_create(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as ready:
        issued = asyncio.run(_with_connection(
            ready, lambda conn: tenants.create_key(conn, args.tenant, args.role, args.label)))
    print(f"{args.role} key {issued.key_id} for tenant {args.tenant} (shown once):")
    print(issued.key)
    return 0


def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with resolved(settings) as ready:
        asyncio.run(_with_connection(ready, lambda conn: tenants.revoke_key(conn, args.key_id)))
    print(f"key {args.key_id} revoked (running servers stop accepting it within "
          f"{settings.auth_cache_ttl_s:g} s)")
    return 0


async def _require_tenant(settings: Settings, tenant_id: str) -> None:
    """Refuse a command naming a tenant that does not exist, rather than finding nothing."""
    if not await _with_connection(settings,
                                  lambda conn: tenants.tenant_exists(conn, tenant_id)):
        raise NotFound(f"no tenant {tenant_id!r}", code="unknown_tenant")


def cmd_grants_import(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from services.points.grants_import import GrantFileError, import_grants
    from services.points.ledger import standalone

    raw = Path(args.file).read_bytes()

    async def run(ready: Settings) -> Any:
        async with standalone(ready) as ledger:
            with tqdm(unit="item", desc="granting", disable=args.quiet) as bar:
                def progress(items: int) -> None:
                    bar.update(items)

                return await import_grants(ledger, tenant_id=args.tenant, reason=args.reason,
                                           raw=raw, chunk_size=args.chunk_size,
                                           progress=progress)

    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        asyncio.run(_require_tenant(ready, args.tenant))
        try:
            result = asyncio.run(run(ready))
        except GrantFileError as exc:
            print(f"fuli: nothing granted:\n{exc}", file=sys.stderr)
            return 1
    print(f"{result.items} items, {result.points} points: {result.granted_items} granted now, "
          f"{result.replayed_items} already granted before ({result.chunks} chunk(s) of up to "
          f"{args.chunk_size}: {result.granted_chunks} granted now, {result.replayed_chunks} "
          "replayed)")
    return 0


def cmd_ledger_check(settings: Settings, args: argparse.Namespace) -> int:
    from services.points.ledger import standalone

    async def check(ready: Settings) -> Any:
        async with standalone(ready) as ledger:
            return await ledger.check(args.tenant)

    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        if args.tenant:
            asyncio.run(_require_tenant(ready, args.tenant))
        report = asyncio.run(check(ready))
    for problem in report.problems:
        print(f"{problem.tenant_id} {problem.member_id or '-'} {problem.problem} "
              f"{json.dumps(problem.detail, default=str)}")
    scope = f"tenant {args.tenant}" if args.tenant else "all tenants"
    print(f"ledger check ({scope}): " + ("ok" if report.ok else
                                          f"{len(report.problems)} problem(s)"))
    return 0 if report.ok else 1


def cmd_draws_verify(settings: Settings, args: argparse.Namespace) -> int:
    from services.rewards.boxes.boxes import DrawCheck, recheck_revealed_draws

    with resolved(settings) as ready:
        asyncio.run(prepare_database(ready, create_default_tenant=False))
        asyncio.run(_require_tenant(ready, args.tenant))
        check: DrawCheck = asyncio.run(_with_connection(
            ready, lambda conn: recheck_revealed_draws(conn, args.tenant, args.box)))
    for draw_id in check.mismatched:
        print(f"MISMATCH {draw_id}")
    print(f"{check.checked} revealed draw(s) of box {args.box} recomputed: "
          f"{check.checked - len(check.mismatched)} confirmed, {len(check.mismatched)} "
          "mismatched")
    return 1 if check.mismatched else 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    out = Path(args.out)
    stale = []
    for name, text in openapi_documents(settings).items():
        path = out / f"{name}.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale OpenAPI documents (run `fuli openapi`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings \
                and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fuli", formatter_class=_Help,
        description="fuli points-and-rewards engine. Every command uses the embedded servers "
                    "under FULI_DATA_DIR (default .fuli) unless FULI_DATABASE_URL and "
                    "FULI_REDIS_URL are set; while `fuli up` runs, commands attach to its "
                    "servers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help, description=help,  # type: ignore[no-any-return]
                                 formatter_class=_Help)

    def group(name: str, help: str) -> Any:
        return command(sub, name, help).add_subparsers(dest="action", required=True,
                                                       metavar="ACTION")

    command(sub, "up", "serve all four services and run the worker, supervised (what "
                       "`make run` does); listens on FULI_HOST:FULI_PORT (127.0.0.1:8000)"
            ).set_defaults(func=cmd_up)
    serve = command(sub, "serve", "serve the services without the worker (cluster mode)")
    serve.add_argument("service", nargs="?", choices=SERVICE_NAMES,
                       help="only this service (default: all four)")
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)
    worker = command(sub, "worker", "run actors, the outbox relay and periodic jobs")
    worker.add_argument("--service", action="append", choices=SERVICE_NAMES,
                        help="only this service's actors (repeatable; default: all)")
    worker.add_argument("--check", action="store_true",
                        help="exit 1 unless a worker on this host beat recently (a liveness "
                             "probe); runs no worker")
    worker.set_defaults(func=cmd_worker)
    command(sub, "migrate", "apply pending migrations").set_defaults(func=cmd_migrate)

    tenant = group("tenant", "tenants")
    create = command(tenant, "create", "create a tenant and print its admin key once")
    create.add_argument("name", help="the tenant's name: lowercase letters, digits, - and _")
    create.add_argument("--time-zone", default=tenants.DEFAULT_TIME_ZONE,
                        help="the IANA time zone of the tenant's days, weeks and months")
    create.set_defaults(func=cmd_tenant_create)

    key = group("key", "API keys")
    key_create = command(key, "create", "create an API key and print it once")
    key_create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    key_create.add_argument("--role", required=True, choices=tenants.ROLES,
                            help="admin may do everything; operator runs the catalog and "
                                 "campaigns; ingest is a brand backend's (events, spends, "
                                 "member tokens)")
    key_create.add_argument("--label", help="a note to tell keys apart")
    key_create.set_defaults(func=cmd_key_create)
    key_revoke = command(key, "revoke", "revoke an API key")
    key_revoke.add_argument("key_id", help="the key's id: the part after `fuli_` up to the "
                                           "next `_`")
    key_revoke.set_defaults(func=cmd_key_revoke)

    grants = group("grants", "bulk issuance")
    grants_import = command(grants, "import", "grant points from a CSV of "
                                              "member_id,points[,expires_at] rows; safe to "
                                              "re-run after an interruption")
    grants_import.add_argument("file", help="the CSV file (UTF-8, an optional header row)")
    grants_import.add_argument("--tenant", required=True, help="the tenant to grant in")
    grants_import.add_argument("--reason", required=True,
                               help="recorded on every grant (and part of its id)")
    grants_import.add_argument("--chunk-size", type=int, default=1000,
                               help="items per grant, each granted all or nothing (1-10000)")
    grants_import.add_argument("--quiet", action="store_true", help="no progress bar")
    grants_import.set_defaults(func=cmd_grants_import)

    ledger_cmd = group("ledger", "the ledger")
    check = command(ledger_cmd, "check", "verify the ledger's invariants; exit 1 if any is "
                                         "broken")
    check.add_argument("--tenant", help="only this tenant (default: all tenants)")
    check.set_defaults(func=cmd_ledger_check)

    draws_cmd = group("draws", "blind-box draws")
    verify = command(draws_cmd, "verify", "recompute every revealed draw of a box; exit 1 on "
                                          "a mismatch")
    verify.add_argument("--tenant", required=True, help="the box's tenant")
    verify.add_argument("--box", required=True, help="the box id")
    verify.set_defaults(func=cmd_draws_verify)

    openapi = command(sub, "openapi", "write each service's OpenAPI document")
    openapi.add_argument("--out", default=str(OPENAPI_DIR), help="the directory to write to")
    openapi.add_argument("--check", action="store_true",
                         help="write nothing; exit 1 if the written documents are stale")
    openapi.set_defaults(func=cmd_openapi)
    return parser


# Commands that run until they are told to stop: a SIGTERM or SIGINT is how they end, not a
# failure, so `make run` stopped that way is not reported as an error.
RUN_UNTIL_STOPPED = frozenset({"up", "serve", "worker"})


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived where the command has no handler of its own (e.g. while
    starting): it unwinds like Ctrl-C, so embedded servers this process started are stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"fuli: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    try:
        return int(args.func(settings, args))
    except FuliError as exc:
        print(f"fuli: {exc.message}", file=sys.stderr)
        return 1
    except Stopped as stop:
        if args.command in RUN_UNTIL_STOPPED and not getattr(args, "check", False):
            return 0
        print(f"fuli: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
