"""The rewards service: perks, redemptions, coupons, blind boxes, red packets, team-buy."""

from __future__ import annotations

from litestar import Litestar, Router

from services.rewards.api import CONTROLLERS
from services.rewards.boxes_api import BoxesController
from services.rewards.red_packets_api import RedPacketsController
from services.rewards.team_buy_api import TeamBuyController
from services.runtime.app import create_service_app
from services.runtime.settings import Settings

SERVICE = "rewards"


def create_app(settings: Settings, *, standalone: bool = True) -> Litestar:
    return create_service_app(
        service=SERVICE,
        settings=settings,
        route_handlers=[Router(path="/rewards/v1", route_handlers=[
            *CONTROLLERS, BoxesController, RedPacketsController, TeamBuyController])],
        description="Everything members spend points on, and team-buy leaderboards.",
        standalone=standalone,
    )
