"""The points service: the ledger of every point."""

from __future__ import annotations

from litestar import Litestar, Router

from services.points.api import CONTROLLERS
from services.runtime.access_api import AccessController
from services.runtime.app import create_service_app
from services.runtime.settings import Settings

SERVICE = "points"


def create_app(settings: Settings, *, standalone: bool = True) -> Litestar:
    return create_service_app(
        service=SERVICE,
        settings=settings,
        route_handlers=[Router(path="/points/v1", route_handlers=[AccessController, *CONTROLLERS])],
        description="Earning rules, events, the double-entry ledger, holds, debits and grants.",
        standalone=standalone,
    )
