"""All three services in one process on one port, mounted at /points, /rewards and /tiers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Litestar, get
from litestar.types import Receive, Scope, Send

from services.runtime.app import PUBLIC, health_handlers
from services.runtime.errors import EXCEPTION_HANDLERS
from services.runtime.observability import response_observer
from services.runtime.resources import Resources
from services.runtime.settings import Settings

SERVICES = ("points", "rewards", "tiers")


def service_apps(settings: Settings) -> dict[str, Litestar]:
    from services.points.app import create_app as points_app
    from services.rewards.app import create_app as rewards_app
    from services.tiers.app import create_app as tiers_app

    return {
        "points": points_app(settings, standalone=False),
        "rewards": rewards_app(settings, standalone=False),
        "tiers": tiers_app(settings, standalone=False),
    }


def root_app() -> Litestar:
    @get("/", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
    def index() -> dict[str, Any]:
        return {"service": "fuli", "apis": {
            name: {"prefix": f"/{name}/v1", "docs": f"/{name}/docs",
                   "openapi": f"/{name}/docs/openapi.json"} for name in SERVICES}}

    return Litestar(route_handlers=[index, *health_handlers("")], openapi_config=None,
                    exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
                    before_send=[response_observer("root")], logging_config=None)


class Stack:
    """An ASGI app routing on the first path segment; its lifespan opens one set of Resources
    and shares it between the services."""

    def __init__(self, settings: Settings, apps: Mapping[str, Litestar] | None = None) -> None:
        self.settings = settings
        self.apps = dict(apps) if apps is not None else service_apps(settings)
        self.root = root_app()
        self.resources: Resources | None = None

    def attach(self, resources: Resources) -> None:
        self.resources = resources
        for app in (*self.apps.values(), self.root):
            app.state.resources = resources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        segment = scope["path"].split("/", 2)[1] if scope["path"].startswith("/") else ""
        await self.apps.get(segment, self.root)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.attach(await Resources.open(self.settings))
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.resources is not None:
                    await self.resources.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
