"""ReadGroups: reads that arrive together go out together, and each gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from services.runtime.read_groups import ReadGroups


class Squares:
    """A read of many keys that records each call and can be held until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def __call__(self, keys: Sequence[int]) -> Mapping[int, int]:
        self.calls.append(list(keys))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        if 13 in keys:
            raise LookupError("13 cannot be read")
        return {key: key * key for key in keys if key >= 0}  # negative keys: not found


async def settle() -> None:
    """Lets every ready task run until each waits (the reads, then the groups they start)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def group_held_out(squares: Squares, first: int = 0
                         ) -> tuple[ReadGroups[int, int], asyncio.Future[int | None]]:
    """Groups with one slot, taken by the read of ``first``, held until squares.release."""
    squares.release.clear()
    groups = ReadGroups(squares, max_in_flight=1)
    held = asyncio.ensure_future(groups.read(first))
    await settle()
    return groups, held


async def test_a_lone_read_goes_out_at_once() -> None:
    squares = Squares()
    groups = ReadGroups(squares)
    assert await asyncio.wait_for(groups.read(7), 1) == 49
    assert squares.calls == [[7]]


async def test_reads_one_after_another_each_get_their_answer() -> None:
    # The next read comes as the group before ends: it must start a group of its own.
    squares = Squares()
    groups = ReadGroups(squares)

    async def one_after_another() -> list[int | None]:
        return [await groups.read(key) for key in range(5)]

    assert await asyncio.wait_for(one_after_another(), 1) == [0, 1, 4, 9, 16]
    assert squares.calls == [[key] for key in range(5)]


async def test_reads_arriving_while_a_group_is_out_go_out_together() -> None:
    squares = Squares()
    groups, first = await group_held_out(squares, 1)
    rest = [asyncio.ensure_future(groups.read(key)) for key in (2, 3, 3, -1, 2)]
    await settle()
    assert squares.calls == [[1]], "a read went out while the only slot was busy"
    squares.release.set()
    assert await first == 1
    assert [await read for read in rest] == [4, 9, 9, None, 4]
    assert squares.calls == [[1], [2, 3, -1]], "each key is read once a group"


async def test_groups_keep_to_their_size_and_slots() -> None:
    squares = Squares()
    squares.release.clear()
    groups = ReadGroups(squares, max_group=3, max_in_flight=2)
    reads = [asyncio.ensure_future(groups.read(key)) for key in range(10)]
    await settle()
    assert len(squares.calls) == 2, "more groups out than slots"
    squares.release.set()
    assert await asyncio.gather(*reads) == [key * key for key in range(10)]
    assert all(len(call) <= 3 for call in squares.calls)
    assert sorted(key for call in squares.calls for key in call) == list(range(10))


async def test_a_failed_group_fails_each_of_its_reads_and_no_later_one() -> None:
    squares = Squares()
    squares.release.clear()
    squares.fail_with = ConnectionResetError("the server went away")
    groups = ReadGroups(squares, max_in_flight=1)
    reads = [asyncio.ensure_future(groups.read(key)) for key in (1, 2)]
    await settle()
    squares.release.set()
    for read in reads:
        with pytest.raises(ConnectionResetError):
            await read
    squares.fail_with = None
    assert await groups.read(3) == 9


async def test_a_key_that_fails_its_group_fails_only_its_own_reads() -> None:
    squares = Squares()
    groups, blocker = await group_held_out(squares)
    reads = [asyncio.ensure_future(groups.read(key)) for key in (2, 13, 3, 13)]
    await settle()
    squares.release.set()
    assert await blocker == 0
    assert await reads[0] == 4 and await reads[2] == 9
    for read in (reads[1], reads[3]):
        with pytest.raises(LookupError):
            await read
    assert squares.calls == [[0], [2, 13, 3], [2], [13], [3]], "read again one by one"


async def test_a_read_that_goes_away_leaves_the_others_theirs() -> None:
    squares = Squares()
    groups, blocker = await group_held_out(squares)
    leaving = asyncio.ensure_future(groups.read(5))
    staying = asyncio.ensure_future(groups.read(5))
    await settle()
    leaving.cancel()
    squares.release.set()
    assert await blocker == 0
    assert await staying == 25
    assert leaving.cancelled()
