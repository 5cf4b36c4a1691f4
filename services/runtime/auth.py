"""Who is calling: API keys and member tokens, and the middleware that authenticates them and
checks each route's access."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import msgspec
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from services.runtime.errors import Forbidden, Unauthorized
from services.runtime.requests import scope_header
from services.runtime.tenants import hash_key, key_id_of

EXCLUDE_OPT = "exclude_from_auth"
ACCESS_OPT = "access"
TOKEN_ISSUER = "fuli"
TOKEN_ALGORITHM = "HS256"
MAX_CACHED_KEYS = 10_000
# Roles nest: an admin may do what an operator may, and an operator what an ingest key may (a
# console run by operators reads balances and posts what a brand's backend posts).
IMPLIED_ROLES = {"admin": {"admin", "operator", "ingest"}, "operator": {"operator", "ingest"},
                 "ingest": {"ingest"}, "service": {"operator", "ingest"}}


class Principal(msgspec.Struct, frozen=True):
    tenant_id: str
    role: str
    key_id: str | None = None
    member_id: str | None = None

    @property
    def is_member(self) -> bool:
        return self.role == "member"

    @property
    def rate_identity(self) -> tuple[str, str]:
        if self.is_member:
            return "member", f"m:{self.member_id}"
        return "key", f"k:{self.key_id}"

    def require_member(self, member_id: str) -> None:
        """A member token acts only as its own member."""
        if self.is_member and member_id != self.member_id:
            raise Forbidden("a member token may act only as its own member")


class _Cached(msgspec.Struct):
    until: float  # monotonic: trusted until then
    value: Any


def _fresh(cache: dict[str, _Cached], key: str) -> _Cached | None:
    cached = cache.get(key)
    return cached if cached is not None and time.monotonic() < cached.until else None


def _remember(cache: dict[str, _Cached], key: str, value: Any, for_s: float) -> None:
    if len(cache) >= MAX_CACHED_KEYS:
        cache.clear()  # bounded: unknown keys must not grow it forever
    cache[key] = _Cached(time.monotonic() + for_s, value)


class Authenticator:
    """Verifies bearer credentials against fuli.api_keys and tenant token secrets.

    Verified keys are cached per process for ``cache_ttl_s``: revoking a key through the API
    takes effect at once in that process and within the TTL in every other one. A verified
    member or service token is trusted for as long, never past its expiry.
    """

    def __init__(self, pool: asyncpg.Pool, *, cache_ttl_s: float) -> None:
        self._pool = pool
        self._ttl = cache_ttl_s
        self._keys: dict[str, _Cached] = {}
        self._secrets: dict[str, _Cached] = {}
        self._tokens: dict[str, _Cached] = {}

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise Unauthorized("missing Authorization: Bearer header")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected Authorization: Bearer <key or member token>")
        if token.count(".") == 2:
            return await self._member(token)
        return await self._api_key(token)

    async def _api_key(self, token: str) -> Principal:
        key_id = key_id_of(token)
        cached = _fresh(self._keys, key_id)
        if cached is not None:
            row = cached.value
        else:
            row = await self._pool.fetchrow(
                "SELECT tenant_id, role, secret_hash, revoked_at FROM fuli.api_keys"
                " WHERE key_id = $1", key_id)
            _remember(self._keys, key_id, row, self._ttl)
        if row is None or row["secret_hash"] != hash_key(token):
            raise Unauthorized("unknown API key")
        if row["revoked_at"] is not None:
            raise Unauthorized("this API key was revoked")
        return Principal(tenant_id=row["tenant_id"], role=row["role"], key_id=key_id)

    async def tenant_secret(self, tenant_id: str) -> bytes | None:
        cached = _fresh(self._secrets, tenant_id)
        if cached is not None:
            return cached.value  # type: ignore[no-any-return]
        secret = await self._pool.fetchval(
            "SELECT token_secret FROM fuli.tenants WHERE tenant_id = $1", tenant_id)
        # A tenant's secret does not change; a missing tenant is asked for again.
        _remember(self._secrets, tenant_id, secret, math.inf if secret is not None else self._ttl)
        return secret  # type: ignore[no-any-return]

    async def _member(self, token: str) -> Principal:
        cached = _fresh(self._tokens, token)
        if cached is not None:
            return cached.value  # type: ignore[no-any-return]
        principal, expires_at = await self._verify_token(token)
        _remember(self._tokens, token, principal, min(self._ttl, expires_at - time.time()))
        return principal

    async def _verify_token(self, token: str) -> tuple[Principal, float]:
        """The token's principal and its expiry (epoch seconds)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            tenant_id = claims.get("tid")
            secret = await self.tenant_secret(tenant_id) if isinstance(tenant_id, str) else None
            if secret is None:
                raise Unauthorized("invalid member token")
            claims = jwt.decode(token, secret, algorithms=[TOKEN_ALGORITHM], issuer=TOKEN_ISSUER,
                                options={"require": ["exp", "iat", "sub", "tid", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("member token expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid member token") from None
        expires_at = float(claims["exp"])
        if claims.get("svc"):
            # A service acting for the tenant (rewards calling points): may ingest and operate.
            return Principal(tenant_id=claims["tid"], role="service",
                             key_id=f"svc:{claims['svc']}"), expires_at
        return Principal(tenant_id=claims["tid"], role="member",
                         member_id=claims["sub"]), expires_at

    async def mint_service_token(self, tenant_id: str, service: str,
                                 ttl_s: int = 300) -> str:
        """A short-lived ingest token for one fuli service calling another for a tenant."""
        secret = await self.tenant_secret(tenant_id)
        if secret is None:
            raise Unauthorized("unknown tenant")
        now = datetime.now(UTC).replace(microsecond=0)
        return jwt.encode({"iss": TOKEN_ISSUER, "tid": tenant_id, "sub": f"service:{service}",
                           "svc": service, "iat": now, "exp": now + timedelta(seconds=ttl_s)},
                          secret, algorithm=TOKEN_ALGORITHM)

    async def mint_member_token(self, tenant_id: str, member_id: str,
                                ttl_s: int) -> tuple[str, datetime]:
        secret = await self.tenant_secret(tenant_id)
        if secret is None:
            raise Unauthorized("unknown tenant")
        now = datetime.now(UTC).replace(microsecond=0)
        expires_at = now + timedelta(seconds=ttl_s)
        token = jwt.encode({"iss": TOKEN_ISSUER, "tid": tenant_id, "sub": member_id,
                            "iat": now, "exp": expires_at}, secret, algorithm=TOKEN_ALGORITHM)
        return token, expires_at


class AuthMiddleware(AbstractAuthenticationMiddleware):
    """Who is calling, and whether the route lets them (its ``access``, see ``allow``)."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]
                                   ) -> AuthenticationResult:
        authenticator: Authenticator = connection.app.state.resources.authenticator
        principal = await authenticator.authenticate(
            scope_header(connection.scope, b"authorization"))
        access: Access | None = connection.route_handler.opt.get(ACCESS_OPT)
        if access is not None:
            access.check(principal, connection.path_params)
        return AuthenticationResult(user=principal, auth=None)


class Access(msgspec.Struct, frozen=True):
    """Who may call a route: API keys with one of ``roles`` (or a role that implies one) and, if
    ``member``, member tokens, which may only name their own member in a ``member_id`` path
    parameter.

    Checked by AuthMiddleware rather than as a Litestar guard: Litestar copies the route handler
    for every guard it runs, a twentieth of the API's CPU on a balance read."""

    roles: frozenset[str]
    member: bool

    @property
    def names(self) -> str:
        return " or ".join(sorted(self.roles | ({"member token"} if self.member else set())))

    def check(self, principal: Principal, path_params: dict[str, Any]) -> None:
        if principal.is_member:
            if not self.member:
                raise Forbidden(f"this route needs {self.names}")
            path_member = path_params.get("member_id")
            if path_member is not None:
                principal.require_member(path_member)
            return
        if not IMPLIED_ROLES[principal.role] & self.roles:
            raise Forbidden(f"this route needs {self.names}; this key is {principal.role}")


def allow(*roles: str, member: bool = False) -> Access:
    """A route's ``access`` (``@get(..., access=allow("operator"))``, kept in its ``opt``)."""
    return Access(frozenset(roles), member)
