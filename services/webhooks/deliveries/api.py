"""HTTP handlers of deliveries (admin): list an endpoint's deliveries, send one again, replay
a time range, send a signed test ping."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from proto import webhooks as w
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep
from services.webhooks.deliveries.deliveries import Deliveries

ListLimit = Annotated[int, Parameter(ge=1, le=200)]
Cursor = Annotated[str | None, Parameter(max_length=400)]
StatusFilter = Annotated[w.DeliveryStatus | None,
                         Parameter(description="only deliveries in this state")]


class DeliveriesController(Controller):
    path = "/endpoints/{endpoint_id:str}"
    tags = ["deliveries"]

    @get("/deliveries", access=allow("admin"))
    async def list_deliveries(self, endpoint_id: PathId, principal: PrincipalDep,
                              deliveries: NamedDependency[Deliveries],
                              status: StatusFilter = None, limit: ListLimit = 50,
                              cursor: Cursor = None) -> w.DeliveryList:
        """The endpoint's deliveries, newest first: attempts, the last status code, error and
        latency, and when the next attempt is due."""
        return await deliveries.listed(principal.tenant_id, endpoint_id, status, limit, cursor)

    @get("/deliveries/{delivery_id:str}", access=allow("admin"))
    async def get_delivery(self, endpoint_id: PathId, delivery_id: PathId,
                           principal: PrincipalDep,
                           deliveries: NamedDependency[Deliveries]) -> w.Delivery:
        return await deliveries.get(principal.tenant_id, endpoint_id, delivery_id)

    @post("/deliveries/{delivery_id:str}/retry", access=allow("admin"), status_code=200)
    async def retry(self, endpoint_id: PathId, delivery_id: PathId, principal: PrincipalDep,
                    deliveries: NamedDependency[Deliveries]) -> w.Delivery:
        """Sends the delivery again now (same webhook-id), its retry schedule started over."""
        return await deliveries.retry(principal.tenant_id, endpoint_id, delivery_id)

    @post("/replay", access=allow("admin"), status_code=200)
    async def replay(self, endpoint_id: PathId, data: JSONBody[w.ReplayBody],
                     principal: PrincipalDep,
                     deliveries: NamedDependency[Deliveries]) -> w.Replayed:
        """Sends again every delivered or failed delivery created in ``[from, to)``."""
        return await deliveries.replay(principal.tenant_id, endpoint_id, data)

    @post("/test", access=allow("admin"), status_code=200)
    async def test(self, endpoint_id: PathId, principal: PrincipalDep,
                   deliveries: NamedDependency[Deliveries]) -> w.PingResult:
        """Sends a signed ``WebhookTest`` event now and says what the endpoint answered."""
        return await deliveries.ping(principal.tenant_id, endpoint_id)


CONTROLLERS = [DeliveriesController]
