"""Group commit for earning events.

Single events that arrive together in one process are written by one call of
``points.record_events``: one round trip and one commit for the group instead of one each
(``services.runtime.arrivals``: up to ``max_in_flight`` groups at once, a lone event waits for
nobody). If a group fails as a whole, its events are retried one by one, so one bad event never
fails another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from proto.points import EventIn
from services.points import store
from services.runtime.arrivals import Arrival, Arrivals
from services.runtime.db import Pool


@dataclass(frozen=True)
class _Event:
    tenant_id: str
    event: EventIn
    fingerprint: bytes
    occurred_at: datetime
    now: datetime


_Pending = Arrival[_Event, store.RecordedEvent]


class EventCommitter:
    def __init__(self, pool: Pool, *, max_group: int = 200,
                 max_in_flight: int = 4) -> None:
        self._pool = pool
        self._arrivals: Arrivals[_Event, store.RecordedEvent] = Arrivals(
            self._write, max_group=max_group, max_in_flight=max_in_flight)

    async def record(self, tenant_id: str, event: EventIn, fingerprint: bytes,
                     occurred_at: datetime, now: datetime) -> store.RecordedEvent:
        """What points.record_event answered for this event (written with the group it
        arrived with)."""
        return await self._arrivals.submit(
            _Event(tenant_id, event, fingerprint, occurred_at, now))

    async def _write(self, group: list[_Pending]) -> None:
        by_tenant: dict[str, list[_Pending]] = {}
        for pending in group:
            by_tenant.setdefault(pending.item.tenant_id, []).append(pending)
        for tenant_id, items in by_tenant.items():
            try:
                results = await self._write_tenant(tenant_id, items)
            except Exception as exc:
                if len(items) == 1:
                    items[0].fail(exc)
                else:
                    await self._one_by_one(tenant_id, items)
                continue
            for pending, result in zip(items, results, strict=True):
                pending.answer(result)

    async def _write_tenant(self, tenant_id: str,
                            items: list[_Pending]) -> list[store.RecordedEvent]:
        """One result per item, in the items' order."""
        events = [pending.item for pending in items]
        if len(events) == 1:
            only = events[0]
            return [await store.call_record_event(self._pool, tenant_id, only.event,
                                                  only.fingerprint, only.occurred_at, only.now)]
        return await store.call_record_events(
            self._pool, tenant_id, [e.event for e in events], [e.fingerprint for e in events],
            [e.occurred_at for e in events], events[0].now)

    async def _one_by_one(self, tenant_id: str, items: list[_Pending]) -> None:
        for pending in items:
            try:
                [result] = await self._write_tenant(tenant_id, [pending])
            except Exception as exc:
                pending.fail(exc)
            else:
                pending.answer(result)
