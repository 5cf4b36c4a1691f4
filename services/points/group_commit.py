"""Group commit for earning events.

Single events that arrive together in one process are written by one call of
``points.record_events``: one round trip and one commit for the group instead of one each. Up to
``max_in_flight`` groups run at once; a request that finds a free slot is written at once, so a
lone event waits for nobody. When a slot is busy, arrivals queue and go out together with the
next group. If a group fails as a whole, its events are retried one by one, so one bad event
never fails another.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from proto.points import EventIn
from services.points import store
from services.runtime.db import Pool


@dataclass
class _Pending:
    tenant_id: str
    event: EventIn
    fingerprint: bytes
    occurred_at: datetime
    now: datetime
    done: asyncio.Future[store.RecordedEvent] = field(repr=False)


class EventCommitter:
    def __init__(self, pool: Pool, *, max_group: int = 200,
                 max_in_flight: int = 4) -> None:
        self._pool = pool
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: deque[_Pending] = deque()
        self._in_flight = 0

    async def record(self, tenant_id: str, event: EventIn, fingerprint: bytes,
                     occurred_at: datetime, now: datetime) -> store.RecordedEvent:
        """What points.record_event answered for this event (written with the group it
        arrived with)."""
        done: asyncio.Future[store.RecordedEvent] = (
            asyncio.get_running_loop().create_future())
        self._queue.append(_Pending(tenant_id, event, fingerprint, occurred_at, now, done))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = [self._queue.popleft()
                         for _ in range(min(self._max_group, len(self._queue)))]
                await self._write(group)
        finally:
            self._in_flight -= 1

    async def _write(self, group: list[_Pending]) -> None:
        by_tenant: dict[str, list[_Pending]] = {}
        for pending in group:
            by_tenant.setdefault(pending.tenant_id, []).append(pending)
        for tenant_id, items in by_tenant.items():
            try:
                results = await self._write_tenant(tenant_id, items)
            except Exception as exc:
                if len(items) == 1:
                    _settle(items[0], exc=exc)
                else:
                    await self._one_by_one(tenant_id, items)
                continue
            for pending, result in zip(items, results, strict=True):
                _settle(pending, result=result)

    async def _write_tenant(self, tenant_id: str,
                            items: list[_Pending]) -> list[store.RecordedEvent]:
        """One result per item, in the items' order."""
        if len(items) == 1:
            only = items[0]
            return [await store.call_record_event(self._pool, tenant_id, only.event,
                                                  only.fingerprint, only.occurred_at, only.now)]
        return await store.call_record_events(
            self._pool, tenant_id, [i.event for i in items], [i.fingerprint for i in items],
            [i.occurred_at for i in items], items[0].now)

    async def _one_by_one(self, tenant_id: str, items: list[_Pending]) -> None:
        for pending in items:
            try:
                [result] = await self._write_tenant(tenant_id, [pending])
            except Exception as exc:
                _settle(pending, exc=exc)
            else:
                _settle(pending, result=result)


def _settle(pending: _Pending, *, result: store.RecordedEvent | None = None,
            exc: BaseException | None = None) -> None:
    if pending.done.done():  # the caller went away (request cancelled)
        return
    if exc is not None:
        pending.done.set_exception(exc)
    else:
        assert result is not None
        pending.done.set_result(result)
