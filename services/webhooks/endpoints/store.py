"""SQL of endpoints: the endpoints, their secret salts, the deployment key kept when none is
configured, and the records of endpoints disabled for failing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from proto.webhooks import Endpoint
from services.runtime.db import Conn, Db, as_struct_or_none, as_structs


class EndpointRow(msgspec.Struct, frozen=True):
    tenant_id: str
    endpoint_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    allow_http: bool
    secret_salt: bytes
    previous_salt: bytes | None
    previous_expires_at: datetime | None
    failing_since: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    def shown(self, now: datetime) -> Endpoint:
        live = self.previous_expires_at is not None and self.previous_expires_at > now
        return Endpoint(endpoint_id=self.endpoint_id, url=self.url,
                        event_types=self.event_types, description=self.description,
                        enabled=self.enabled, allow_http=self.allow_http,
                        created_at=self.created_at, updated_at=self.updated_at,
                        disabled_reason=self.disabled_reason,
                        previous_secret_expires_at=self.previous_expires_at if live else None)

    def salts(self, now: datetime) -> list[bytes]:
        """The salts of the secrets that sign now: the current one, and the one before the
        last rotation during its overlap."""
        live = (self.previous_salt is not None and self.previous_expires_at is not None
                and self.previous_expires_at > now)
        return [self.secret_salt, *([self.previous_salt] if live and self.previous_salt
                                    else [])]


COLUMNS = ("tenant_id, endpoint_id, url, event_types, description, enabled, allow_http,"
           " secret_salt, previous_salt, previous_expires_at, failing_since, disabled_reason,"
           " created_at, updated_at")


async def stored_key(conn: Conn, candidate: bytes) -> bytes:
    """The deployment key kept in the database, ``candidate`` if there was none."""
    await conn.execute("INSERT INTO webhooks.deployment_key (id, key) VALUES (1, $1)"
                       " ON CONFLICT DO NOTHING", candidate)
    return bytes(await conn.fetchval("SELECT key FROM webhooks.deployment_key WHERE id = 1"))


async def insert(db: Db, tenant_id: str, endpoint_id: str, url: str, event_types: list[str],
                 description: str, allow_http: bool, salt: bytes) -> EndpointRow:
    row = await db.fetchrow(
        "INSERT INTO webhooks.endpoints (tenant_id, endpoint_id, url, event_types,"
        " description, allow_http, secret_salt) VALUES ($1, $2, $3, $4::text[], $5, $6, $7)"
        " RETURNING " + COLUMNS,
        tenant_id, endpoint_id, url, event_types, description, allow_http, salt)
    found = as_struct_or_none(EndpointRow, row)
    assert found is not None
    return found


async def get(db: Db, tenant_id: str, endpoint_id: str) -> EndpointRow | None:
    return as_struct_or_none(EndpointRow, await db.fetchrow(
        "SELECT " + COLUMNS + " FROM webhooks.endpoints WHERE tenant_id = $1 AND endpoint_id = $2",
        tenant_id, endpoint_id))


async def get_many(db: Db, tenant_id: str, endpoint_ids: Sequence[str]) -> list[EndpointRow]:
    return as_structs(EndpointRow, await db.fetch(
        "SELECT " + COLUMNS + " FROM webhooks.endpoints WHERE tenant_id = $1"
        " AND endpoint_id = any($2::text[])", tenant_id, list(endpoint_ids)))


async def page(db: Db, tenant_id: str, after: str, limit: int) -> list[EndpointRow]:
    return as_structs(EndpointRow, await db.fetch(
        "SELECT " + COLUMNS + " FROM webhooks.endpoints WHERE tenant_id = $1 AND endpoint_id > $2"
        " ORDER BY endpoint_id LIMIT $3", tenant_id, after, limit))


async def update(db: Db, tenant_id: str, endpoint_id: str, url: str, event_types: list[str],
                 description: str, enabled: bool, allow_http: bool) -> EndpointRow | None:
    """Writes the endpoint's settings; enabling it again clears why it was disabled and the
    record of its failing."""
    return as_struct_or_none(EndpointRow, await db.fetchrow(
        "UPDATE webhooks.endpoints SET url = $3, event_types = $4::text[], description = $5,"
        " allow_http = $7, updated_at = now(),"
        " disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,"
        " failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END,"
        " enabled = $6"
        " WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING " + COLUMNS,
        tenant_id, endpoint_id, url, event_types, description, enabled, allow_http))


async def rotate(db: Db, tenant_id: str, endpoint_id: str, salt: bytes,
                 previous_until: datetime) -> EndpointRow | None:
    return as_struct_or_none(EndpointRow, await db.fetchrow(
        "UPDATE webhooks.endpoints SET previous_salt = secret_salt, secret_salt = $3,"
        " previous_expires_at = $4, updated_at = now()"
        " WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING " + COLUMNS,
        tenant_id, endpoint_id, salt, previous_until))


async def delete(db: Db, tenant_id: str, endpoint_id: str) -> bool:
    deleted = await db.fetchval(
        "DELETE FROM webhooks.endpoints WHERE tenant_id = $1 AND endpoint_id = $2"
        " RETURNING endpoint_id", tenant_id, endpoint_id)
    return deleted is not None
