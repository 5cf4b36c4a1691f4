"""Member activity from the bus, folded into action days and purchases: the inputs of value
scores and group reports. Shared by the value and groups features, so it lives at the root of
the service; this is the only code that writes ``tiers.action_days`` and ``tiers.purchases``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec

from proto.events import ActionRecorded, CouponUsed, Envelope, PurchaseReversed
from services.runtime.db import Conn
from services.tiers import shared_store
from services.tiers.members import is_escrow
from services.tiers.tag_names import is_tag

COUPON_USED = "coupon_used"
MAX_GROUP_ID = 128
SOURCE_TAG = "source:"


def group_of(attributes: dict[str, Any]) -> str | None:
    """The group an event names in its attributes; anything but a short id is no group."""
    return _short_id(attributes.get("group_id"))


def channel_of(attributes: dict[str, Any]) -> str | None:
    """The channel an event names in its ``channel`` attribute (the member's source tag is
    ``source:<channel>``): a short id as for groups, lower-cased, that makes a tag name."""
    text = _short_id(attributes.get("channel"))
    channel = text.lower() if text is not None else None
    return channel if channel is not None and is_tag(SOURCE_TAG + channel) else None


def _short_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_GROUP_ID else None


async def apply_activities(conn: Conn, envelopes: list[Envelope]) -> None:
    """Fold a batch of events into the tenants' activity (a ``bus.consume_batches`` handler):
    the action days and the members of the batch with one statement each, then each source,
    purchase and refund in the batch's order (a refund may follow its purchase). Escrow
    members' events are no member's activity."""
    actions: list[shared_store.ActionDay] = []
    in_order: list[Callable[[], Awaitable[None]]] = []
    for envelope in envelopes:
        tenant = envelope.tenant_id
        if envelope.type == "ActionRecorded":
            action = msgspec.json.decode(envelope.data, type=ActionRecorded)
            if is_escrow(action.member_id):
                continue
            group_id = group_of(action.attributes)
            actions.append(shared_store.ActionDay(tenant, action.member_id, action.action,
                                                  group_id or "", action.occurred_at))
            channel = channel_of(action.attributes)
            if channel is not None:
                in_order.append(partial(shared_store.add_source, conn, tenant, action.member_id,
                                        channel, action.event_id, action.occurred_at))
            if action.amount_cents:
                in_order.append(partial(shared_store.add_purchase, conn, tenant, action.event_id,
                                        action.member_id, action.action, group_id,
                                        action.occurred_at, action.amount_cents))
        elif envelope.type == "CouponUsed":
            used = msgspec.json.decode(envelope.data, type=CouponUsed)
            if not is_escrow(used.member_id):
                actions.append(shared_store.ActionDay(tenant, used.member_id, COUPON_USED, "",
                                                      used.used_at))
        elif envelope.type == "PurchaseReversed":
            refund = msgspec.json.decode(envelope.data, type=PurchaseReversed)
            if not is_escrow(refund.member_id):
                in_order.append(partial(shared_store.add_refund, conn, tenant, refund.event_id,
                                        refund.member_id, refund.occurred_at,
                                        refund.amount_cents))
    await shared_store.add_actions(conn, actions)
    if actions:
        await shared_store.ensure_members(conn, [a.tenant_id for a in actions],
                                          [a.member_id for a in actions])
    for write in in_order:
        await write()
