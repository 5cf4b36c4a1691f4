"""Services in one process on one port, each mounted at ``/<name>``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

from litestar import Litestar, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from services.runtime.app import PUBLIC, health_handlers
from services.runtime.errors import EXCEPTION_HANDLERS, NotFound
from services.runtime.observability import response_observer
from services.runtime.resources import Resources
from services.runtime.service import Host, ServiceSpec
from services.runtime.settings import Settings

# Litestar's ASGI types leave the lifespan protocol out.
LifespanReceive = Callable[[], Awaitable[dict[str, Any]]]
LifespanSend = Callable[[dict[str, Any]], Awaitable[None]]


CONSOLE_PATH = "/console"
# The console holds an API key: it runs only its own scripts, talks only to this origin, and
# may not be framed by another site. Element Plus and ECharts set inline styles.
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self';"
                               " img-src 'self' data:; style-src 'self' 'unsafe-inline';"
                               " font-src 'self' data:; object-src 'none'; base-uri 'self';"
                               " frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def console_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(CONSOLE_HEADERS)
    return response


def console_handlers(directory: Path | None) -> list[Any]:
    """The operators' console at /console/: the files Vite built (``make run`` builds them),
    or, where there are none, a 404 that says how to build them. Hashed assets are cached for
    good; index.html is revalidated so a rebuilt console is picked up at once."""

    if directory is None or not (directory / "index.html").is_file():
        where = "no directory" if directory is None else str(directory)

        @get([CONSOLE_PATH, f"{CONSOLE_PATH}/{{path:path}}"], opt=PUBLIC,
             include_in_schema=False, sync_to_thread=False)
        def console_missing() -> None:
            raise NotFound(
                "the console has not been built: `make run` builds it (or `make console`)",
                code="console_not_built", directory=where)

        return [console_missing]

    assets: Router = create_static_files_router(
        f"{CONSOLE_PATH}/assets", directories=[directory / "assets"], opt=PUBLIC,
        name="console-assets", after_request=console_headers,
        cache_control=CacheControlHeader(max_age=31_536_000, public=True, immutable=True))
    pages: Router = create_static_files_router(
        CONSOLE_PATH, directories=[directory], html_mode=True, opt=PUBLIC, name="console",
        after_request=console_headers,
        cache_control=CacheControlHeader(no_cache=True))
    return [assets, pages]


def root_app(mounted: Sequence[str], console: Path | None = None) -> Litestar:
    @get("/", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
    def index() -> dict[str, Any]:
        return {"service": "fuli", "console": f"{CONSOLE_PATH}/", "apis": {
            name: {"prefix": f"/{name}/v1", "docs": f"/{name}/docs",
                   "openapi": f"/{name}/docs/openapi.json"} for name in mounted}}

    return Litestar(route_handlers=[index, *health_handlers(""), *console_handlers(console)],
                    openapi_config=None,
                    exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
                    before_send=[response_observer("root")], logging_config=None)


class Stack:
    """An ASGI app routing on the first path segment to the mounted services of a Host. Its
    lifespan opens the host (one set of Resources shared by the services); the host may run
    more services than are mounted, for the mounted ones to call in-process."""

    def __init__(self, settings: Settings, specs: Sequence[ServiceSpec[Any]],
                 mounted: Sequence[str] | None = None, console: Path | None = None) -> None:
        self.host = Host(settings, specs)
        names = list(mounted) if mounted is not None else [spec.name for spec in specs]
        self.apps: dict[str, ASGIApp] = {name: self.host.apps[name] for name in names}
        self.root = root_app(names, console)

    async def open(self, resources: Resources | None = None) -> None:
        await self.host.open(resources)
        self.root.state.resources = self.host.resources

    async def close(self) -> None:
        await self.host.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind: str = scope["type"]  # Litestar's Scope type leaves lifespan out
        if kind == "lifespan":
            await self._lifespan(cast(LifespanReceive, receive), cast(LifespanSend, send))
            return
        segment = scope["path"].split("/", 2)[1] if scope["path"].startswith("/") else ""
        await self.apps.get(segment, self.root)(scope, receive, send)

    async def _lifespan(self, receive: LifespanReceive, send: LifespanSend) -> None:
        while True:
            message = await receive()
            kind: str = message["type"]
            if kind == "lifespan.startup":
                try:
                    await self.open()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
