"""Structured JSON logs with a request id, Prometheus metrics, health checks."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from services.runtime.requests import scope_header

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None)

REQUESTS = Counter("fuli_http_requests_total", "HTTP requests",
                   ["service", "method", "route", "status"])
LATENCY = Histogram("fuli_http_request_duration_seconds", "HTTP request latency",
                    ["service", "method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
OUTBOX_LAG = Gauge("fuli_outbox_lag_seconds",
                   "Age of the oldest event not yet applied by every consumer (parked aside)")
OUTBOX_PENDING = Gauge("fuli_outbox_pending_events",
                       "Events not yet applied by every consumer (parked aside)")
OUTBOX_PARKED = Gauge("fuli_outbox_parked_events",
                      "Events a consumer has failed to apply through 8 sends; kept, still sent")
WORKER_HEARTBEAT_AGE = Gauge("fuli_worker_heartbeat_age_seconds",
                             "Age of the newest worker heartbeat (+Inf when no worker beat)")

_log_encoder = msgspec.json.Encoder()
access_log = logging.getLogger("fuli.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _log_encoder.encode(entry).decode()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    access_log.setLevel(level)


class RequestContextMiddleware:
    """Gives each request an id (X-Request-ID if the caller sent a sane one) and a start time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind: str = scope["type"]
        if kind != "http":
            await self.app(scope, receive, send)
            return
        token = request_id_var.set(request_context(scope)[0])
        try:
            await self.app(scope, receive, send)
        finally:
            request_id_var.reset(token)


# A request id is this process's random half and a count: unique like a random UUID's 32 hex
# digits, without asking the kernel for randomness on every request.
_process_id = os.urandom(8).hex()
_requests = itertools.count()


def request_context(scope: Scope) -> tuple[str, float]:
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        incoming = scope_header(scope, b"x-request-id") or ""
        state["request_id"] = (incoming if 0 < len(incoming) <= 128
                               else f"{_process_id}{next(_requests):016x}")
        state["started"] = time.perf_counter()
    return state["request_id"], state["started"]


def response_observer(service: str) -> Callable[[Message, Scope], Awaitable[None]]:
    """A before_send hook: sees every response, error responses included, so the request id
    header, the metrics and the access log carry the status the client really got."""

    observed: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def observe(message: Message, scope: Scope) -> None:
        if scope["type"] != ScopeType.HTTP:
            return
        request_id, started = request_context(scope)
        seen = scope["state"]  # per request: the status sent, for the body's turn
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            message["headers"] = [*message.get("headers", []),
                                  (b"x-request-id", request_id.encode("latin-1"))]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            elapsed = time.perf_counter() - started
            status = seen.get("status", 500)
            route = scope.get("path_template") or "unmatched"
            method = scope["method"]
            counted = (method, route, status)
            series = observed.get(counted)
            if series is None:  # labels() takes a lock and builds the key on every call
                series = observed[counted] = (REQUESTS.labels(service, method, route,
                                                              str(status)),
                                              LATENCY.labels(service, method, route))
            series[0].inc()
            series[1].observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={"fields": {
                    "request_id": request_id, "service": service, "method": method,
                    "path": scope["path"], "route": route, "status": status,
                    "ms": round(elapsed * 1000, 2)}})

    return observe
