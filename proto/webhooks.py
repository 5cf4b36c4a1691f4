"""Contracts of the webhooks service (``/webhooks/v1``): endpoints, their deliveries, and the
public event types an endpoint may subscribe to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.common import NO_NUL, PATTERN_END, Request, Response
from proto.events import PUBLIC_EVENT_TYPES as PUBLIC_EVENT_TYPES

# PUBLIC_EVENT_TYPES (proto.events) lists the event types an endpoint may subscribe to; ``*``
# subscribes to all of them, including ones added later.
ALL_EVENTS = "*"
# The type of the signed ping ``POST .../test`` sends.
TEST_EVENT_TYPE = "WebhookTest"

EventType = Annotated[str, Meta(min_length=1, max_length=64,
                                pattern=r"^(\*|[A-Za-z]+)" + PATTERN_END,
                                description="a public event type, or `*` for all of them")]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=64)]
Url = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^[^\x00-\x20]+" + PATTERN_END,
                          description="https URL (http only where the deployment allows it)")]
Description = Annotated[str, Meta(max_length=500, pattern=NO_NUL)]
AwareTime = Annotated[datetime, Meta(tz=True, description="RFC 3339 with an offset")]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class EndpointBody(Request, frozen=True, kw_only=True):
    url: Url
    event_types: EventTypes
    description: Description = ""
    # Plain http for this endpoint; honoured only where FULI_WEBHOOKS_ALLOW_HTTP or
    # FULI_WEBHOOKS_ALLOW_PRIVATE is true, refused (422) elsewhere.
    allow_http: bool = False


class EndpointPatch(Request, frozen=True, kw_only=True):
    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None
    allow_http: bool | None = None


class Endpoint(Response, frozen=True, kw_only=True):
    endpoint_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    allow_http: bool
    created_at: datetime
    updated_at: datetime
    # Set when the endpoint was disabled after failing every delivery for days.
    disabled_reason: str | None = None
    # Until when the secret before the last rotation still signs (alongside the new one).
    previous_secret_expires_at: datetime | None = None


class EndpointCreated(Response, frozen=True, kw_only=True):
    """The endpoint and its signing secret, shown this once."""

    endpoint_id: str
    secret: str
    endpoint: Endpoint


class EndpointList(Response, frozen=True, kw_only=True):
    items: list[Endpoint]
    next_cursor: str | None


class SecretRotated(Response, frozen=True, kw_only=True):
    """The new secret, shown this once; the old one signs too until ``previous_expires_at``."""

    secret: str
    previous_expires_at: datetime


class Delivery(Response, frozen=True, kw_only=True):
    delivery_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: int | None
    delivered_at: datetime | None


class DeliveryList(Response, frozen=True, kw_only=True):
    items: list[Delivery]
    next_cursor: str | None


class ReplayBody(Request, frozen=True, kw_only=True):
    """Deliveries of the endpoint created in ``[from, to)`` are sent again."""

    from_: AwareTime = msgspec.field(name="from")
    to: AwareTime


class Replayed(Response, frozen=True, kw_only=True):
    deliveries: int


class PingResult(Response, frozen=True, kw_only=True):
    """What the endpoint answered to a signed ``WebhookTest`` ping."""

    delivered: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class EndpointDisabled(Response, frozen=True, kw_only=True):
    """The record kept when an endpoint is disabled for failing every delivery."""

    endpoint_id: str
    disabled_at: datetime
    failing_since: datetime
    reason: str
