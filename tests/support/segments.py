"""Segments in tests: a seeded population: tiers from real points events under a threshold
policy; lifecycle stages and tags seeded straight into tiers.member_stages and
tiers.member_tags, as the lifecycle and tags features (built beside segments) will write them.
An end-to-end test through their events follows once they are in.

Every expected set is computed by the tests from the seeds below, not from the service."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from services.composition.registry import SERVICES
from services.runtime.resources import Resources
from services.runtime.settings import Settings
from services.runtime.stack import Stack
from tests.support.api import Points, Tenant, uid
from tests.support.bus import deliver

LADDER = {"mode": "threshold", "tiers": [
    {"name": "fan"},
    {"name": "member", "min": {"spend_cents": 30_000}},
    {"name": "vip", "min": {"spend_cents": 100_000}}]}
THRESHOLDS = [("vip", 100_000), ("member", 30_000), ("fan", 0)]


def tier_of(spend_cents: int | None) -> str:
    """The test's own reading of LADDER; a member without events is at the lowest tier."""
    if spend_cents is None:
        return "fan"
    return next(name for name, line in THRESHOLDS if spend_cents >= line)


@dataclass
class Seeded:
    """Who was seeded with what: spend (None: known only through a group join), stage (None:
    no stage row) and tags."""

    tenant: Tenant
    spend: dict[str, int | None] = field(default_factory=dict)
    stage: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    group_id: str = ""
    in_group: set[str] = field(default_factory=set)

    @property
    def members(self) -> list[str]:
        return sorted(self.spend)

    def tier(self, member: str) -> str:
        return tier_of(self.spend[member])

    def stage_of(self, member: str) -> str:
        return self.stage[member] or "aware"


# (spend, stage, tags) per member: every combination the example segment tells apart.
PLAN: list[tuple[int | None, str | None, set[str]]] = [
    (40_000, "loyal", set()),                        # member, loyal: in
    (150_000, "loyal", {"preference:tea"}),          # vip, loyal: in
    (120_000, "loyal", {"dormant"}),                 # vip, loyal, dormant: out
    (35_000, "purchased", set()),                    # member, purchased: out
    (10_000, "loyal", set()),                        # fan, loyal: out
    (None, "loyal", {"source:wechat"}),              # no tier (lowest: fan): out
    (50_000, None, {"repurchaser"}),                 # member, no stage (aware): out
    (200_000, "loyal", {"repurchaser", "source:wechat"}),  # vip, loyal: in
    (30_000, "loyal", {"dormant", "repurchaser"}),   # member at the line, dormant: out
    (60_000, "interested", {"preference:tea", "repurchaser"}),
    (5_000, None, set()),                            # fan, aware
]


async def seed(client: httpx.AsyncClient, tenant: Tenant, resources: Resources,
               settings: Settings, plan: list[tuple[int | None, str | None, set[str]]] = PLAN
               ) -> Seeded:
    admin = tenant.headers(tenant.admin)
    operator = tenant.headers(tenant.operator)
    assert (await client.put("/tiers/v1/policy", headers=admin, json=LADDER)).status_code \
        == 200
    seeded = Seeded(tenant)
    points = Points(client, tenant)
    seeded.group_id = uid("g")
    response = await client.put(f"/tiers/v1/groups/{seeded.group_id}", headers=operator,
                                json={"name": "Tea lovers", "tier": "member", "kind": "member"})
    assert response.status_code == 200, response.text
    for index, (spend, stage, tags) in enumerate(plan):
        member = uid(f"m{index:02d}")
        seeded.spend[member] = spend
        seeded.stage[member] = stage
        seeded.tags[member] = tags
        if spend is None or index % 3 == 0:
            join = await client.put(f"/tiers/v1/groups/{seeded.group_id}/members/{member}",
                                    headers=operator)
            assert join.status_code == 200, join.text
            seeded.in_group.add(member)
        if spend is not None:
            response = await points.event(member, "purchase", amount_cents=spend)
            assert response.status_code == 201, response.text
    await deliver(resources, settings, tenant.name)
    async with resources.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tiers.tag_groups (tenant_id, tag_group) VALUES ($1, 'preference')",
            tenant.name)
        await conn.executemany(
            "INSERT INTO tiers.member_stages (tenant_id, member_id, stage, since, computed_day)"
            " VALUES ($1, $2, $3, now(), current_date)",
            [(tenant.name, m, s) for m, s in seeded.stage.items() if s is not None])
        await conn.executemany(
            "INSERT INTO tiers.member_tags (tenant_id, member_id, tag, source, since)"
            " VALUES ($1, $2, $3, 'manual', now())",
            [(tenant.name, m, tag) for m, tags in seeded.tags.items() for tag in tags])
    return seeded


EXAMPLE: dict[str, Any] = {"tiers": ["member", "vip"], "stages": ["loyal"],
                           "tags": {"none": ["dormant"]}}


def example_members(seeded: Seeded) -> set[str]:
    """tier in (member, vip) AND lifecycle = loyal AND NOT tag dormant, from the seeds."""
    return {m for m in seeded.members
            if seeded.tier(m) in ("member", "vip") and seeded.stage_of(m) == "loyal"
            and "dormant" not in seeded.tags[m]}


async def put_segment(client: httpx.AsyncClient, tenant: Tenant, segment_id: str,
                      segment_filter: dict[str, Any], name: str = "audience"
                      ) -> httpx.Response:
    return await client.put(f"/tiers/v1/segments/{segment_id}",
                            headers=tenant.headers(tenant.operator),
                            json={"name": name, "filter": segment_filter})


async def segment_members(client: httpx.AsyncClient, tenant: Tenant, segment_id: str,
                          limit: int = 3) -> list[str]:
    """The whole frozen list, page by page."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"/tiers/v1/segments/{segment_id}/members",
                                    headers=tenant.headers(tenant.operator), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [item["member_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def tiers_down_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Every service, with FULI_TIERS_URL pointing at a closed port: the tiers API of a
    stopped tiers service, as rewards and points would reach it in a cluster."""
    own = msgspec.structs.replace(settings, tiers_url=f"http://127.0.0.1:{closed_port()}")
    resources = await Resources.open(own, application_name=f"fuli-tiers-down-{uid('x')}")
    stack = Stack(own, SERVICES)
    await stack.open(resources)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stack),
                                     base_url="http://fuli") as client:
            yield client
    finally:
        await stack.close()
        await resources.close()


async def tenant_members(resources: Resources, tenant: Tenant, count: int) -> None:
    """``count`` known members seeded straight into tiers.members (a population larger than
    an issue may reach)."""
    await resources.pool.execute(
        "INSERT INTO tiers.members (tenant_id, member_id)"
        " SELECT $1, 'bulk-' || i FROM generate_series(1, $2) AS i", tenant.name, count)
