"""Work that arrives together, done together: the mechanism under the earn path's group commit
and the draws made together."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.arrivals import Arrival, Arrivals


async def test_arrivals_while_a_group_runs_go_out_together_and_a_lone_one_at_once() -> None:
    groups: list[list[int]] = []
    release = asyncio.Event()

    async def run(group: list[Arrival[int, int]]) -> None:
        groups.append([arrival.item for arrival in group])
        if len(groups) == 1:
            await release.wait()
        for arrival in group:
            arrival.answer(arrival.item * 10)

    arrivals: Arrivals[int, int] = Arrivals(run, max_group=3, max_in_flight=1)
    first = asyncio.create_task(arrivals.submit(0))
    await asyncio.sleep(0)
    others = [asyncio.create_task(arrivals.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 0 and [await task for task in others] == [10, 20, 30, 40, 50]
    assert groups == [[0], [1, 2, 3], [4, 5]]
    assert await arrivals.submit(7) == 70 and groups[-1] == [7]


async def test_a_failed_group_fails_what_it_left_unanswered_and_the_next_group_runs() -> None:
    async def run(group: list[Arrival[int, int]]) -> None:
        group[0].answer(1)
        if len(group) > 1:
            raise RuntimeError("the group failed")

    arrivals: Arrivals[int, int] = Arrivals(run, max_group=10, max_in_flight=1)
    results = await asyncio.gather(*(arrivals.submit(n) for n in range(4)),
                                   return_exceptions=True)
    assert results[0] == 1 and all(isinstance(r, RuntimeError) for r in results[1:]), results
    assert await arrivals.submit(9) == 1


async def test_a_caller_that_went_away_is_not_answered() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def run(group: list[Arrival[int, int]]) -> None:
        started.set()
        await release.wait()
        for arrival in group:
            arrival.answer(arrival.item)

    arrivals: Arrivals[int, int] = Arrivals(run, max_group=10, max_in_flight=1)
    gone = asyncio.create_task(arrivals.submit(1))
    await started.wait()
    gone.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await arrivals.submit(2) == 2
