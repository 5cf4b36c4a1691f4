"""HTTP handlers of endpoints (admin): register, read, change, remove, rotate the secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from proto import webhooks as w
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.webhooks.endpoints.endpoints import Endpoints

ListLimit = Annotated[int, Parameter(ge=1, le=200)]
Cursor = Annotated[str | None, Parameter(max_length=400)]


class EndpointsController(Controller):
    path = "/endpoints"
    tags = ["endpoints"]

    @post("/", access=allow("admin"), status_code=201)
    async def create(self, data: JSONBody[w.EndpointBody], principal: PrincipalDep,
                     endpoints: NamedDependency[Endpoints]) -> w.EndpointCreated:
        """Registers an endpoint for the given public event types (``*``: all). The signing
        secret is in this response only. The URL must be https and must not resolve to a
        loopback, private, link-local or other non-public address (422 otherwise)."""
        return await endpoints.create(principal.tenant_id, data, datetime.now(UTC))

    @get("/", access=allow("admin"))
    async def list_endpoints(self, principal: PrincipalDep,
                             endpoints: NamedDependency[Endpoints], limit: ListLimit = 50,
                             cursor: Cursor = None) -> w.EndpointList:
        """The tenant's endpoints in id order."""
        return await endpoints.listed(principal.tenant_id, limit, cursor, datetime.now(UTC))

    @get("/{endpoint_id:str}", access=allow("admin"))
    async def get_endpoint(self, endpoint_id: PathId, principal: PrincipalDep,
                           endpoints: NamedDependency[Endpoints]) -> w.Endpoint:
        return await endpoints.get(principal.tenant_id, endpoint_id, datetime.now(UTC))

    @patch("/{endpoint_id:str}", access=allow("admin"))
    async def patch_endpoint(self, endpoint_id: PathId, data: JSONBody[w.EndpointPatch],
                             principal: PrincipalDep,
                             endpoints: NamedDependency[Endpoints]) -> w.Endpoint:
        """Changes the fields given; ``enabled: true`` also re-enables an endpoint disabled
        for failing."""
        return await endpoints.patch(principal.tenant_id, endpoint_id, data, datetime.now(UTC))

    @delete("/{endpoint_id:str}", access=allow("admin"), status_code=HTTP_204_NO_CONTENT)
    async def delete_endpoint(self, endpoint_id: PathId, principal: PrincipalDep,
                              endpoints: NamedDependency[Endpoints]) -> None:
        """Removes the endpoint and its deliveries."""
        await endpoints.delete(principal.tenant_id, endpoint_id)

    @post("/{endpoint_id:str}/secret/rotate", access=allow("admin"), status_code=200)
    async def rotate(self, endpoint_id: PathId, principal: PrincipalDep,
                     endpoints: NamedDependency[Endpoints]) -> w.SecretRotated:
        """A new signing secret, shown once; for 24 hours every send is signed with both."""
        return await endpoints.rotate(principal.tenant_id, endpoint_id, datetime.now(UTC))


CONTROLLERS = [EndpointsController]
