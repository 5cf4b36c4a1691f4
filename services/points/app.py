"""The points service: the ledger of every point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Router

from services.points.api import CONTROLLERS
from services.points.group_commit import EventCommitter
from services.points.ledger import Ledger
from services.points.stats import Stats
from services.runtime.access_api import AccessController
from services.runtime.resources import Resources
from services.runtime.service import Peers, ServiceSpec
from services.runtime.tiers_client import TiersClient


@dataclass(frozen=True)
class PointsComponents:
    ledger: Ledger
    stats: Stats


@contextlib.asynccontextmanager
async def open_components(resources: Resources, peers: Peers) -> AsyncIterator[PointsComponents]:
    grouped = resources.settings.event_group_commit
    committer = EventCommitter(resources.pool, max_group=200 if grouped else 1,
                               max_in_flight=4 if grouped else resources.settings.db_pool_max)
    # Grants to a segment read its member list through the tiers API (a peer in-process).
    tiers = TiersClient.connect(resources, peers, "points")
    try:
        yield PointsComponents(ledger=Ledger(resources.pool, committer, tiers),
                               stats=Stats(resources.pool))
    finally:
        await tiers.close()


POINTS: ServiceSpec[PointsComponents] = ServiceSpec(
    name="points",
    package="services.points",
    description="Earning rules, events, the double-entry ledger, holds, debits and grants.",
    route_handlers=[Router(path="/points/v1", route_handlers=[AccessController, *CONTROLLERS])],
    components=open_components,
    provides={"ledger": lambda components: components.ledger,
              "stats": lambda components: components.stats},
)
