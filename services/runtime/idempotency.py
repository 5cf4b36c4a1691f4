"""Exactly-once effects for value-moving requests.

(tenant, scope, id) is claimed by inserting a row holding the request's fingerprint, in the same
transaction as the effect. A second request with that id waits on the row until the first
commits, then replays the stored status and body, or gets 409 ``idempotency_conflict`` if its
body differs.

Only what moved value is stored. A business refusal (a 409 such as ``insufficient_points``) is
decided before any effect (the effect's transaction rolls back), so it rolls the claim back too
and the id stays free: a retry with the same id is evaluated again and answers the current
truth, as the IETF Idempotency-Key draft and Stripe do for requests that did not run. A retry
waiting on the claim of a request that is refused then claims the id itself, so concurrent
retries still run the effect at most once. Validation errors store nothing either.

An effect can make the claim in its first statement (``run_claiming``): the claim is that
statement's first part and what follows runs only if it was made, one round trip less.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from services.runtime.db import Conn
from services.runtime.errors import Conflict, FuliError, IdempotencyConflict

_encoder = msgspec.json.Encoder()

Effect = Callable[[Conn], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Claim:
    """A request's claim of (tenant, scope, key), for an effect that makes it in its own first
    statement (``run_claiming``): a statement of ``claiming_call``, which takes ``args`` as its
    first four parameters."""

    tenant_id: str
    scope: str
    key: str
    fingerprint: bytes

    @property
    def args(self) -> tuple[str, str, str, bytes]:
        return self.tenant_id, self.scope, self.key, self.fingerprint


class IdTaken(Exception):
    """Raised by a claiming effect whose id was taken (it did nothing): ``run_claiming``
    answers with the stored outcome."""


_CLAIM_CTE = ("WITH claim AS (INSERT INTO fuli.idempotency (tenant_id, scope, key, fingerprint)"
              " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING tenant_id)")
_CLAIM = f"{_CLAIM_CTE} SELECT true FROM claim"


@functools.cache
def claiming_call(function: str, columns: tuple[str, ...], arguments: int) -> str:
    """The statement that claims a request's id and calls ``function`` (a set-returning SQL
    function) with the tenant's id and ``arguments`` more parameters ($5 on), selecting
    ``columns`` of its row. The function is called laterally on the claim's row, which is
    there only when the id was free: when it was taken, the function does not run and no row
    comes back."""
    parameters = "".join(f", ${n}" for n in range(5, 5 + arguments))
    selected = ", ".join(f"r.{column}" for column in columns)
    return (f"{_CLAIM_CTE} SELECT {selected}"
            f" FROM claim, LATERAL {function}(claim.tenant_id{parameters}) r")


ClaimingEffect = Callable[[Conn, Claim], Awaitable[tuple[int, Any]]]


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
        """A business refusal as an answer (its error envelope): a final one only where value
        moved before the refusal (a flow that held points, then gave them back)."""
        return cls(refusal.status_code, _encoder.encode(refusal.envelope()), replayed)


def fingerprint(scope: str, key: str, request: Any) -> bytes:
    """Digest of what the request asks for; key order and whitespace of the JSON do not matter."""
    digest = hashlib.sha256(f"{scope}\0{key}\0".encode())
    digest.update(_encoder.encode(request))
    return digest.digest()


async def run_once(conn: Conn, *, tenant_id: str, scope: str, key: str,
                   request: Any, effect: Effect) -> Outcome:
    """Run ``effect`` once per (tenant, scope, key); ``effect`` returns (status, response)."""
    async def claiming(tx: Conn, claim: Claim) -> tuple[int, Any]:
        if not await tx.fetchval(_CLAIM, *claim.args):
            raise IdTaken
        return await effect(tx)

    return await run_claiming(conn, tenant_id=tenant_id, scope=scope, key=key, request=request,
                              effect=claiming)


async def run_claiming(conn: Conn, *, tenant_id: str, scope: str, key: str,
                       request: Any, effect: ClaimingEffect) -> Outcome:
    """``run_once`` for an effect whose first statement claims the id (see ``Claim``): one
    round trip less."""
    claim = Claim(tenant_id, scope, key, fingerprint(scope, key, request))
    async with conn.transaction():
        # A refusal raised by the effect leaves this block, rolling the claim back with it.
        try:
            status, response = await effect(conn, claim)
        except IdTaken:
            return await _replay(conn, tenant_id, scope, key, claim.fingerprint)
        body = _encoder.encode(response)
        await conn.execute(
            "UPDATE fuli.idempotency SET status_code = $4, body = $5"
            " WHERE tenant_id = $1 AND scope = $2 AND key = $3",
            tenant_id, scope, key, status, body,
        )
    return Outcome(status, body, replayed=False)


async def replay_if_done(conn: Conn, *, tenant_id: str, scope: str, key: str,
                         request: Any) -> Outcome | None:
    """The stored answer of a request already run with this id (or 409
    ``idempotency_conflict`` for another body); None if the id is free. For a request that
    must read something slow or remote before its effect (a segment's members): a repeat
    answers without reading it again. ``run_once`` or ``run_claiming`` still decides, under
    the claim."""
    exists = await conn.fetchval(
        "SELECT true FROM fuli.idempotency WHERE tenant_id = $1 AND scope = $2 AND key = $3"
        " AND status_code IS NOT NULL", tenant_id, scope, key)
    if not exists:
        return None
    return await _replay(conn, tenant_id, scope, key, fingerprint(scope, key, request))


async def _replay(conn: Conn, tenant_id: str, scope: str, key: str,
                  request_print: bytes) -> Outcome:
    [answer] = await stored_answers(conn, [Claim(tenant_id, scope, key, request_print)])
    if isinstance(answer, FuliError):
        raise answer
    return answer


# --- many ids claimed in one transaction (batches) -----------------------------------------

async def store_answers(conn: Conn, answered: Sequence[tuple[Claim, Outcome]]) -> None:
    """Record the answers of ids claimed in this transaction, each under its claim."""
    if not answered:
        return
    await conn.execute(
        "UPDATE fuli.idempotency i SET status_code = a.status, body = a.body"
        " FROM unnest($2::text[], $3::text[], $4::int[], $5::bytea[]) AS a(scope, key, status,"
        " body) WHERE i.tenant_id = $1 AND i.scope = a.scope AND i.key = a.key",
        answered[0][0].tenant_id, [claim.scope for claim, _ in answered],
        [claim.key for claim, _ in answered], [outcome.status_code for _, outcome in answered],
        [outcome.body for _, outcome in answered])


async def stored_answers(conn: Conn, claims: Sequence[Claim]) -> list[Outcome | FuliError]:
    """For ids that were claimed before (all of one tenant): each one's stored answer, or 409
    ``idempotency_conflict`` where it was claimed for another request."""
    if not claims:
        return []
    rows = await conn.fetch(
        "SELECT i.scope, i.key, i.fingerprint, i.status_code, i.body FROM fuli.idempotency i"
        " JOIN unnest($2::text[], $3::text[]) AS c(scope, key)"
        " ON i.tenant_id = $1 AND i.scope = c.scope AND i.key = c.key",
        claims[0].tenant_id, [claim.scope for claim in claims], [claim.key for claim in claims])
    stored = {(row["scope"], row["key"]): row for row in rows}
    answers: list[Outcome | FuliError] = []
    for claim in claims:
        row = stored.get((claim.scope, claim.key))
        if row is None or row["status_code"] is None:  # pragma: no cover - rows commit complete
            answers.append(Conflict("this request is still being processed; retry",
                                    code="in_progress"))
        elif row["fingerprint"] != claim.fingerprint:
            answers.append(IdempotencyConflict.for_key(claim.key))
        else:
            answers.append(Outcome(row["status_code"], bytes(row["body"]), replayed=True))
    return answers
