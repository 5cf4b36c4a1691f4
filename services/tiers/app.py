"""The tiers service: tier policies, community groups, value scores and KOCs."""

from __future__ import annotations

from litestar import Litestar, Router

from services.runtime.app import create_service_app
from services.runtime.settings import Settings
from services.tiers import api, groups_api

SERVICE = "tiers"


def create_app(settings: Settings, *, standalone: bool = True) -> Litestar:
    return create_service_app(
        service=SERVICE,
        settings=settings,
        route_handlers=[Router(path="/tiers/v1", route_handlers=[*api.CONTROLLERS,
                                                                  *groups_api.CONTROLLERS])],
        description="Tier policies, community groups and their health, value scores and KOCs.",
        standalone=standalone,
    )
