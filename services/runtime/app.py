"""The app factory every service uses: auth, rate limits, errors, health, metrics, OpenAPI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proto.common import Health
from services.runtime.auth import EXCLUDE_OPT, AuthMiddleware
from services.runtime.deps import get_principal, get_resources
from services.runtime.errors import EXCEPTION_HANDLERS
from services.runtime.observability import (
    OUTBOX_LAG,
    OUTBOX_PENDING,
    RequestContextMiddleware,
    response_observer,
)
from services.runtime.outbox import outbox_backlog
from services.runtime.ratelimit import RateLimitMiddleware
from services.runtime.requests import StrictRequest
from services.runtime.resources import Resources
from services.runtime.settings import Settings

API_VERSION = "1.0.0"
PUBLIC = {EXCLUDE_OPT: True}


def health_handlers(prefix: str) -> list[ControllerRouterHandler]:
    @get(f"{prefix}/health/live", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
    def live() -> Health:
        return Health(status="ok")

    @get(f"{prefix}/health/ready", opt=PUBLIC, include_in_schema=False)
    async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
        resources: Resources = request.app.state.resources
        checks: dict[str, str] = {}
        try:
            await resources.pool.fetchval("SELECT 1")
            checks["postgres"] = "ok"
        except Exception as exc:
            checks["postgres"] = f"error: {type(exc).__name__}"
        try:
            await resources.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(value == "ok" for value in checks.values())
        return Response(Health(status="ok" if ok else "unavailable", checks=checks),
                        status_code=200 if ok else 503)

    @get(f"{prefix}/metrics", opt=PUBLIC, include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        resources: Resources = request.app.state.resources
        pending, lag = await outbox_backlog(resources.pool)
        OUTBOX_PENDING.set(pending)
        OUTBOX_LAG.set(lag)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [live, ready, metrics]


def _check_every_route_guarded(app: Litestar, public_prefixes: Sequence[str]) -> None:
    """Refuse to start if a route has neither a guard nor an explicit public marker."""
    for route in app.routes:
        if any(route.path.startswith(p) for p in public_prefixes):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get(EXCLUDE_OPT) or handler.http_methods == {"OPTIONS"}:
                continue
            if not handler.resolve_guards():
                raise RuntimeError(f"route {route.path} has no guard")


def create_service_app(*, service: str, settings: Settings,
                       route_handlers: Sequence[ControllerRouterHandler],
                       description: str, standalone: bool = True) -> Litestar:
    """A Litestar app whose every path starts with ``/<service>``.

    ``standalone`` apps open their own Resources in their lifespan; otherwise whoever mounts the
    app (the one-process stack, the tests) puts Resources on ``app.state.resources``.
    """
    prefix = f"/{service}"
    docs_path = f"{prefix}/docs"

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        resources = await Resources.open(settings, application_name=f"fuli-{service}")
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = Litestar(
        route_handlers=[*health_handlers(prefix), *route_handlers],
        dependencies={
            "resources": Provide(get_resources, sync_to_thread=False),
            "principal": Provide(get_principal, sync_to_thread=False),
        },
        middleware=[
            RequestContextMiddleware,
            DefineMiddleware(AuthMiddleware, exclude=[docs_path]),
            RateLimitMiddleware(exclude=(docs_path,)),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title=f"fuli {service}", version=API_VERSION, description=description,
            path=docs_path, render_plugins=[ScalarRenderPlugin()],
        ),
        request_class=StrictRequest,
        request_max_body_size=settings.max_body_bytes,
        before_send=[response_observer(service)],
        logging_config=None,
        lifespan=[lifespan] if standalone else [],
        state=State({"service": service}),
        debug=False,
    )
    _check_every_route_guarded(app, [docs_path])
    return app


def json_response(body: bytes, status_code: int, *, replayed: bool = False) -> Response[bytes]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)
