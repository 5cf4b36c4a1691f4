"""Webhook receivers for tests: small real HTTP servers (uvicorn, in a thread of their own) that
verify every request with the `standardwebhooks` package and record what arrived."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

# (webhook-id, attempt number of that id at this receiver) -> (status, seconds to wait first,
# extra headers)
Behaviour = Callable[[str, int], tuple[int, float, dict[str, str]]]


def always(status: int = 200) -> Behaviour:
    return lambda _id, _n: (status, 0.0, {})


@dataclass
class Arrival:
    webhook_id: str
    event_type: str
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes
    verified: bool
    at: float  # time.monotonic() when it arrived
    status: int = 0  # what the receiver answered


@dataclass
class Receiver:
    """A receiver on 127.0.0.1; ``secrets`` are the whsec_ secrets it accepts (a request is
    verified when any one verifies it)."""

    behaviour: Behaviour = field(default_factory=always)
    secrets: list[str] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _attempts: dict[str, int] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verified_ids(self) -> list[str]:
        return [a.webhook_id for a in self.arrivals if a.verified]

    def delivered_ids(self) -> list[str]:
        """Ids of verified requests answered 2xx."""
        return [a.webhook_id for a in self.arrivals if a.verified and 200 <= a.status < 300]

    def attempts_of(self, webhook_id: str) -> int:
        return self._attempts.get(webhook_id, 0)

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        webhook_id = headers.get("webhook-id", "")
        attempt = self._attempts[webhook_id] = self.attempts_of(webhook_id) + 1
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError:
            decoded = {}
        event_type = str(decoded.get("type", "")) if isinstance(decoded, dict) else ""
        status, delay, extra = self.behaviour(webhook_id, attempt)
        self.arrivals.append(Arrival(webhook_id, event_type, decoded, headers, body,
                                     self.verify(body, headers), time.monotonic(), status))
        if delay:
            await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in extra.items()]})
        await send({"type": "http.response.body",
                    "body": b"" if status in (204, 304) else b"ok"})

    def start(self) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self, log_level="warning", lifespan="off",
                                access_log=False)
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
