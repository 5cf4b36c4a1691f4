"""HTTP to another fuli service, as one service calls another's public API: over the network
when the other's URL is set (FULI_POINTS_URL, FULI_TIERS_URL), else to its app inside this
process (same API, no network hop; its routes are served at request time, so the order the
services open in does not matter). Every call carries a short-lived service token for the
tenant, minted once per half of its life.

Inside the process a call is handed to the other app as one ASGI request, the way a server
hands it over, without an HTTP client: httpx's client (request building, URL parsing, its
auth, redirect and cookie steps) cost a draw more CPU than the points app's own middleware and
routing. The app still runs its whole middleware chain, authentication included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, cast
from urllib.parse import quote, urlencode

import httpx
from litestar.types import ASGIApp, Message, Scope

from services.runtime.observability import request_id_var
from services.runtime.resources import Resources
from services.runtime.service import Peers

TOKEN_TTL_S = 300
# The address an in-process call comes from, as httpx's ASGI transport gave it.
IN_PROCESS_CLIENT = ("127.0.0.1", 123)
# What a path may hold unescaped (RFC 3986 pchar and "/"), as an HTTP client would send it.
PATH_SAFE = "/:@!$&'()*+,;="


# Query parameters as this module encodes them (urlencode: str() of each value).
Query = Mapping[str, str | int]


class PeerUnreachable(Exception):
    """The other service did not answer (connection refused, reset, timed out)."""


class PeerResponse(NamedTuple):
    status_code: int
    content: bytes


class PeerTransport(Protocol):
    async def request(self, method: str, path: str, headers: dict[str, str],
                      query: Query | None, content: bytes | None) -> PeerResponse: ...

    async def aclose(self) -> None: ...


class OverNetwork:
    """The other service at its URL."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, path: str, headers: dict[str, str],
                      query: Query | None, content: bytes | None) -> PeerResponse:
        try:
            response = await self.http.request(method, path, headers=headers, params=query,
                                               content=content)
        except httpx.HTTPError as exc:
            raise PeerUnreachable(type(exc).__name__) from None
        return PeerResponse(response.status_code, response.content)

    async def aclose(self) -> None:
        await self.http.aclose()


class InProcess:
    """The other service's app in this process, called as an ASGI server calls it."""

    def __init__(self, app: ASGIApp, host: str) -> None:
        self.app = app
        self.host = host
        self._host_header = (b"host", host.encode())

    async def request(self, method: str, path: str, headers: dict[str, str],
                      query: Query | None, content: bytes | None) -> PeerResponse:
        body = content or b""
        raw_headers = [self._host_header, (b"content-length", str(len(body)).encode())]
        raw_headers += [(name.lower().encode(), value.encode())
                        for name, value in headers.items()]
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path,
            "raw_path": quote(path, safe=PATH_SAFE).encode(),
            "query_string": urlencode(query).encode() if query else b"",
            "root_path": "", "headers": raw_headers, "server": (self.host, 80),
            "client": IN_PROCESS_CLIENT, "extensions": {}}
        status: int | None = None
        parts: list[bytes] = []
        sent = False
        answered = asyncio.Event()

        async def receive() -> Any:
            nonlocal sent
            if sent:  # a handler that reads on after the body sees the client leave
                await answered.wait()
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        # The ASGI keys only: Litestar's Scope type also names the keys its router adds.
        await self.app(cast(Scope, scope), receive, send)
        if status is None or not answered.is_set():
            raise RuntimeError(f"{self.host} left {method} {path} unanswered")
        return PeerResponse(status, b"".join(parts))

    async def aclose(self) -> None:
        pass


class PeerHttp:
    def __init__(self, transport: PeerTransport, resources: Resources, caller: str) -> None:
        self.transport = transport
        self._resources = resources
        self._caller = caller
        self._tokens: dict[str, tuple[float, str]] = {}

    @classmethod
    def connect(cls, resources: Resources, peers: Peers, service: str, url: str | None,
                caller: str, timeout_s: float) -> PeerHttp:
        """``service`` at ``url``, else the app of that name in ``peers``."""
        if url:
            transport: PeerTransport = OverNetwork(
                httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s))
        elif service in peers:
            transport = InProcess(peers[service], f"{service}.internal")
        else:
            raise RuntimeError(f"{caller} needs the {service} service: set FULI_"
                               f"{service.upper()}_URL")
        return cls(transport, resources, caller)

    async def close(self) -> None:
        await self.transport.aclose()

    async def get(self, tenant_id: str, path: str,
                  query: Query | None = None) -> PeerResponse:
        """GET ``path`` for ``tenant_id``; PeerUnreachable when the service does not answer."""
        return await self.transport.request("GET", path, await self._headers(tenant_id),
                                            query, None)

    async def post(self, tenant_id: str, path: str, json: bytes | None) -> PeerResponse:
        """POST the JSON body ``json`` (or none) to ``path`` for ``tenant_id``."""
        headers = await self._headers(tenant_id)
        if json is not None:
            headers["Content-Type"] = "application/json"
        return await self.transport.request("POST", path, headers, None, json)

    async def _headers(self, tenant_id: str) -> dict[str, str]:
        """The service token for ``tenant_id``, and the id of the request being served, if
        any: the other service logs the call under the same request id."""
        cached = self._tokens.get(tenant_id)
        if cached and cached[0] > time.monotonic():
            token = cached[1]
        else:
            token = await self._resources.authenticator.mint_service_token(
                tenant_id, self._caller, TOKEN_TTL_S)
            self._tokens[tenant_id] = (time.monotonic() + TOKEN_TTL_S / 2, token)
        headers = {"Authorization": f"Bearer {token}"}
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-Id"] = request_id
        return headers
