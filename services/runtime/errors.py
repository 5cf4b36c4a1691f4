"""Errors with a stable code, and the one place that maps every error to an HTTP response."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import asyncpg
import msgspec
import redis.exceptions
from asyncpg import exceptions as pg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from proto.common import ErrorBody, ErrorEnvelope

log = logging.getLogger("fuli.errors")


class FuliError(Exception):
    """A domain or request error. Subclasses fix the HTTP status; ``code`` is stable for clients."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def envelope(self) -> ErrorEnvelope:
        return ErrorEnvelope(error=ErrorBody(code=self.code, message=self.message,
                                             details=self.details))


class ValidationFailed(FuliError):
    status_code = 422
    code = "validation_failed"


class Unauthorized(FuliError):
    status_code = 401
    code = "unauthorized"


class Forbidden(FuliError):
    status_code = 403
    code = "forbidden"


class NotFound(FuliError):
    status_code = 404
    code = "not_found"


class Conflict(FuliError):
    status_code = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"

    @classmethod
    def for_key(cls, key: str) -> IdempotencyConflict:
        """``key`` (a request's own id) came back with another request."""
        return cls(f"{key!r} was already used with a different request", id=key)


class PayloadTooLarge(FuliError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(FuliError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__("too many requests", retry_after_s=seconds)
        self.retry_after_s = seconds


class Unavailable(FuliError):
    """A dependency is down or overloaded; the client should retry after a while."""

    status_code = 503
    code = "service_unavailable"
    retry_after_s = 1


# Faults of the connection to PostgreSQL or Redis, or of a transaction PostgreSQL gave up on: the
# same request (with the same id) may well succeed when sent again. asyncpg raises these when a
# server process is terminated (57P01), crashes or restarts (57P02, 57P03, 08xxx), when the
# connection is lost in the middle of a statement (ConnectionDoesNotExistError, "connection is
# closed" InterfaceErrors, "cannot switch to state N" InternalClientErrors of its protocol), when
# the server is out of connections (53xxx), or when a transaction lost a serialization or
# deadlock race (40xxx); the socket itself raises OSError (refused, reset, timed out).
_POSTGRES_FAULTS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    pg.OperatorInterventionError,
    pg.InsufficientResourcesError,
    pg.TransactionRollbackError,
    asyncpg.InternalClientError,
)
# InterfaceErrors that are not about the connection are mistakes in a call (a bad argument, a
# feature missing): those stay 500s.
_INTERFACE_MISTAKES: tuple[type[BaseException], ...] = (
    pg.DataError,
    pg.ClientConfigurationError,
    pg.UnsupportedClientFeatureError,
    pg.UnsupportedServerFeatureError,
)
# redis-py: connection refused or lost, a timeout, a server still loading its data set
# (BusyLoadingError is a ConnectionError), or one in the middle of a fail-over.
_REDIS_FAULTS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


_TEXT_POSTGRESQL_REFUSES = (pg.CharacterNotInRepertoireError, pg.UntranslatableCharacterError)


def is_connection_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault of a connection to PostgreSQL or Redis (see above) rather
    than a mistake: a request failing on one deserves 503 and another try, not 500."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_connection_fault(inner) for inner in exc.exceptions)
    if isinstance(exc, pg.InterfaceError):
        return not isinstance(exc, _INTERFACE_MISTAKES)
    return isinstance(exc, (*_POSTGRES_FAULTS, *_REDIS_FAULTS, OSError))


# Refusals decided in SQL carry a stable code (raised with SQLSTATE P0001 and MESSAGE = code, or
# returned in a row where raising would abort a batch). Codes that are not conflicts:
NOT_FOUND_REFUSALS = frozenset({"unknown_member", "unknown_hold", "unknown_event"})
INVALID_REFUSALS = frozenset({"amount_not_refundable", "same_member", "unknown_action"})


def refusal(code: str, message: str, details: dict[str, Any] | None = None) -> FuliError:
    """The FuliError for a refusal code decided in SQL."""
    details = details or {}
    if code == IdempotencyConflict.code:
        return IdempotencyConflict(message, **details)
    if code in NOT_FOUND_REFUSALS:
        return NotFound(message, code=code, **details)
    if code in INVALID_REFUSALS:
        return ValidationFailed(message, code=code, **details)
    return Conflict(message, code=code, **details)


def refusal_from_database(exc: Exception) -> FuliError | None:
    """The FuliError for a refusal raised by a SQL function, or None for any other error."""
    if getattr(exc, "sqlstate", None) != "P0001":
        return None
    return raised_refusal(str(getattr(exc, "message", "")), getattr(exc, "hint", None),
                          getattr(exc, "detail", None))


def raised_refusal(code: str, hint: str | None, detail: str | None) -> FuliError:
    """The FuliError for what ``points.refuse`` raised: its message (the code), hint and
    detail (the details as JSON), whether caught by the driver or by a SQL function that
    answers many items."""
    code = code or "conflict"
    try:
        details = msgspec.json.decode(detail or "{}")
    except msgspec.DecodeError:
        details = {}
    return refusal(code, hint or code.replace("_", " "),
                   details if isinstance(details, dict) else {})


HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_failed", 429: "rate_limited",
    500: "internal_error", 503: Unavailable.code,
}

_encoder = msgspec.json.Encoder()
_FIELD_IN_MESSAGE = re.compile(r"at `\$\.?([^`]*)`")
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]*)`")


def error_response(status: int, code: str, message: str, details: dict[str, Any],
                   headers: dict[str, str] | None = None) -> Response[bytes]:
    body = ErrorEnvelope(error=ErrorBody(code=code, message=message, details=details))
    return Response(_encoder.encode(body), status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def fuli_error_response(exc: FuliError) -> Response[bytes]:
    # Every 429 and 503 says when to come back (a subclass may set its own retry_after_s).
    headers = ({"Retry-After": str(getattr(exc, "retry_after_s", Unavailable.retry_after_s))}
               if exc.status_code in (429, 503) else None)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)


def describe_decode_error(message: str) -> dict[str, Any]:
    """The failing field of a msgspec error, e.g. ``Expected `int`, got `str` - at
    `$.items[0].points` `` -> ``items[0].points``; unknown and missing fields are named in the
    message and sit under the path."""
    path_match = _FIELD_IN_MESSAGE.search(message)
    path = path_match.group(1) if path_match else ""
    named = _NAMED_FIELD.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return {"field": path} if path else {}


def _validation_response(exc: ValidationException) -> Response[bytes]:
    # Litestar wraps msgspec's message in `extra`: [{"message": ..., "key": ..., "source": ...}]
    message = exc.detail or "invalid request"
    details: dict[str, Any] = {}
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            text = str(item.get("message", ""))
            message = text or message
            details = describe_decode_error(text)
            if "field" not in details and item.get("key"):
                details["field"] = item["key"]
            if item.get("source"):
                details["source"] = item["source"]
            break
    if message.startswith("Validation failed for"):
        message = "invalid request"
    return error_response(422, "validation_failed", message, details)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, FuliError):
        return fuli_error_response(exc)
    refusal = refusal_from_database(exc)
    if refusal is not None:
        return fuli_error_response(refusal)
    if isinstance(exc, _TEXT_POSTGRESQL_REFUSES):
        # A NUL or an unencodable character in a value no pattern kept out (a query parameter).
        return error_response(422, "validation_failed",
                              "text may not contain NUL or unencodable characters", {})
    if isinstance(exc, ValidationException):
        return _validation_response(exc)
    if isinstance(exc, (msgspec.ValidationError, msgspec.DecodeError)):
        return error_response(422, "validation_failed", str(exc), describe_decode_error(str(exc)))
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 400 and "JSON" in str(exc.detail):
            return error_response(422, "validation_failed", "malformed JSON body", {})
        code = HTTP_CODES.get(status, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(status, code, str(exc.detail), {}, headers)
    if is_connection_fault(exc):
        log.warning("%s %s answered 503 after a connection fault: %s: %s", request.method,
                    request.url.path, type(exc).__name__, exc)
        # The fault is named in the log, not to clients.
        return fuli_error_response(Unavailable(
            "a backing service is unavailable for a moment; retry the same request"))
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error", {})


EXCEPTION_HANDLERS = {Exception: handle_exception}
