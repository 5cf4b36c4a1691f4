"""Pure rules of deliveries: the webhook id, the body, the retry schedule and what counts as
delivered. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import msgspec

from proto.events import PUSHED_AS, TierChanges, tier_changed_id
from proto.webhooks import PUBLIC_EVENT_TYPES, TEST_EVENT_TYPE


class Subscribed(Protocol):
    @property
    def endpoint_id(self) -> str: ...
    @property
    def event_types(self) -> list[str]: ...


def subscribers(subscriptions: Sequence[Subscribed], event_type: str) -> list[str]:
    """The endpoints among ``subscriptions`` that take ``event_type`` (named, or ``*``)."""
    return [s.endpoint_id for s in subscriptions
            if event_type in s.event_types or "*" in s.event_types]


# Seconds to wait after the 1st, 2nd, ... failed attempt; after the last, the delivery is
# failed (8 attempts over about 33 hours). FULI_WEBHOOKS_RETRY_SCALE multiplies them.
RETRY_SCHEDULE_S: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S) + 1
JITTER = 0.1  # each wait is drawn uniformly within +-10 % of its step
TIMEOUT_S = 10.0
RESPONSE_LIMIT_BYTES = 4096  # of a response body read (and of last_error kept)
ERROR_TEXT_LIMIT = 500

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, Any])


class PublicEvent(NamedTuple):
    event_id: str
    event_type: str
    fields: dict[str, Any]  # the event's, its bus tag left out


def public_type(event_type: str) -> str | None:
    """The type of the public events a bus event stands for (None: not pushed)."""
    pushed = PUSHED_AS.get(event_type, event_type)
    return pushed if pushed in PUBLIC_EVENT_TYPES else None


def public_events(event_id: str, event_type: str, data: bytes) -> list[PublicEvent]:
    """The public events a bus event stands for: itself if it is public, each member's
    ``TierChanged`` of a ``TierChanges`` (with its own event id, the same on a redelivery),
    none otherwise."""
    if event_type == "TierChanges":
        return [PublicEvent(tier_changed_id(event_id, changed.member_id), PUSHED_AS[event_type],
                            _untagged(msgspec.to_builtins(changed)))
                for changed in msgspec.json.decode(data, type=TierChanges).each()]
    if event_type not in PUBLIC_EVENT_TYPES:
        return []
    return [PublicEvent(event_id, event_type, _untagged(_decoder.decode(data)))]


def _untagged(fields: dict[str, Any]) -> dict[str, Any]:
    fields.pop("type", None)
    return fields


def delivery_id(event_id: str, endpoint_id: str) -> str:
    """The ``webhook-id`` of an event's delivery to an endpoint: the same on every attempt,
    retry and replay, so a receiver deduplicates on it."""
    return "msg-" + event_id.replace("-", "") + "-" + endpoint_id


def body(event: PublicEvent, emitted_at: datetime) -> bytes:
    """``{type, timestamp, data}``: the event's fields as data, the time it was emitted as
    timestamp."""
    return _encoder.encode({"type": event.event_type,
                            "timestamp": emitted_at.astimezone(UTC).isoformat(),
                            "data": event.fields})


def ping_body(endpoint_id: str, now: datetime) -> bytes:
    return _encoder.encode({"type": TEST_EVENT_TYPE, "timestamp": now.astimezone(UTC).isoformat(),
                            "data": {"endpoint_id": endpoint_id}})


def retry_delay_s(attempts: int, scale: float, draw: float) -> float | None:
    """Seconds until the next attempt after ``attempts`` attempts failed (None: no more,
    the delivery has failed); ``draw`` in [0, 1) places it within the jitter."""
    if attempts < 1 or attempts > len(RETRY_SCHEDULE_S):
        return None
    step = RETRY_SCHEDULE_S[attempts - 1] * scale
    return step * (1 - JITTER + 2 * JITTER * draw)


def is_delivered(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def error_text(text: str) -> str:
    return text[:ERROR_TEXT_LIMIT]
