"""Contracts for API keys and member tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.common import Id, Request, Response, ShortText

Role = Literal["admin", "operator", "ingest"]


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
