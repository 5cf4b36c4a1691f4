"""A small service built on the runtime, to exercise its mechanisms (auth, route access,
idempotency, errors, rate limits) against the real servers without depending on any one
service's API."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, Response, get, post
from litestar.params import JSONBody, Parameter
from msgspec import Meta

from proto.common import Id, Request
from proto.common import Response as ResponseStruct
from services.runtime.app import outcome_response, replayable
from services.runtime.auth import allow
from services.runtime.db import Conn
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import Conflict
from services.runtime.idempotency import run_once
from services.runtime.resources import Resources
from services.runtime.service import Host, ServiceSpec
from services.runtime.settings import Settings

PROBE_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS probe;
CREATE TABLE IF NOT EXISTS probe.transfers (
    tenant_id   text NOT NULL,
    transfer_id text NOT NULL,
    member_id   text NOT NULL,
    amount      int  NOT NULL CHECK (amount > 0),
    seq         bigserial,
    PRIMARY KEY (tenant_id, transfer_id)
);
"""


class TransferRequest(Request):
    transfer_id: Id
    member_id: Id
    amount: Annotated[int, Meta(gt=0, le=1_000_000)]
    note: Annotated[str, Meta(max_length=50)] | None = None


class Transfer(ResponseStruct):
    transfer_id: str
    member_id: str
    amount: int
    seq: int


class Who(ResponseStruct):
    tenant_id: str
    role: str
    member_id: str | None


@get("/probe/v1/members/{member_id:str}", access=allow("ingest", member=True))
async def read_member(member_id: PathId, principal: PrincipalDep) -> Who:
    return Who(tenant_id=principal.tenant_id, role=principal.role, member_id=member_id)


@get("/probe/v1/operator-only", access=allow("operator"))
async def operator_only(principal: PrincipalDep) -> Who:
    return Who(tenant_id=principal.tenant_id, role=principal.role, member_id=None)


@get("/probe/v1/limited", access=allow("ingest", member=True), opt={"rate_group": "probe"})
async def limited(principal: PrincipalDep) -> Who:
    return Who(tenant_id=principal.tenant_id, role=principal.role, member_id=None)


@get("/probe/v1/echo", access=allow("ingest"))
async def echo(text: Annotated[str, Parameter(max_length=100)], principal: PrincipalDep,
               resources: ResourcesDep) -> Who:
    """Hands an unchecked query parameter to PostgreSQL."""
    echoed = await resources.pool.fetchval("SELECT $1::text", text)
    return Who(tenant_id=principal.tenant_id, role=echoed, member_id=None)


@post("/probe/v1/transfers", access=allow("ingest", member=True),
      responses=replayable(201, Transfer))
async def transfer(data: JSONBody[TransferRequest], principal: PrincipalDep,
                   resources: ResourcesDep) -> Response[bytes]:
    principal.require_member(data.member_id)

    async def effect(conn: Conn) -> tuple[int, Transfer]:
        seq = await conn.fetchval(
            "INSERT INTO probe.transfers (tenant_id, transfer_id, member_id, amount)"
            " VALUES ($1, $2, $3, $4) RETURNING seq",
            principal.tenant_id, data.transfer_id, data.member_id, data.amount)
        if data.amount > 1000:
            raise Conflict("amount over the probe limit", code="limit_reached", limit=1000)
        return 201, Transfer(transfer_id=data.transfer_id, member_id=data.member_id,
                             amount=data.amount, seq=seq)

    async with resources.pool.acquire() as conn:
        outcome = await run_once(conn, tenant_id=principal.tenant_id, scope="probe.transfers",
                                 key=data.transfer_id, request=data, effect=effect)
    return outcome_response(outcome)


PROBE = ServiceSpec(name="probe", package="tests.runtime", description="probe",
                    route_handlers=[read_member, operator_only, limited, echo, transfer])


async def open_probe_app(settings: Settings, resources: Resources) -> Litestar:
    """The probe service, hosted over ``resources`` as fuli hosts its own services."""
    host = Host(settings, [PROBE])
    await host.open(resources)
    return host.apps["probe"]
