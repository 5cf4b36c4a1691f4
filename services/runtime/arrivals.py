"""Work that arrives together in one process, done together (earning events, blind-box draws,
reads: ``services.runtime.read_groups``).

Each arrival waits for its answer. Up to ``max_in_flight`` groups run at once; an arrival that
finds a free slot starts a group at once, so a lone arrival waits for nobody. While every slot is
busy, arrivals queue and go out together (up to ``max_group``) with the next group. The function
that runs a group answers each of its arrivals; any it leaves unanswered when it fails get its
error, and a group cancelled (the app stopping) cancels what it had not answered.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Arrival(Generic[T, R]):
    item: T
    done: asyncio.Future[R] = field(repr=False)

    def answer(self, result: R) -> None:
        if not self.done.done():  # answered already, or its caller went away (cancelled)
            self.done.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class Arrivals(Generic[T, R]):
    def __init__(self, run: Callable[[list[Arrival[T, R]]], Awaitable[None]], *,
                 max_group: int, max_in_flight: int) -> None:
        self._run = run
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: deque[Arrival[T, R]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the loop only keeps a weak reference

    async def submit(self, item: T) -> R:
        """The answer the group ``item`` went out with gave it."""
        loop = asyncio.get_running_loop()
        arrival: Arrival[T, R] = Arrival(item, loop.create_future())
        self._queue.append(arrival)
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await arrival.done

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = [self._queue.popleft()
                         for _ in range(min(self._max_group, len(self._queue)))]
                try:
                    await self._run(group)
                except Exception as exc:
                    for arrival in group:
                        arrival.fail(exc)
                except BaseException:
                    for arrival in group:
                        arrival.done.cancel()
                    raise
        finally:
            self._in_flight -= 1
