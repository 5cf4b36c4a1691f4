"""Which exceptions count as connection faults (503 with Retry-After) and which stay mistakes
(500), checked against the classes of the installed asyncpg and redis-py."""

from __future__ import annotations

import msgspec
import pytest
import redis.exceptions
from asyncpg import exceptions as pg

from services.runtime.errors import (
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    fuli_error_response,
    is_connection_fault,
)

FAULTS = [
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.ConnectionFailureError("lost"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CrashShutdownError("crash"),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.TooManyConnectionsError("too many clients"),
    pg.SerializationError("could not serialize access"),
    pg.DeadlockDetectedError("deadlock detected"),
    pg.InterfaceError("connection is closed"),
    pg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ConnectionRefusedError(111, "Connection refused"),
    FileNotFoundError(2, "No such file or directory"),  # a unix socket of a stopped server
    TimeoutError(),  # asyncio.TimeoutError, e.g. waiting for a pooled connection
    redis.exceptions.ConnectionError("Error 111 connecting"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    ExceptionGroup("dependencies", [pg.AdminShutdownError("x"),
                                    redis.exceptions.ConnectionError("y")]),
]

MISTAKES = [
    pg.DataError("invalid input for query argument $1"),
    pg.UniqueViolationError("duplicate key"),
    pg.UndefinedColumnError("column does not exist"),
    redis.exceptions.ResponseError("WRONGTYPE"),
    redis.exceptions.NoScriptError("NOSCRIPT"),
    msgspec.ValidationError("bad"),
    KeyError("x"),
    ValueError("x"),
    ExceptionGroup("dependencies", [pg.AdminShutdownError("x"), KeyError("y")]),
]


@pytest.mark.parametrize("exc", FAULTS, ids=lambda e: type(e).__name__)
def test_connection_faults(exc: Exception) -> None:
    assert is_connection_fault(exc)


@pytest.mark.parametrize("exc", MISTAKES, ids=lambda e: type(e).__name__)
def test_mistakes_are_not_faults(exc: Exception) -> None:
    assert not is_connection_fault(exc)


def test_every_503_and_429_says_when_to_come_back() -> None:
    class DependencyDown(Unavailable):
        code = "points_unavailable"

    class OtherUnavailable(PayloadTooLarge):  # a 503 not derived from Unavailable
        status_code = 503

    for exc, after in ((Unavailable("down"), "1"), (DependencyDown("down"), "1"),
                       (OtherUnavailable("down"), "1"), (RateLimited(2.5), "3")):
        response = fuli_error_response(exc)
        assert response.headers["Retry-After"] == after
    assert "Retry-After" not in fuli_error_response(PayloadTooLarge("big")).headers
    assert Unavailable.code == "service_unavailable"
