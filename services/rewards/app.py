"""The rewards service: perks, redemptions, coupons, blind boxes, red packets, team-buy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Router

from services.rewards.api import CONTROLLERS
from services.rewards.boxes import Drawer
from services.rewards.boxes_api import BoxesController
from services.rewards.points_client import PointsClient
from services.rewards.red_packets.api import RedPacketsController
from services.rewards.red_packets.red_packets import RedPackets
from services.rewards.redemptions import Redeemer
from services.rewards.stock import StockMirror
from services.rewards.team_buy.api import TeamBuyController
from services.rewards.team_buy.team_buy import TeamBuy
from services.runtime.resources import Resources
from services.runtime.service import Peers, ServiceSpec


@dataclass(frozen=True)
class RewardsComponents:
    points: PointsClient
    redeemer: Redeemer
    drawer: Drawer
    red_packets: RedPackets
    team_buy: TeamBuy


@contextlib.asynccontextmanager
async def open_components(resources: Resources,
                          peers: Peers) -> AsyncIterator[RewardsComponents]:
    points = PointsClient.connect(resources, peers)
    try:
        yield RewardsComponents(
            points=points,
            redeemer=Redeemer(resources, points, StockMirror(resources.redis)),
            drawer=Drawer(resources, points),
            red_packets=RedPackets(resources, points),
            team_buy=TeamBuy(resources, points))
    finally:
        await points.close()


REWARDS: ServiceSpec[RewardsComponents] = ServiceSpec(
    name="rewards",
    package="services.rewards",
    description="Everything members spend points on, and team-buy leaderboards.",
    route_handlers=[Router(path="/rewards/v1", route_handlers=[
        *CONTROLLERS, BoxesController, RedPacketsController, TeamBuyController])],
    components=open_components,
    provides={"redeemer": lambda c: c.redeemer, "drawer": lambda c: c.drawer,
              "red_packets": lambda c: c.red_packets, "team_buy": lambda c: c.team_buy},
)
