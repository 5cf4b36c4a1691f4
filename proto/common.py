"""Types shared by every contract."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

# The end of a value, in a pattern that refuses line breaks. Python's `$`, which msgspec
# validates with, also matches before a final newline: r"^[a-z]+$" would take "abc\n", which
# the same pattern refuses in JSON Schema (ECMA 262) and so in the published contract. No
# newline may follow this one, so it is the end in both.
PATTERN_END = r"$(?!\n)"
ID_PATTERN = r"^[A-Za-z0-9._:-]+" + PATTERN_END

# Members of the points ledger that only hold points in escrow for the rewards service (a red
# packet pool's or a member packet's points until handed out): ``pool:`` or ``packet:`` and the
# 40 hex characters of the owner's digest. They are accounts, not people: services that count
# members leave them out.
ESCROW_MEMBER_PATTERN = r"^(pool|packet):[0-9a-f]{40}$"

Id = Annotated[
    str,
    Meta(min_length=1, max_length=128, pattern=ID_PATTERN,
         description="1-128 characters of [A-Za-z0-9._:-]"),
]
TenantName = Annotated[
    str, Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*" + PATTERN_END)
]
Points = Annotated[int, Meta(gt=0, le=1_000_000_000, description="points, a positive integer")]
Cents = Annotated[int, Meta(ge=0, le=100_000_000_000, description="money in integer cents")]
# Free text: PostgreSQL text and jsonb cannot hold NUL characters, so they are refused up front.
NO_NUL = r"^[^\x00]*$"
ShortText = Annotated[str, Meta(max_length=200, pattern=NO_NUL)]
LongText = Annotated[str, Meta(max_length=2000, pattern=NO_NUL)]
Limit = Annotated[int, Meta(ge=1, le=500)]


class Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body: unknown fields are rejected."""


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every response body."""


class ErrorBody(Response, frozen=True, kw_only=True):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorEnvelope(Response, frozen=True, kw_only=True):
    error: ErrorBody


class Health(Response, frozen=True, kw_only=True):
    status: str
    checks: dict[str, str] = {}
