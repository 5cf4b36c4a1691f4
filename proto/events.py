"""Bus events: what services tell each other, and who listens.

Every event is a tagged Struct (``type`` names it). It travels inside an Envelope that carries
the id consumers deduplicate on.
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every bus event."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    tenant_id: str
    service: str
    type: str
    emitted_at: datetime
    data: msgspec.Raw


class Subscriber(msgspec.Struct, frozen=True):
    queue: str
    actor: str


# event type -> the actors (by queue and name) that consume it. The outbox relay reads this, so a
# relay in any process can route every event without importing the consumers.
SUBSCRIPTIONS: dict[str, tuple[Subscriber, ...]] = {}

EVENT_TYPES: dict[str, type[Event]] = {}


def event_name(event: Event) -> str:
    return type(event).__name__
