"""SQL of deliveries: writing them for events, claiming due ones for a sender (at most so many
in flight per endpoint), recording attempts, listing, retrying and replaying them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from proto.webhooks import Delivery
from services.runtime.db import Conn, Db, as_struct_or_none, as_structs

COLUMNS = ("delivery_id, endpoint_id, event_id::text AS event_id, event_type, status,"
           " attempts, created_at, next_attempt_at, last_attempt_at, last_status_code,"
           " last_error, last_latency_ms, delivered_at")


class Claimed(msgspec.Struct, frozen=True):
    tenant_id: str
    delivery_id: str
    endpoint_id: str
    event_type: str
    body: bytes
    attempts: int


class Backlog(msgspec.Struct, frozen=True):
    pending: int  # deliveries to enabled endpoints not yet delivered or failed
    due: int  # of those, due now
    oldest_pending_s: float  # age of the oldest of those (0 when none)


class Subscription(msgspec.Struct, frozen=True):
    endpoint_id: str
    event_types: list[str]


async def subscriptions(conn: Conn, tenant_id: str) -> list[Subscription]:
    """The tenant's enabled endpoints and the event types each takes."""
    return as_structs(Subscription, await conn.fetch(
        "SELECT endpoint_id, event_types FROM webhooks.endpoints WHERE tenant_id = $1"
        " AND enabled ORDER BY endpoint_id", tenant_id))


class NewDelivery(NamedTuple):
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    body: bytes


async def insert(conn: Conn, tenant_id: str, deliveries: Sequence[NewDelivery]) -> None:
    """Pending deliveries, due now; one already written (a redelivered event) stays as it is."""
    if not deliveries:
        return
    await conn.execute(
        "INSERT INTO webhooks.deliveries (tenant_id, delivery_id, endpoint_id, event_id,"
        " event_type, body, next_attempt_at)"
        " SELECT $1, t.delivery_id, t.endpoint_id, t.event_id::uuid, t.event_type, t.body, now()"
        " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[])"
        " AS t(delivery_id, endpoint_id, event_id, event_type, body)"
        " ON CONFLICT DO NOTHING",
        tenant_id, *(list(column) for column in zip(*deliveries, strict=True)))


async def claim(conn: Conn, per_endpoint: int, limit: int, lease_s: float) -> list[Claimed]:
    """Claims up to ``limit`` due deliveries for ``lease_s`` seconds: of each enabled endpoint
    its oldest due ones, as many as leave it at most ``per_endpoint`` claimed at once, the
    oldest due first overall. Claims take turns (a transaction lock), so two senders never
    exceed the cap together; each endpoint's rows are read through an index, so a large backlog
    of one endpoint neither slows a claim nor crowds the others out of it."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('webhooks.claim'))")
        rows = await conn.fetch(
            "WITH busy AS (SELECT tenant_id, endpoint_id, count(*) AS n"
            "  FROM webhooks.deliveries WHERE status = 'pending' AND lease_until IS NOT NULL"
            "  AND lease_until > now() GROUP BY tenant_id, endpoint_id),"
            " slots AS (SELECT e.tenant_id, e.endpoint_id, $1 - coalesce(b.n, 0) AS free"
            "  FROM webhooks.endpoints e LEFT JOIN busy b USING (tenant_id, endpoint_id)"
            "  WHERE e.enabled AND $1 - coalesce(b.n, 0) > 0),"
            " chosen AS (SELECT d.tenant_id, d.delivery_id FROM slots s CROSS JOIN LATERAL"
            "  (SELECT d.tenant_id, d.delivery_id, d.next_attempt_at FROM webhooks.deliveries d"
            "   WHERE d.tenant_id = s.tenant_id AND d.endpoint_id = s.endpoint_id"
            "   AND d.status = 'pending' AND d.next_attempt_at <= now()"
            "   AND (d.lease_until IS NULL OR d.lease_until <= now())"
            "   ORDER BY d.next_attempt_at LIMIT s.free) d"
            "  ORDER BY d.next_attempt_at LIMIT $2)"
            " UPDATE webhooks.deliveries d SET lease_until = now() + make_interval(secs => $3)"
            " FROM chosen WHERE d.tenant_id = chosen.tenant_id"
            " AND d.delivery_id = chosen.delivery_id"
            " RETURNING d.tenant_id, d.delivery_id, d.endpoint_id, d.event_type, d.body,"
            " d.attempts", per_endpoint, limit, lease_s)
    return as_structs(Claimed, rows)


async def record_attempt(conn: Conn, tenant_id: str, delivery_id: str, *, delivered: bool,
                         status_code: int | None, error: str | None, latency_ms: int,
                         retry_in_s: float | None) -> None:
    """One attempt's outcome: delivered, due again in ``retry_in_s``, or (neither) failed.
    The claim is released."""
    await conn.execute(
        "UPDATE webhooks.deliveries SET attempts = attempts + 1, last_attempt_at = now(),"
        " last_status_code = $3, last_error = $4, last_latency_ms = $5, lease_until = NULL,"
        " status = CASE WHEN $6 THEN 'delivered' WHEN $7::float8 IS NULL THEN 'failed'"
        "  ELSE 'pending' END,"
        " next_attempt_at = CASE WHEN $6 OR $7::float8 IS NULL THEN NULL"
        "  ELSE now() + make_interval(secs => $7::float8) END,"
        " delivered_at = CASE WHEN $6 THEN now() ELSE delivered_at END"
        " WHERE tenant_id = $1 AND delivery_id = $2",
        tenant_id, delivery_id, status_code, error, latency_ms, delivered, retry_in_s)


async def endpoint_succeeded(conn: Conn, tenant_id: str, endpoint_id: str) -> None:
    await conn.execute(
        "UPDATE webhooks.endpoints SET failing_since = NULL WHERE tenant_id = $1"
        " AND endpoint_id = $2 AND failing_since IS NOT NULL", tenant_id, endpoint_id)


async def endpoint_failed(conn: Conn, tenant_id: str, endpoint_id: str,
                          disable_after_s: float) -> datetime | None:
    """Notes that the endpoint failed (since when, unless it already was); when it has been
    failing every delivery for ``disable_after_s``, disables it, keeps an EndpointDisabled
    record and returns since when it failed."""
    row = await conn.fetchrow(
        "UPDATE webhooks.endpoints SET failing_since = coalesce(failing_since, now())"
        " WHERE tenant_id = $1 AND endpoint_id = $2 RETURNING failing_since, enabled",
        tenant_id, endpoint_id)
    if row is None or not row["enabled"]:
        return None
    since: datetime = row["failing_since"]
    disabled = await conn.fetchval(
        "UPDATE webhooks.endpoints SET enabled = false, disabled_reason = 'failing',"
        " updated_at = now() WHERE tenant_id = $1 AND endpoint_id = $2 AND enabled"
        " AND failing_since <= now() - make_interval(secs => $3) RETURNING endpoint_id",
        tenant_id, endpoint_id, disable_after_s)
    if disabled is None:
        return None
    await conn.execute(
        "INSERT INTO webhooks.endpoint_disabled (tenant_id, endpoint_id, failing_since, reason)"
        " VALUES ($1, $2, $3, 'failing')", tenant_id, endpoint_id, since)
    return since


async def page(db: Db, tenant_id: str, endpoint_id: str, status: str | None,
               before: tuple[datetime, str] | None, limit: int) -> list[Delivery]:
    """The endpoint's deliveries, newest first, after the cursor's (created_at, id)."""
    return as_structs(Delivery, await db.fetch(
        "SELECT " + COLUMNS + " FROM webhooks.deliveries WHERE tenant_id = $1"
        " AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)"
        " AND ($4::timestamptz IS NULL OR (created_at, delivery_id) < ($4, $5))"
        " ORDER BY created_at DESC, delivery_id DESC LIMIT $6",
        tenant_id, endpoint_id, status, before[0] if before else None,
        before[1] if before else "", limit))


async def get(db: Db, tenant_id: str, endpoint_id: str, delivery_id: str) -> Delivery | None:
    return as_struct_or_none(Delivery, await db.fetchrow(
        "SELECT " + COLUMNS + " FROM webhooks.deliveries WHERE tenant_id = $1"
        " AND endpoint_id = $2 AND delivery_id = $3", tenant_id, endpoint_id, delivery_id))


async def send_again(db: Db, tenant_id: str, endpoint_id: str, delivery_id: str
                     ) -> Delivery | None:
    """The delivery due now, its schedule started over (attempts count from 0 again); one
    already pending is only made due now."""
    return as_struct_or_none(Delivery, await db.fetchrow(
        "UPDATE webhooks.deliveries SET next_attempt_at = now(),"
        " attempts = CASE WHEN status = 'pending' THEN attempts ELSE 0 END,"
        " status = 'pending' WHERE tenant_id = $1 AND endpoint_id = $2 AND delivery_id = $3"
        " RETURNING " + COLUMNS, tenant_id, endpoint_id, delivery_id))


async def replay(db: Db, tenant_id: str, endpoint_id: str, start: datetime,
                 end: datetime) -> int:
    """Every delivered or failed delivery of the endpoint created in [start, end) due again
    now, its schedule started over; returns how many."""
    result = await db.fetchval(
        "WITH replayed AS (UPDATE webhooks.deliveries SET status = 'pending',"
        " next_attempt_at = now(), attempts = 0 WHERE tenant_id = $1 AND endpoint_id = $2"
        " AND created_at >= $3 AND created_at < $4 AND status <> 'pending'"
        " RETURNING 1) SELECT count(*) FROM replayed", tenant_id, endpoint_id, start, end)
    return int(result)


async def backlog(db: Db) -> Backlog:
    row = await db.fetchrow(
        "SELECT count(*) AS pending, count(*) FILTER (WHERE d.next_attempt_at <= now()) AS due,"
        " coalesce(extract(epoch FROM now() - min(d.created_at)), 0) AS oldest"
        " FROM webhooks.deliveries d JOIN webhooks.endpoints e USING (tenant_id, endpoint_id)"
        " WHERE d.status = 'pending' AND e.enabled")
    assert row is not None
    return Backlog(int(row["pending"]), int(row["due"]), float(row["oldest"]))


async def outcomes(db: Db) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM webhooks.deliveries"
                          " GROUP BY status")
    return {row["status"]: int(row["n"]) for row in rows}
