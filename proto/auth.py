"""Contracts for API keys and member tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import Id, Request, Response, ShortText

Role = Literal["admin", "operator", "ingest"]
# Who a request comes from: an API key's role, a member token, or another fuli service acting
# for the tenant (rewards calling points).
PrincipalRole = Literal["admin", "operator", "ingest", "member", "service"]


class MemberTokenRequest(Request, frozen=True, kw_only=True):
    member_id: Id
    ttl_s: Annotated[int, Meta(ge=60, le=86_400)] = 3600


class MemberToken(Response, frozen=True, kw_only=True):
    token: str
    member_id: str
    expires_at: datetime


class KeyCreateRequest(Request, frozen=True, kw_only=True):
    role: Role
    label: ShortText | None = None


class KeyCreated(Response, frozen=True, kw_only=True):
    key_id: str
    key: str
    role: Role
    label: str | None
    created_at: datetime


class KeyInfo(Response, frozen=True, kw_only=True):
    key_id: str
    role: Role
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeyList(Response, frozen=True, kw_only=True):
    items: list[KeyInfo]


class Whoami(Response, frozen=True, kw_only=True):
    """The caller: its tenant and the tenant's time zone, its role, and the API key (``key_id``,
    ``label``) or the member (``member_id``) it is."""

    tenant_id: str
    time_zone: str
    role: PrincipalRole
    key_id: str | None
    label: str | None
    member_id: str | None
