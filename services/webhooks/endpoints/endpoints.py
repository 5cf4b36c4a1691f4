"""Endpoints: registering, changing and removing the URLs events are pushed to, and their
signing secrets (shown once, rotated with a 24-hour overlap)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from proto import webhooks as w
from services.runtime.db import Pool
from services.runtime.errors import NotFound
from services.runtime.pagination import decode_cursor, encode_cursor
from services.webhooks import signing
from services.webhooks.endpoints import rules, store
from services.webhooks.endpoints.store import EndpointRow
from services.webhooks.safety import Guard

ROTATION_OVERLAP = timedelta(hours=24)


def new_endpoint_id() -> str:
    return "ep-" + secrets.token_hex(10)


class Endpoints:
    def __init__(self, pool: Pool, key: bytes, guard: Guard) -> None:
        self._pool = pool
        self._key = key
        self.guard = guard

    async def create(self, tenant_id: str, body: w.EndpointBody,
                     now: datetime) -> w.EndpointCreated:
        types = rules.event_types(body.event_types)
        allow_http = self.guard.http_allowed(body.allow_http)
        await self.guard.addresses(body.url, allow_http=allow_http)
        salt = signing.new_salt()
        row = await store.insert(self._pool, tenant_id, new_endpoint_id(), body.url, types,
                                 body.description, allow_http, salt)
        return w.EndpointCreated(endpoint_id=row.endpoint_id,
                                 secret=signing.secret_text(self._key, salt),
                                 endpoint=row.shown(now))

    async def row(self, tenant_id: str, endpoint_id: str) -> EndpointRow:
        row = await store.get(self._pool, tenant_id, endpoint_id)
        if row is None:
            raise _unknown_endpoint(endpoint_id)
        return row

    async def get(self, tenant_id: str, endpoint_id: str, now: datetime) -> w.Endpoint:
        return (await self.row(tenant_id, endpoint_id)).shown(now)

    async def listed(self, tenant_id: str, limit: int, cursor: str | None,
                     now: datetime) -> w.EndpointList:
        after = decode_cursor(cursor, 1)[0] if cursor else ""
        rows = await store.page(self._pool, tenant_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return w.EndpointList(items=[r.shown(now) for r in rows],
                              next_cursor=encode_cursor(rows[-1].endpoint_id) if more else None)

    async def patch(self, tenant_id: str, endpoint_id: str, body: w.EndpointPatch,
                    now: datetime) -> w.Endpoint:
        current = await self.row(tenant_id, endpoint_id)
        types = (rules.event_types(body.event_types) if body.event_types is not None
                 else current.event_types)
        allow_http = (self.guard.http_allowed(body.allow_http) if body.allow_http is not None
                      else current.allow_http)
        url = body.url if body.url is not None else current.url
        if body.url is not None or body.allow_http is not None:
            await self.guard.addresses(url, allow_http=allow_http)
        row = await store.update(
            self._pool, tenant_id, endpoint_id, url, types,
            body.description if body.description is not None else current.description,
            body.enabled if body.enabled is not None else current.enabled, allow_http)
        if row is None:
            raise _unknown_endpoint(endpoint_id)
        return row.shown(now)

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        """Removes the endpoint and its deliveries (pending ones are not sent)."""
        if not await store.delete(self._pool, tenant_id, endpoint_id):
            raise _unknown_endpoint(endpoint_id)

    async def rotate(self, tenant_id: str, endpoint_id: str, now: datetime) -> w.SecretRotated:
        """A new secret; the current one keeps signing beside it for 24 hours (a secret older
        than that stops at once: two sign at most)."""
        salt = signing.new_salt()
        until = now + ROTATION_OVERLAP
        row = await store.rotate(self._pool, tenant_id, endpoint_id, salt, until)
        if row is None:
            raise _unknown_endpoint(endpoint_id)
        return w.SecretRotated(secret=signing.secret_text(self._key, salt),
                               previous_expires_at=until)

    def signing_secrets(self, row: EndpointRow, now: datetime) -> list[bytes]:
        return [signing.secret_bytes(self._key, salt) for salt in row.salts(now)]


def _unknown_endpoint(endpoint_id: str) -> NotFound:
    return NotFound(f"no endpoint {endpoint_id!r}", code="unknown_endpoint",
                    endpoint_id=endpoint_id)
