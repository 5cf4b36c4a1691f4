"""The tiers service: tier policies, community groups, value scores and KOCs."""

from __future__ import annotations

from typing import Any

from litestar import Router

from services.runtime.service import ServiceSpec
from services.tiers import api, groups_api

TIERS: ServiceSpec[Any] = ServiceSpec(
    name="tiers",
    package="services.tiers",
    description="Tier policies, community groups and their health, value scores and KOCs.",
    route_handlers=[Router(path="/tiers/v1", route_handlers=[*api.CONTROLLERS,
                                                              *groups_api.CONTROLLERS])],
)
