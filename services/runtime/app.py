"""The app factory every service uses: auth, rate limits, errors, health, metrics, OpenAPI."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from proto.common import Health
from services.runtime.auth import ACCESS_OPT, EXCLUDE_OPT, AuthMiddleware
from services.runtime.deps import PrincipalDep, get_principal, get_resources
from services.runtime.errors import EXCEPTION_HANDLERS
from services.runtime.heartbeat import newest_heartbeat_age
from services.runtime.idempotency import Outcome
from services.runtime.observability import (
    OUTBOX_LAG,
    OUTBOX_PARKED,
    OUTBOX_PENDING,
    WORKER_HEARTBEAT_AGE,
    RequestContextMiddleware,
    response_observer,
)
from services.runtime.openapi import install_contract
from services.runtime.outbox import outbox_backlog
from services.runtime.ratelimit import RateLimitMiddleware
from services.runtime.requests import StrictRequest
from services.runtime.resources import Resources
from services.runtime.service import MetricsRefresh, ServiceSpec
from services.runtime.settings import Settings

API_VERSION = "1.0.0"
PUBLIC = {EXCLUDE_OPT: True}


# Litestar adds "; charset=utf-8" to every text/* type itself: without this, it came twice.
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")

# How long a client (or a load balancer) should wait before asking a not-ready process again.
NOT_READY_RETRY_AFTER_S = 5


def health_handlers(prefix: str, refresh: MetricsRefresh | None = None
                    ) -> list[ControllerRouterHandler]:
    @get(f"{prefix}/health/live", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
    def live() -> Health:
        return Health(status="ok")

    @get(f"{prefix}/health/ready", opt=PUBLIC, include_in_schema=False)
    async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
        checks = await readiness_checks(request.app.state.resources)
        if all(value == "ok" for value in checks.values()):
            return Response(Health(status="ok", checks=checks), status_code=200)
        return Response(Health(status="unavailable", checks=checks), status_code=503,
                        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)})

    @get(f"{prefix}/metrics", opt=PUBLIC, include_in_schema=False)
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        resources: Resources = request.app.state.resources
        async with resources.pool.acquire() as conn:
            backlog = await outbox_backlog(conn)
            heartbeat_age = await newest_heartbeat_age(conn)
            if refresh is not None:
                await refresh(conn)
        OUTBOX_PENDING.set(backlog.pending)
        OUTBOX_LAG.set(backlog.lag_s)
        OUTBOX_PARKED.set(backlog.parked)
        WORKER_HEARTBEAT_AGE.set(math.inf if heartbeat_age is None else heartbeat_age)
        return Response(generate_latest(), media_type=METRICS_MEDIA_TYPE)

    return [live, ready, metrics]


async def readiness_checks(resources: Resources) -> dict[str, str]:
    """PostgreSQL and Redis reachable and, where the settings ask for it (a process that runs
    the worker beside it: Settings.with_worker_readiness), a worker heartbeat fresher than
    ``ready_max_heartbeat_age_s`` and no unapplied event older than ``ready_max_lag_s``.
    Polled often, so it costs one PostgreSQL connection and at most two small queries."""
    max_age = resources.settings.ready_max_heartbeat_age_s
    max_lag = resources.settings.ready_max_lag_s
    checks: dict[str, str] = {}
    heartbeat_age: float | None = None
    lag = 0.0
    try:
        async with resources.pool.acquire() as conn:
            if max_age:  # reading the heartbeat checks PostgreSQL too
                heartbeat_age = await newest_heartbeat_age(conn)
            else:
                await conn.fetchval("SELECT 1")
            if max_lag:
                lag = (await outbox_backlog(conn)).lag_s
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"error: {type(exc).__name__}"
    try:
        await resources.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    postgres_ok = checks["postgres"] == "ok"
    if max_age:
        if not postgres_ok:
            checks["worker"] = "unknown: PostgreSQL unreachable"
        elif heartbeat_age is None:
            checks["worker"] = "no heartbeat: no worker is running"
            WORKER_HEARTBEAT_AGE.set(math.inf)
        else:
            WORKER_HEARTBEAT_AGE.set(heartbeat_age)
            checks["worker"] = "ok" if heartbeat_age <= max_age else (
                f"stale heartbeat: the newest is {heartbeat_age:.1f} s old "
                f"(limit {max_age:g} s)")
    if max_lag:
        if not postgres_ok:
            checks["event_lag"] = "unknown: PostgreSQL unreachable"
        else:
            OUTBOX_LAG.set(lag)
            checks["event_lag"] = "ok" if lag <= max_lag else (
                f"behind: the oldest unapplied event is {lag:.1f} s old (limit {max_lag:g} s)")
    return checks


def _check_every_route_has_access(app: Litestar, public_prefixes: Sequence[str]) -> None:
    """Refuse to start if a route has neither an ``access`` nor an explicit public marker."""
    for route in app.routes:
        if any(route.path.startswith(p) for p in public_prefixes):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get(EXCLUDE_OPT) or handler.http_methods == {"OPTIONS"}:
                continue
            if ACCESS_OPT not in handler.opt:
                raise RuntimeError(f"route {route.path} has no access (allow)")


def _from_components(pick: Callable[[Any], object]) -> Provide:
    # Depends on the principal only to be resolved after it: Litestar resolves independent
    # dependencies of a handler together in an anyio task group, which costs more per request
    # than the earn path's whole handler; one after the other, two lookups cost next to nothing.
    def provide(request: Request[Any, Any, Any], principal: PrincipalDep) -> Any:
        return pick(request.app.state.components)

    return Provide(provide, sync_to_thread=False)


def docs_ui(docs_path: str) -> tuple[SwaggerRenderPlugin, ControllerRouterHandler]:
    """Swagger UI at ``docs_path``, its scripts and styles served by the app itself from the
    swagger-ui-bundle wheel: the docs work offline and where public CDNs are blocked."""
    assets = f"{docs_path}/assets"
    plugin = SwaggerRenderPlugin(
        js_url=f"{assets}/swagger-ui-bundle.js", css_url=f"{assets}/swagger-ui.css",
        standalone_preset_js_url=f"{assets}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{assets}/favicon-32x32.png'>",
        path="/swagger")
    router = create_static_files_router(assets, directories=[Path(str(swagger_ui_path))],
                                        opt=PUBLIC, include_in_schema=False, name="docs-assets")
    return plugin, router


def options_answer() -> tuple[Callable[[Request[Any, Any, Any]], Any], dict[str, str]]:
    """A before-request hook answering OPTIONS with every method of the path, and the table
    (path template -> Allow) to fill once the app's routes are known. Litestar's own OPTIONS
    handler lists only the methods of the first handler registered for a path."""
    allowed: dict[str, str] = {}

    async def answer(request: Request[Any, Any, Any]) -> Response[None] | None:
        # async: Litestar would run a plain function hook in a worker thread, on every request
        if request.method != "OPTIONS":
            return None
        methods = allowed.get(request.scope.get("path_template", ""), "OPTIONS")
        return Response(None, status_code=204, headers={"Allow": methods})

    return answer, allowed


def create_service_app(spec: ServiceSpec[Any], settings: Settings) -> Litestar:
    """A Litestar app whose every path starts with ``/<service>``. Its Resources and
    components are put on ``app.state`` by the Host that runs it."""
    prefix = f"/{spec.name}"
    docs_path = f"{prefix}/docs"
    docs_plugin, docs_assets = docs_ui(docs_path)
    answer_options, allowed_methods = options_answer()
    app = Litestar(
        route_handlers=[*health_handlers(prefix, spec.metrics), docs_assets, *spec.route_handlers],
        dependencies={
            "resources": Provide(get_resources, sync_to_thread=False),
            "principal": Provide(get_principal, sync_to_thread=False),
            **{name: _from_components(pick) for name, pick in spec.provides.items()},
        },
        middleware=[
            RequestContextMiddleware,
            DefineMiddleware(AuthMiddleware, exclude=[docs_path]),
            RateLimitMiddleware(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title=f"fuli {spec.name}", version=API_VERSION, description=spec.description,
            path=docs_path, render_plugins=[docs_plugin], use_handler_docstrings=True,
        ),
        request_class=StrictRequest,
        request_max_body_size=settings.max_body_bytes,
        before_send=[response_observer(spec.name)],
        before_request=answer_options,
        logging_config=None,
        state=State({"service": spec.name}),
        debug=False,
    )
    _check_every_route_has_access(app, [docs_path])
    allowed_methods.update({route.path_format: ", ".join(sorted(route.methods))
                            for route in app.routes if isinstance(route, HTTPRoute)})
    install_contract(app)
    return app


def replayable(status: int, struct: type) -> dict[int, ResponseSpec]:
    """Documents the body of a handler that answers with stored (replayable) bytes."""
    return {status: ResponseSpec(data_container=struct, description=struct.__doc__ or "",
                                 generate_examples=False)}


def outcome_response(outcome: Outcome) -> Response[bytes]:
    """A stored outcome as the HTTP answer; a replay says so in ``Idempotent-Replayed``."""
    return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)


def json_response(body: bytes, status_code: int, *, replayed: bool = False) -> Response[bytes]:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)
