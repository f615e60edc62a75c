"""Calls that gather while one is in flight (one per event loop and purpose).

`Batches(decide).ask(key, item)` returns a future; while a `decide` call runs, later asks
wait, and the next call gets every item asked under one key since, in arrival order (at
most `limit` of them; the rest wait for the call after). A burst of a thousand buyers then
costs a few round trips, not a thousand. `decide(key, items)` returns one answer per item;
if it raises, every item of that batch gets None (the caller's "not decided here")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)


class Batches:
    def __init__(self, decide: Callable[[Hashable, list], Awaitable[list]], limit: int | None = None):
        self.decide = decide
        self.limit = limit
        self.waiting: dict[Hashable, list[tuple[object, asyncio.Future]]] = {}
        self.task: asyncio.Task | None = None  # the drain running now (held: the loop keeps only weak references)

    def ask(self, key: Hashable, item) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.setdefault(key, []).append((item, future))
        if self.task is None:
            self.task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, {}
                for key, asks in batch.items():
                    if self.limit is not None and len(asks) > self.limit:
                        asks, later = asks[: self.limit], asks[self.limit :]
                        self.waiting[key] = later + self.waiting.get(key, [])  # first in the next call
                    try:
                        answers = await self.decide(key, [item for item, _future in asks])
                    except Exception:
                        log.warning("deciding a batch of %d under %r failed", len(asks), key, exc_info=True)
                        answers = [None] * len(asks)
                    for (_item, future), answer in zip(asks, answers, strict=True):
                        if not future.done():
                            future.set_result(answer)
        finally:
            self.task = None
