"""Coalesce store writes made close together into one call (one round trip)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalesced"]

K = TypeVar("K")
R = TypeVar("R")


class Coalesced(Generic[K, R]):
    """Calls made while a write is in flight (or in the same loop turn) go out together.

    ``await coalesced(item)`` returns what ``write`` returned for that item. At most one
    write is in flight: a lone call costs one round trip as before, and under load every
    call waiting behind the one in flight shares the next. A write that raises raises in
    every caller of its batch (each may retry; a retry joins a later batch).

    Args:
        write: Takes a batch of items, returns one result per item, in order.
    """

    def __init__(self, write: Callable[[list[K]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._waiting: list[tuple[K, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, item: K) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._flush())
        # Shielded: a caller cancelled meanwhile leaves the batch (and the others) intact.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = list(await self._write([item for item, _ in batch]))
                    if len(results) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} got {len(results)} results")
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled: so are the callers' waits
                    for _, future in batch + self._waiting:
                        future.cancel()
                    self._waiting = []
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None
