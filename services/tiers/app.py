"""The tiers service: tier policies, community groups, value scores and KOCs, the AIPL
lifecycle, member tags and segments."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Router

from services.runtime.resources import Resources
from services.runtime.service import Peers, ServiceSpec
from services.tiers.groups import api as groups_api
from services.tiers.groups.groups import Groups
from services.tiers.lifecycle import api as lifecycle_api
from services.tiers.lifecycle.lifecycle import Lifecycle
from services.tiers.policy import api as policy_api
from services.tiers.policy.policy import Policies
from services.tiers.segments import api as segments_api
from services.tiers.segments.segments import Segments
from services.tiers.tags import api as tags_api
from services.tiers.tags.tags import Tags
from services.tiers.value import api as value_api
from services.tiers.value.value import Values


@dataclass(frozen=True)
class TiersComponents:
    policies: Policies
    groups: Groups
    values: Values
    lifecycle: Lifecycle
    tags: Tags
    segments: Segments


@contextlib.asynccontextmanager
async def open_components(resources: Resources, peers: Peers) -> AsyncIterator[TiersComponents]:
    pool = resources.pool
    yield TiersComponents(policies=Policies(pool), groups=Groups(pool), values=Values(pool),
                          lifecycle=Lifecycle(pool), tags=Tags(pool), segments=Segments(pool))


TIERS: ServiceSpec[TiersComponents] = ServiceSpec(
    name="tiers",
    package="services.tiers",
    description="Tier policies, community groups and their health, value scores and KOCs, "
                "the AIPL lifecycle, member tags and segments.",
    route_handlers=[Router(path="/tiers/v1", route_handlers=[
        *policy_api.CONTROLLERS, *groups_api.CONTROLLERS, *value_api.CONTROLLERS,
        *lifecycle_api.CONTROLLERS, *tags_api.CONTROLLERS, *segments_api.CONTROLLERS])],
    components=open_components,
    provides={"policies": lambda c: c.policies, "groups": lambda c: c.groups,
              "values": lambda c: c.values, "lifecycle": lambda c: c.lifecycle,
              "tags": lambda c: c.tags, "segments": lambda c: c.segments},
)
