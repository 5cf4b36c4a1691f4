"""The rewards service: perks, redemptions, coupons, blind boxes, red packets, team-buy,
tasks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Router

from services.rewards.boxes.api import BoxesController
from services.rewards.boxes.boxes import Boxes
from services.rewards.catalog.api import PerksController, RedemptionsController
from services.rewards.catalog.catalog import Catalog
from services.rewards.catalog.redemptions import Redemptions
from services.rewards.catalog.stock import StockMirror
from services.rewards.points_client import PointsClient
from services.rewards.red_packets.api import RedPacketsController
from services.rewards.red_packets.red_packets import RedPackets
from services.rewards.tasks.api import TasksController
from services.rewards.tasks.tasks import Tasks
from services.rewards.team_buy.api import CampaignsController, TeamBuyController
from services.rewards.team_buy.team_buy import TeamBuy
from services.rewards.wallet.api import WalletController
from services.rewards.wallet.wallet import Wallet
from services.runtime.resources import Resources
from services.runtime.service import Peers, ServiceSpec
from services.runtime.tiers_client import TiersClient
from services.runtime.worker import WorkerContext


@dataclass(frozen=True)
class RewardsComponents:
    points: PointsClient
    catalog: Catalog
    redemptions: Redemptions
    wallet: Wallet
    boxes: Boxes
    red_packets: RedPackets
    team_buy: TeamBuy
    tasks: Tasks


@contextlib.asynccontextmanager
async def open_components(resources: Resources,
                          peers: Peers) -> AsyncIterator[RewardsComponents]:
    points = PointsClient.connect(resources, peers)
    tiers = TiersClient.connect(resources, peers, "rewards")
    stock = StockMirror(resources.redis)
    try:
        yield RewardsComponents(
            points=points,
            catalog=Catalog(resources.pool, stock),
            redemptions=Redemptions(resources.pool, points, stock),
            wallet=Wallet(resources.pool, tiers),
            boxes=Boxes(resources.pool, points),
            red_packets=RedPackets(resources, points),
            team_buy=TeamBuy(resources, points),
            tasks=Tasks(resources.pool, points))
    finally:
        await tiers.close()
        await points.close()


async def components() -> RewardsComponents:
    """The rewards components of the worker's host, for the actors."""
    return await WorkerContext.components("rewards", RewardsComponents)


REWARDS: ServiceSpec[RewardsComponents] = ServiceSpec(
    name="rewards",
    package="services.rewards",
    description="Everything members spend points on, and team-buy leaderboards.",
    route_handlers=[Router(path="/rewards/v1", route_handlers=[
        PerksController, RedemptionsController, WalletController, BoxesController,
        RedPacketsController, CampaignsController, TeamBuyController, TasksController])],
    components=open_components,
    provides={"catalog": lambda c: c.catalog, "redemptions": lambda c: c.redemptions,
              "wallet": lambda c: c.wallet, "boxes": lambda c: c.boxes,
              "red_packets": lambda c: c.red_packets, "team_buy": lambda c: c.team_buy,
              "tasks": lambda c: c.tasks},
)
