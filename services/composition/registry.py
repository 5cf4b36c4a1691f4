"""The one list of services, and everything that needs all of them: migrations in order, the
worker's actors and periodic jobs, the OpenAPI documents. The composition package is the only
code that imports every service."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.points import actors as points_actors
from services.points.app import POINTS
from services.rewards import actors as rewards_actors
from services.rewards.app import REWARDS
from services.runtime.bus import ActorSpec, PeriodicJob
from services.runtime.migrations import RUNTIME, Source
from services.runtime.openapi import served_document
from services.runtime.service import Host, ServiceSpec
from services.runtime.settings import Settings
from services.tiers import actors as tiers_actors
from services.tiers.app import TIERS
from services.webhooks import actors as webhooks_actors
from services.webhooks.app import WEBHOOKS

# In dependency order: components open in this order. Calls between the apps happen at request
# time, after all are open, so points and rewards may read segments from tiers in-process.
SERVICES: tuple[ServiceSpec[Any], ...] = (POINTS, REWARDS, TIERS, WEBHOOKS)
SERVICE_NAMES: tuple[str, ...] = tuple(spec.name for spec in SERVICES)
MIGRATIONS: tuple[Source, ...] = (RUNTIME, *((spec.name, spec.package) for spec in SERVICES))

_ACTORS: dict[str, tuple[Sequence[ActorSpec], Sequence[PeriodicJob]]] = {
    "points": (points_actors.ACTORS, points_actors.PERIODIC),
    "rewards": (rewards_actors.ACTORS, rewards_actors.PERIODIC),
    "tiers": (tiers_actors.ACTORS, tiers_actors.PERIODIC),
    "webhooks": (webhooks_actors.ACTORS, webhooks_actors.PERIODIC),
}


def jobs(services: Sequence[str] = SERVICE_NAMES) -> tuple[list[ActorSpec], list[PeriodicJob]]:
    """The actors and periodic jobs of ``services``."""
    actors: list[ActorSpec] = []
    periodic: list[PeriodicJob] = []
    for name in services:
        service_actors, service_periodic = _ACTORS[name]
        actors.extend(service_actors)
        periodic.extend(service_periodic)
    return actors, periodic


def openapi_documents(settings: Settings) -> dict[str, str]:
    """Each service's OpenAPI document, as committed under proto/openapi/."""
    return {
        name: json.dumps(served_document(app), indent=2, sort_keys=True) + "\n"
        for name, app in Host(settings, SERVICES).apps.items()
    }
