"""HTTP handlers of red packets: operator pools and member packets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from proto import rewards as r
from services.rewards.params import Cursor, PageLimit
from services.rewards.red_packets.red_packets import RedPackets
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.runtime.ratelimit import WRITE

StatusParam = Annotated[r.PoolStatus | None, Parameter(description="open or settled")]


def now() -> datetime:
    return datetime.now(UTC)


class RedPacketsController(Controller):
    tags = ["red packets"]

    @post("/pools", access=allow("operator"), opt=WRITE, status_code=201)
    async def create_pool(self, data: JSONBody[r.PoolIn], principal: PrincipalDep,
                          red_packets: NamedDependency[RedPackets]) -> r.Pool:
        """A pool of packets funded from the issuance account; idempotent by ``pool_id``."""
        return await red_packets.create_pool(principal.tenant_id, data, now())

    @get("/pools", access=allow("operator"))
    async def list_pools(self, principal: PrincipalDep,
                         red_packets: NamedDependency[RedPackets],
                         status: StatusParam = None, limit: PageLimit = 50,
                         cursor: Cursor = None) -> r.PoolList:
        """The tenant's pools newest first (``open`` or ``settled`` ones only with
        ``status``), each with the packets and points left in it."""
        return await red_packets.pools(principal.tenant_id, status, limit, cursor)

    @get("/pools/{pool_id:str}", access=allow("ingest", member=True))
    async def get_pool(self, pool_id: PathId, principal: PrincipalDep,
                       red_packets: NamedDependency[RedPackets]) -> r.Pool:
        return await red_packets.pool_view(principal.tenant_id, pool_id)

    @post("/pools/{pool_id:str}/opens", access=allow("ingest", member=True), opt=WRITE,
          status_code=201, responses=replayable(201, r.PoolOpened))
    async def open_pool(self, pool_id: PathId, data: JSONBody[r.PoolOpenIn],
                        principal: PrincipalDep,
                        red_packets: NamedDependency[RedPackets]) -> Response[bytes]:
        """Open one packet: pay the opening cost, get a share; idempotent by ``open_id``."""
        principal.require_member(data.member_id)
        return outcome_response(await red_packets.open(principal.tenant_id, pool_id, data,
                                                       now()))

    @post("/packets", access=allow("ingest", member=True), opt=WRITE, status_code=201)
    async def make_packet(self, data: JSONBody[r.PacketIn], principal: PrincipalDep,
                          red_packets: NamedDependency[RedPackets]) -> r.Packet:
        """A member's red packet, paid from their points; idempotent by ``packet_id``."""
        principal.require_member(data.member_id)
        return await red_packets.make_packet(principal.tenant_id, data, now())

    @get("/packets/{packet_id:str}", access=allow("ingest", member=True))
    async def get_packet(self, packet_id: PathId, principal: PrincipalDep,
                         red_packets: NamedDependency[RedPackets]) -> r.Packet:
        return await red_packets.packet_view(principal.tenant_id, packet_id)

    @post("/packets/{packet_id:str}/grabs", access=allow("ingest", member=True), opt=WRITE,
          status_code=201, responses={201: ResponseSpec(
              data_container=r.Grab, description="The grab (first time or replayed)",
              generate_examples=False)})
    async def grab(self, packet_id: PathId, data: JSONBody[r.GrabIn], principal: PrincipalDep,
                   red_packets: NamedDependency[RedPackets]) -> Response[bytes]:
        """One share per member (not the maker); idempotent by ``grab_id``. Without a
        ``grab_id``, grabbing again returns the member's first grab."""
        principal.require_member(data.member_id)
        return outcome_response(await red_packets.grab(principal.tenant_id, packet_id, data,
                                                       now()))
