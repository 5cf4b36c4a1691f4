"""HTTP handlers of red packets: operator pools and member packets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from proto import rewards as r
from services.rewards.red_packets import store
from services.rewards.red_packets.red_packets import RedPackets
from services.runtime.app import json_response
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import NotFound

WRITE = {"rate_group": "write"}
LATEST_OPENS = 20


def now() -> datetime:
    return datetime.now(UTC)


class RedPacketsController(Controller):
    tags = ["red packets"]

    @post("/pools", guards=[allow("operator")], opt=WRITE, status_code=201)
    async def create_pool(self, data: JSONBody[r.PoolIn], principal: PrincipalDep,
                          red_packets: NamedDependency[RedPackets],
                          resources: ResourcesDep) -> r.Pool:
        """A pool of packets funded from the issuance account; idempotent by ``pool_id``."""
        await red_packets.create_pool(principal.tenant_id, data, now())
        return await pool_view(resources, principal.tenant_id, data.pool_id)

    @get("/pools/{pool_id:str}", guards=[allow("operator", "ingest", member=True)])
    async def get_pool(self, pool_id: PathId, principal: PrincipalDep,
                       resources: ResourcesDep) -> r.Pool:
        return await pool_view(resources, principal.tenant_id, pool_id)

    @post("/pools/{pool_id:str}/opens", guards=[allow("ingest", member=True)], opt=WRITE,
          status_code=201)
    async def open_pool(self, pool_id: PathId, data: JSONBody[r.PoolOpenIn],
                        principal: PrincipalDep,
                        red_packets: NamedDependency[RedPackets]) -> Response[bytes]:
        """Open one packet: pay the opening cost, get a share; idempotent by ``open_id``."""
        principal.require_member(data.member_id)
        outcome = await red_packets.open(principal.tenant_id, pool_id, data, now())
        return json_response(outcome.body, outcome.status_code, replayed=outcome.replayed)

    @post("/packets", guards=[allow("ingest", member=True)], opt=WRITE, status_code=201)
    async def make_packet(self, data: JSONBody[r.PacketIn], principal: PrincipalDep,
                          red_packets: NamedDependency[RedPackets],
                          resources: ResourcesDep) -> r.Packet:
        """A member's red packet, paid from their points; idempotent by ``packet_id``."""
        principal.require_member(data.member_id)
        await red_packets.make_packet(principal.tenant_id, data, now())
        return await packet_view(resources, principal.tenant_id, data.packet_id)

    @get("/packets/{packet_id:str}", guards=[allow("operator", "ingest", member=True)])
    async def get_packet(self, packet_id: PathId, principal: PrincipalDep,
                         resources: ResourcesDep) -> r.Packet:
        return await packet_view(resources, principal.tenant_id, packet_id)

    @post("/packets/{packet_id:str}/grabs", guards=[allow("ingest", member=True)], opt=WRITE,
          status_code=201)
    async def grab(self, packet_id: PathId, data: JSONBody[r.GrabIn], principal: PrincipalDep,
                   red_packets: NamedDependency[RedPackets]) -> r.Grab:
        """One share per member; grabbing again returns the first result."""
        principal.require_member(data.member_id)
        return await red_packets.grab(principal.tenant_id, packet_id, data, now())


async def pool_view(resources: Any, tenant_id: str, pool_id: str) -> r.Pool:
    pool = await store.pool(resources.pool, tenant_id, pool_id)
    if pool is None:
        raise NotFound(f"no pool {pool_id!r}", code="unknown_pool")
    opens = await store.pool_summary(resources.pool, tenant_id, pool_id)
    handed = sum(o["points"] for o in opens)
    return r.Pool(pool_id=pool_id, name=pool["name"], total_points=pool["total_points"],
                  packets=pool["packets"], split=pool["split"],
                  open_cost_points=pool["open_cost_points"],
                  per_member_opens=pool["per_member_opens"], starts_at=pool["starts_at"],
                  ends_at=pool["ends_at"], status=pool["status"],
                  remaining_packets=0 if pool["status"] == "settled"
                  else pool["packets"] - len(opens),
                  remaining_points=0 if pool["status"] == "settled"
                  else pool["total_points"] - handed,
                  latest_opens=[r.PoolOpenView(open_id=o["open_id"], member_id=o["member_id"],
                                               points=o["points"], at=o["at"])
                                for o in opens[:LATEST_OPENS]])


async def packet_view(resources: Any, tenant_id: str, packet_id: str) -> r.Packet:
    packet = await store.packet(resources.pool, tenant_id, packet_id)
    if packet is None:
        raise NotFound(f"no packet {packet_id!r}", code="unknown_packet")
    grabs = await store.packet_grabs(resources.pool, tenant_id, packet_id)
    grabbed = sum(g["points"] for g in grabs)
    return r.Packet(packet_id=packet_id, member_id=packet["maker_member_id"],
                    total_points=packet["total_points"], shares=len(packet["shares"]),
                    split=packet["split"], group_id=packet["group_id"],
                    expires_at=packet["expires_at"], status=packet["status"],
                    remaining_shares=0 if packet["status"] == "expired"
                    else len(packet["shares"]) - len(grabs),
                    remaining_points=0 if packet["status"] == "expired"
                    else packet["total_points"] - grabbed,
                    refunded_points=packet["refunded_points"],
                    grabs=[r.GrabView(member_id=g["member_id"], points=g["points"], at=g["at"])
                           for g in grabs])
