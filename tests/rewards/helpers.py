"""Helpers of the rewards tests: a points client that fails on demand, a count of the rows
a request could have changed, and cursors a list newest first refuses."""

from __future__ import annotations

from collections.abc import Callable

from services.rewards.points_client import PointsClient
from services.runtime.pagination import encode_cursor
from services.runtime.peer_http import (
    InProcess,
    PeerHttp,
    PeerResponse,
    PeerTransport,
    PeerUnreachable,
    Query,
)
from services.runtime.resources import Resources
from services.runtime.stack import Stack


class FailingTransport:
    """The points app in this process, as the stack calls it, unreachable for the calls whose
    path ``fails`` picks."""

    def __init__(self, inner: PeerTransport, fails: Callable[[str], bool]) -> None:
        self.inner = inner
        self.fails = fails

    async def request(self, method: str, path: str, headers: dict[str, str],
                      query: Query | None, content: bytes | None) -> PeerResponse:
        if self.fails(path):
            raise PeerUnreachable("ConnectError")
        return await self.inner.request(method, path, headers, query, content)

    async def aclose(self) -> None:
        await self.inner.aclose()


def points_client_with(stack: Stack, fails: Callable[[str], bool]) -> PointsClient:
    """A client of the stack's points app whose calls fail when ``fails`` says so of their
    path."""
    transport = FailingTransport(InProcess(stack.host.apps["points"], "points.internal"), fails)
    return PointsClient(PeerHttp(transport, stack.host.resources, "rewards"))


async def rewards_rows(resources: Resources, tenant: str) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM rewards.redemptions WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.codes WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.coupons WHERE tenant_id = $1),"
        " (SELECT coalesce(sum(stock_left), 0) FROM rewards.perks WHERE tenant_id = $1),"
        " (SELECT count(*) FROM points.holds WHERE tenant_id = $1),"
        " (SELECT count(*) FROM fuli.idempotency WHERE tenant_id = $1)", tenant)
    return tuple(row)


# Not a cursor, one part, not a time, a time without an offset, before year 1 in UTC, a NUL.
BAD_NEWEST_FIRST_CURSORS = [
    "!!!!", encode_cursor("x"), encode_cursor("not-a-time", "p"),
    encode_cursor("2026-01-01T00:00:00", "p"), encode_cursor("0001-01-01T00:00:00+14:00", "p"),
    encode_cursor("2026-01-01T00:00:00+00:00", "p\x00q")]
