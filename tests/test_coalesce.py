"""Store writes made together share one call: the batching behind submits and results."""

from __future__ import annotations

import asyncio

import pytest

from asyncgen.queue._coalesce import Coalesced


class Recorder:
    """A write that records its batches and answers each item with its double."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_on in items:
            raise ConnectionError(f"lost while writing {items}")
        return [2 * item for item in items]


async def test_calls_in_one_turn_go_out_as_one_batch() -> None:
    write = Recorder()
    coalesced = Coalesced(write)
    assert await asyncio.gather(*(coalesced(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert write.batches == [[0, 1, 2, 3, 4]]


async def test_calls_during_a_write_share_the_next_one() -> None:
    """One write in flight at a time; everything that arrives meanwhile goes next."""
    write = Recorder()
    write.release.clear()
    coalesced = Coalesced(write)
    first = asyncio.ensure_future(coalesced(1))
    await asyncio.sleep(0.01)  # the first write is on its way
    later = [asyncio.ensure_future(coalesced(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert write.batches == [[1]]
    write.release.set()
    assert await asyncio.gather(first, *later) == [2, 4, 6, 8]
    assert write.batches == [[1], [2, 3, 4]]
    assert await coalesced(5) == 10  # idle again: a lone call goes at once
    assert write.batches[-1] == [5]


async def test_a_failed_write_fails_its_batch_only() -> None:
    write = Recorder(fail_on=2)
    write.release.clear()
    coalesced = Coalesced(write)
    first = asyncio.ensure_future(coalesced(1))
    await asyncio.sleep(0.01)
    failing = [asyncio.ensure_future(coalesced(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    write.release.set()
    assert await first == 2
    for call in failing:
        with pytest.raises(ConnectionError, match=r"\[2, 3\]"):
            await call
    assert await coalesced(3) == 6  # a retry joins a later batch


async def test_a_cancelled_caller_leaves_the_others_alone() -> None:
    write = Recorder()
    write.release.clear()
    coalesced = Coalesced(write)
    calls = [asyncio.ensure_future(coalesced(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    calls[1].cancel()
    write.release.set()
    assert await calls[0] == 0
    assert await calls[2] == 4
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
    assert write.batches == [[0, 1, 2]]  # the write itself went through whole


async def test_a_write_answering_the_wrong_count_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    coalesced = Coalesced(short)
    with pytest.raises(RuntimeError, match="a batch of 2 got 1 results"):
        await asyncio.gather(coalesced(1), coalesced(2))
