"""Tenants and API keys: creation, listing, revocation (SQL and the rules around it)."""

from __future__ import annotations

import hashlib
import re
import secrets
import zoneinfo
from dataclasses import dataclass
from datetime import datetime

from proto.auth import KeyInfo
from proto.common import PATTERN_END
from services.runtime.db import Conn, Db, as_structs
from services.runtime.errors import Conflict, NotFound, ValidationFailed

ROLES = ("admin", "operator", "ingest")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}" + PATTERN_END)
ISSUED_KEY = re.compile(r"^fuli_([0-9a-f]{16})_[A-Za-z0-9_-]{20,}" + PATTERN_END)
DEFAULT_TIME_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    key: str
    tenant_id: str
    role: str
    label: str | None
    created_at: datetime


def key_id_of(token: str) -> str:
    """The lookup id of a bearer key: embedded in issued keys, derived for bootstrap keys."""
    match = ISSUED_KEY.match(token)
    if match:
        return match.group(1)
    return "b" + hashlib.sha256(token.encode()).hexdigest()[:15]


def hash_key(token: str) -> bytes:
    # Keys are 256-bit random strings, so a fast hash is enough; there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def new_key() -> str:
    return f"fuli_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def check_tenant_name(name: str) -> None:
    if not TENANT_NAME.match(name):
        raise ValidationFailed("tenant names are 1-63 characters of [a-z0-9_-], starting with "
                               "a letter or digit", field="tenant")


def check_time_zone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown time zone {name!r}", field="time_zone") from None


async def create_tenant(conn: Conn, name: str,
                        time_zone: str = DEFAULT_TIME_ZONE) -> IssuedKey:
    """A new tenant and its first admin key."""
    check_tenant_name(name)
    check_time_zone(time_zone)
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO fuli.tenants (tenant_id, time_zone, token_secret) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING tenant_id",
            name, time_zone, secrets.token_bytes(32),
        )
        if created is None:
            raise Conflict(f"tenant {name!r} already exists", code="tenant_exists")
        return await create_key(conn, name, "admin", label="first admin key")


async def ensure_tenant_with_key(conn: Conn, name: str, token: str) -> bool:
    """Make tenant ``name`` exist with ``token`` as an admin key. True if anything was created."""
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO fuli.tenants (tenant_id, token_secret) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING tenant_id",
            name, secrets.token_bytes(32),
        )
        added = await conn.fetchval(
            "INSERT INTO fuli.api_keys (key_id, tenant_id, secret_hash, role, label)"
            " VALUES ($1, $2, $3, 'admin', 'bootstrap key') ON CONFLICT (key_id) DO NOTHING"
            " RETURNING key_id",
            key_id_of(token), name, hash_key(token),
        )
        return created is not None or added is not None


async def create_key(conn: Conn, tenant_id: str, role: str,
                     label: str | None = None) -> IssuedKey:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", field="role")
    token = new_key()
    row = await conn.fetchrow(
        "INSERT INTO fuli.api_keys (key_id, tenant_id, secret_hash, role, label)"
        " SELECT $1, tenant_id, $3, $4, $5 FROM fuli.tenants WHERE tenant_id = $2"
        " RETURNING created_at",
        key_id_of(token), tenant_id, hash_key(token), role, label,
    )
    if row is None:
        raise NotFound(f"no tenant {tenant_id!r}", code="unknown_tenant")
    return IssuedKey(key_id_of(token), token, tenant_id, role, label, row["created_at"])


async def revoke_key(conn: Conn, key_id: str, tenant_id: str | None = None) -> None:
    revoked = await conn.fetchval(
        "UPDATE fuli.api_keys SET revoked_at = coalesce(revoked_at, now())"
        " WHERE key_id = $1 AND ($2::text IS NULL OR tenant_id = $2) RETURNING key_id",
        key_id, tenant_id,
    )
    if revoked is None:
        raise NotFound(f"no key {key_id!r}", code="unknown_key")


async def list_keys(conn: Conn, tenant_id: str) -> list[KeyInfo]:
    return as_structs(KeyInfo, await conn.fetch(
        "SELECT key_id, role, label, created_at, revoked_at FROM fuli.api_keys"
        " WHERE tenant_id = $1 ORDER BY created_at, key_id", tenant_id,
    ))


async def key_label(db: Db, tenant_id: str, key_id: str) -> str | None:
    """The label of one of the tenant's API keys (None for no label or no such key)."""
    label = await db.fetchval(
        "SELECT label FROM fuli.api_keys WHERE key_id = $1 AND tenant_id = $2", key_id, tenant_id)
    return None if label is None else str(label)


async def tenant_exists(db: Db, tenant_id: str) -> bool:
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM fuli.tenants WHERE tenant_id = $1)", tenant_id))


async def tenant_count(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM fuli.tenants"))


async def tenant_time_zone(db: Db, tenant_id: str) -> str:
    """The tenant's time zone, which defines its days, weeks and months."""
    return time_zone_or_default(await db.fetchval(
        "SELECT time_zone FROM fuli.tenants WHERE tenant_id = $1", tenant_id))


def time_zone_or_default(time_zone: object) -> str:
    """A tenant's time zone as read with its tenant row (None when there is no such row)."""
    return str(time_zone) if time_zone is not None else DEFAULT_TIME_ZONE
