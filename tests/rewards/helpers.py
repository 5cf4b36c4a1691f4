"""Helpers of the rewards tests: a points client that fails on demand, and a count of the rows
a request could have changed."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from services.points.app import POINTS, PointsComponents
from services.points.group_commit import EventCommitter
from services.points.ledger import Ledger
from services.rewards.points_client import PointsClient
from services.runtime.app import create_service_app
from services.runtime.resources import Resources


class FailingTransport(httpx.AsyncBaseTransport):
    """The points API, unreachable for the requests ``fails`` picks."""

    def __init__(self, inner: httpx.AsyncBaseTransport,
                 fails: Callable[[httpx.Request], bool]) -> None:
        self.inner = inner
        self.fails = fails

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fails(request):
            raise httpx.ConnectError("points service unreachable", request=request)
        return await self.inner.handle_async_request(request)


def points_client_with(resources: Resources,
                       fails: Callable[[httpx.Request], bool]) -> PointsClient:
    """A points client whose calls fail when ``fails`` says so."""
    points_app = create_service_app(POINTS, resources.settings)
    points_app.state.resources = resources
    points_app.state.components = PointsComponents(
        ledger=Ledger(resources.pool, EventCommitter(resources.pool)))
    transport = FailingTransport(httpx.ASGITransport(app=points_app), fails)
    http = httpx.AsyncClient(transport=transport, base_url="http://points.internal")
    return PointsClient(http, resources)


async def rewards_rows(resources: Resources, tenant: str) -> tuple[int, ...]:
    row = await resources.pool.fetchrow(
        "SELECT (SELECT count(*) FROM rewards.redemptions WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.codes WHERE tenant_id = $1),"
        " (SELECT count(*) FROM rewards.coupons WHERE tenant_id = $1),"
        " (SELECT coalesce(sum(stock_left), 0) FROM rewards.perks WHERE tenant_id = $1),"
        " (SELECT count(*) FROM points.holds WHERE tenant_id = $1),"
        " (SELECT count(*) FROM fuli.idempotency WHERE tenant_id = $1)", tenant)
    return tuple(row)
