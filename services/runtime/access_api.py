"""HTTP handlers for API keys (admin), member tokens (ingest) and who the caller is (anyone);
mounted by the points service."""

from __future__ import annotations

from typing import cast

from litestar import Controller, delete, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from proto.auth import (
    KeyCreated,
    KeyCreateRequest,
    KeyList,
    MemberToken,
    MemberTokenRequest,
    PrincipalRole,
    Whoami,
)
from services.runtime import tenants
from services.runtime.auth import allow
from services.runtime.deps import PathId, PrincipalDep, ResourcesDep
from services.runtime.errors import ValidationFailed


class AccessController(Controller):
    tags = ["access"]

    @get("/whoami", access=allow("admin", "operator", "ingest", member=True))
    async def whoami(self, principal: PrincipalDep, resources: ResourcesDep) -> Whoami:
        """The caller: its tenant and the tenant's time zone, its role, and its key or member."""
        time_zone = await tenants.tenant_time_zone(resources.pool, principal.tenant_id)
        label = (await tenants.key_label(resources.pool, principal.tenant_id, principal.key_id)
                 if principal.key_id is not None else None)
        return Whoami(tenant_id=principal.tenant_id, time_zone=time_zone,
                      role=cast(PrincipalRole, principal.role),
                      key_id=principal.key_id, label=label, member_id=principal.member_id)

    @post("/keys", access=allow("admin"), status_code=HTTP_201_CREATED)
    async def create_key(self, data: JSONBody[KeyCreateRequest], principal: PrincipalDep,
                         resources: ResourcesDep) -> KeyCreated:
        """Create an API key for this tenant. The key is shown once."""
        async with resources.pool.acquire() as conn:
            issued = await tenants.create_key(conn, principal.tenant_id, data.role, data.label)
        return KeyCreated(key_id=issued.key_id, key=issued.key, role=data.role,
                          label=issued.label, created_at=issued.created_at)

    @get("/keys", access=allow("admin"))
    async def list_keys(self, principal: PrincipalDep, resources: ResourcesDep) -> KeyList:
        async with resources.pool.acquire() as conn:
            rows = await tenants.list_keys(conn, principal.tenant_id)
        return KeyList(items=rows)

    @delete("/keys/{key_id:str}", access=allow("admin"), status_code=HTTP_204_NO_CONTENT)
    async def revoke_key(self, key_id: PathId, principal: PrincipalDep,
                         resources: ResourcesDep) -> None:
        """Revoke a key: it stops working at once on this process."""
        async with resources.pool.acquire() as conn:
            await tenants.revoke_key(conn, key_id, principal.tenant_id)
        resources.authenticator.forget_key(key_id)

    @post("/member-tokens", access=allow("ingest"), status_code=HTTP_201_CREATED)
    async def mint_member_token(self, data: JSONBody[MemberTokenRequest], principal: PrincipalDep,
                                resources: ResourcesDep) -> MemberToken:
        """A short-lived token that may read and act only as ``member_id``."""
        if data.ttl_s > resources.settings.member_token_max_ttl_s:
            raise ValidationFailed(
                f"ttl_s may be at most {resources.settings.member_token_max_ttl_s}",
                field="ttl_s")
        token, expires_at = await resources.authenticator.mint_member_token(
            principal.tenant_id, data.member_id, data.ttl_s)
        return MemberToken(token=token, member_id=data.member_id, expires_at=expires_at)
