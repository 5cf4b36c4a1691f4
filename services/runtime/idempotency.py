"""Exactly-once effects for value-moving requests.

(tenant, scope, id) is claimed by inserting a row holding the request's fingerprint, in the same
transaction as the effect. A second request with that id waits on the row until the first
commits, then replays the stored status and body, or gets 409 ``idempotency_conflict`` if its
body differs. Business refusals (409s such as ``insufficient_points``) are final outcomes and are
stored too; validation errors roll everything back and store nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from services.runtime.db import Conn
from services.runtime.errors import Conflict, FuliError, IdempotencyConflict

_encoder = msgspec.json.Encoder()

Effect = Callable[[Conn], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Outcome:
    """A value-moving request's answer as stored: replays return exactly these bytes."""

    status_code: int
    body: bytes
    replayed: bool = False

    @classmethod
    def of(cls, status_code: int, response: Any, *, replayed: bool = False) -> Outcome:
        return cls(status_code, _encoder.encode(response), replayed)

    @classmethod
    def refused(cls, refusal: FuliError, *, replayed: bool = False) -> Outcome:
        """A business refusal stored as the final answer (its error envelope)."""
        return cls(refusal.status_code, _encoder.encode(refusal.envelope()), replayed)


def fingerprint(scope: str, key: str, request: Any) -> bytes:
    """Digest of what the request asks for; key order and whitespace of the JSON do not matter."""
    digest = hashlib.sha256(f"{scope}\0{key}\0".encode())
    digest.update(_encoder.encode(request))
    return digest.digest()


async def run_once(conn: Conn, *, tenant_id: str, scope: str, key: str,
                   request: Any, effect: Effect) -> Outcome:
    """Run ``effect`` once per (tenant, scope, key); ``effect`` returns (status, response)."""
    request_print = fingerprint(scope, key, request)
    async with conn.transaction():
        claimed = await conn.fetchval(
            "INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            tenant_id, scope, key, request_print,
        )
        if not claimed:
            return await _replay(conn, tenant_id, scope, key, request_print)
        try:
            async with conn.transaction():
                status, response = await effect(conn)
            body = _encoder.encode(response)
        except Conflict as refusal:
            if isinstance(refusal, IdempotencyConflict):
                raise
            refused = Outcome.refused(refusal)
            status, body = refused.status_code, refused.body
        await conn.execute(
            "UPDATE fuli.idempotency SET status_code = $4, body = $5"
            " WHERE tenant_id = $1 AND scope = $2 AND key = $3",
            tenant_id, scope, key, status, body,
        )
    return Outcome(status, body, replayed=False)


async def _replay(conn: Conn, tenant_id: str, scope: str, key: str,
                  request_print: bytes) -> Outcome:
    row = await conn.fetchrow(
        "SELECT fingerprint, status_code, body FROM fuli.idempotency"
        " WHERE tenant_id = $1 AND scope = $2 AND key = $3",
        tenant_id, scope, key,
    )
    if row is None or row["status_code"] is None:  # pragma: no cover - rows commit complete
        raise Conflict("this request is still being processed; retry", code="in_progress")
    if row["fingerprint"] != request_print:
        raise IdempotencyConflict.for_key(key)
    return Outcome(row["status_code"], bytes(row["body"]), replayed=True)
