"""HTTP to another fuli service, as one service calls another's public API: over the network
when the other's URL is set (FULI_POINTS_URL, FULI_TIERS_URL), else to its app inside this
process (same API, no network hop; its routes are served at request time, so the order the
services open in does not matter). Every call carries a short-lived service token for the
tenant, minted once per half of its life."""

from __future__ import annotations

import time
from typing import Any, cast

import httpx

from services.runtime.resources import Resources
from services.runtime.service import Peers

TOKEN_TTL_S = 300


class PeerHttp:
    def __init__(self, http: httpx.AsyncClient, resources: Resources, caller: str) -> None:
        self.http = http
        self._resources = resources
        self._caller = caller
        self._tokens: dict[str, tuple[float, str]] = {}

    @classmethod
    def connect(cls, resources: Resources, peers: Peers, service: str, url: str | None,
                caller: str, timeout_s: float) -> PeerHttp:
        """``service`` at ``url``, else the app of that name in ``peers``."""
        if url:
            http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s)
        elif service in peers:
            # httpx types ASGI apps loosely (plain mappings); Litestar's app is one.
            app = cast(Any, peers[service])
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=f"http://{service}.internal", timeout=timeout_s)
        else:
            raise RuntimeError(f"{caller} needs the {service} service: set FULI_"
                               f"{service.upper()}_URL")
        return cls(http, resources, caller)

    async def close(self) -> None:
        await self.http.aclose()

    async def authorization(self, tenant_id: str) -> dict[str, str]:
        """The header that authenticates a call for ``tenant_id``."""
        cached = self._tokens.get(tenant_id)
        if cached and cached[0] > time.monotonic():
            return {"Authorization": f"Bearer {cached[1]}"}
        token = await self._resources.authenticator.mint_service_token(
            tenant_id, self._caller, TOKEN_TTL_S)
        self._tokens[tenant_id] = (time.monotonic() + TOKEN_TTL_S / 2, token)
        return {"Authorization": f"Bearer {token}"}
