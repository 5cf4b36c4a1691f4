"""Sending deliveries: claim due rows (at most ``webhooks_endpoint_concurrency`` in flight per
endpoint), send each in a task of its own so one slow receiver holds up only its own
endpoint, and record the outcome with its next attempt.

A send resolves the endpoint's host again, checks every address (unless private targets are
allowed) and connects to the checked address itself, the URL's host kept in the Host header
and in TLS (SNI and certificate check): a name that resolves elsewhere by now cannot turn a
webhook against an internal address. Redirects are not followed (a 3xx is a failed attempt),
a send is given 10 s in all, and at most 4 KiB of a response is read. Connections are not
kept alive between sends (a kept connection is keyed by address, not by host name)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from proto.webhooks import PingResult
from services.runtime.db import Pool
from services.runtime.errors import FuliError
from services.runtime.settings import Settings
from services.webhooks import signing
from services.webhooks.deliveries import rules, store
from services.webhooks.deliveries.store import Claimed
from services.webhooks.endpoints.endpoints import Endpoints
from services.webhooks.endpoints.store import EndpointRow

log = logging.getLogger("fuli.webhooks")

LEASE_S = 30.0  # a claim outlives a send's 10 s; a killed sender's rows are sent again after it


class Attempt(msgspec.Struct, frozen=True):
    status_code: int | None
    error: str | None
    latency_ms: int

    @property
    def delivered(self) -> bool:
        return rules.is_delivered(self.status_code)


class Sender:
    def __init__(self, pool: Pool, endpoints: Endpoints, settings: Settings) -> None:
        self._pool = pool
        self._endpoints = endpoints
        self._per_endpoint = settings.webhooks_endpoint_concurrency
        self._capacity = settings.webhooks_process_concurrency
        self._retry_scale = settings.webhooks_retry_scale
        self._disable_after_s = settings.webhooks_disable_after_s
        self._client = httpx.AsyncClient(
            follow_redirects=False, timeout=httpx.Timeout(rules.TIMEOUT_S),
            limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
            trust_env=False)
        self._tasks: set[asyncio.Task[None]] = set()
        # Claiming again as soon as a send ends (the worker's tick every second is only the
        # floor): one claiming loop at a time, told to go round again when a send ends meanwhile.
        self._claimer: asyncio.Task[None] | None = None
        self._again = False
        self._closed = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def pump(self) -> int:
        """Claims what is due (as much as this process may have in flight) and starts sending
        it; returns how many sends were started. Does not wait for them."""
        room = self._capacity - len(self._tasks)
        if room <= 0:
            return 0
        async with self._pool.acquire() as conn:
            claimed = await store.claim(conn, self._per_endpoint, room, LEASE_S)
        for row in claimed:
            task = asyncio.create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    def _kick(self) -> None:
        """Claims again soon: a send ended, so its endpoint has room for the next one."""
        if self._closed:
            return
        self._again = True
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.create_task(self._claim_while_kicked())

    async def _claim_while_kicked(self) -> None:
        while self._again and not self._closed:
            self._again = False
            try:
                await self.pump()
            except Exception:
                log.exception("claiming webhook deliveries failed; the next tick tries again")
                return

    async def drain(self) -> None:
        """Waits for the sends in flight, and for those they lead to."""
        while self._tasks or (self._claimer is not None and not self._claimer.done()):
            pending: list[asyncio.Task[None]] = list(self._tasks)
            if self._claimer is not None:
                pending.append(self._claimer)
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        pending = [*self._tasks, *([self._claimer] if self._claimer is not None else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            endpoint = await self._endpoints.row(claimed.tenant_id, claimed.endpoint_id)
            now = datetime.now(UTC)
            attempt = await self.send(endpoint, claimed.delivery_id, claimed.body, now)
            retry_in = (None if attempt.delivered else
                        rules.retry_delay_s(claimed.attempts + 1, self._retry_scale,
                                            random.random()))
            async with self._pool.acquire() as conn, conn.transaction():
                await store.record_attempt(
                    conn, claimed.tenant_id, claimed.delivery_id, delivered=attempt.delivered,
                    status_code=attempt.status_code, error=attempt.error,
                    latency_ms=attempt.latency_ms, retry_in_s=retry_in)
                if attempt.delivered:
                    await store.endpoint_succeeded(conn, claimed.tenant_id, claimed.endpoint_id)
                else:
                    since = await store.endpoint_failed(conn, claimed.tenant_id,
                                                        claimed.endpoint_id,
                                                        self._disable_after_s)
                    if since is not None:
                        log.warning("endpoint disabled after failing every delivery",
                                    extra={"fields": {"tenant_id": claimed.tenant_id,
                                                      "endpoint_id": claimed.endpoint_id,
                                                      "failing_since": since.isoformat()}})
        except Exception:
            # The claim runs out and the delivery is sent again.
            log.exception("webhook delivery failed to run",
                          extra={"fields": {"tenant_id": claimed.tenant_id,
                                            "delivery_id": claimed.delivery_id}})
        finally:
            self._kick()

    async def send(self, endpoint: EndpointRow, message_id: str, body: bytes,
                   now: datetime) -> Attempt:
        """One signed POST of ``body`` to the endpoint; never raises for the receiver's
        faults (refused targets, timeouts, resets are attempts with an error)."""
        headers = signing.headers(self._endpoints.signing_secrets(endpoint, now), message_id,
                                  int(now.timestamp()), body)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(rules.TIMEOUT_S):
                status = await self._post(endpoint, headers, body)
            return Attempt(status_code=status, error=None,
                           latency_ms=_ms_since(started))
        except FuliError as exc:
            return Attempt(status_code=None, error=rules.error_text(f"{exc.code}: {exc.message}"),
                           latency_ms=_ms_since(started))
        except TimeoutError:
            return Attempt(status_code=None, error="timeout", latency_ms=_ms_since(started))
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            return Attempt(status_code=None,
                           error=rules.error_text(f"{type(exc).__name__}: {exc}"),
                           latency_ms=_ms_since(started))

    async def _post(self, endpoint: EndpointRow, headers: dict[str, str], body: bytes) -> int:
        guard = self._endpoints.guard
        target, addresses = await guard.addresses(
            endpoint.url, allow_http=guard.honours_http(endpoint.allow_http))
        address = addresses[0]
        parts = urlsplit(endpoint.url)
        host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
        pinned = urlunsplit(parts._replace(
            netloc=host + (f":{parts.port}" if parts.port is not None else "")))
        extensions = ({"sni_hostname": target.host}
                      if target.scheme == "https" else {})
        request = self._client.build_request(
            "POST", pinned, content=body, extensions=extensions,
            headers={**headers, "host": parts.netloc})
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= rules.RESPONSE_LIMIT_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code

    async def ping(self, endpoint: EndpointRow, now: datetime) -> PingResult:
        """A signed ``WebhookTest`` sent now, outside the delivery queue."""
        message_id = "msg-test-" + signing.new_salt().hex()[:24]
        attempt = await self.send(endpoint, message_id,
                                  rules.ping_body(endpoint.endpoint_id, now), now)
        return PingResult(delivered=attempt.delivered, status_code=attempt.status_code,
                          latency_ms=attempt.latency_ms, error=attempt.error)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
