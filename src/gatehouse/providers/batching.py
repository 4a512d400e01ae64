"""Micro-batching: calls that arrive within a few milliseconds share one model run.

A model on a CPU embeds 32 inputs in far less than 32 times the time of one,
so concurrent small requests (a RAG ingester's parallel workers, many users'
queries) are worth coalescing. :class:`MicroBatcher` holds each submitted
request until the oldest waiting one is ``window`` seconds old or the waiting
inputs reach ``max_items``, then runs them as one batch in a worker thread and
hands each caller back its own slice of the results. One batch runs at a time:
the model already uses every core, and requests that arrive while it runs form
the next batch.

Time is injected (``clock`` and ``sleep``) so the window logic is tested
without real waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger("gatehouse.providers.batching")

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class _Pending(Generic[Item, Result]):
    items: Sequence[Item]
    arrived: float
    future: asyncio.Future[list[Result]] = field(repr=False)


class MicroBatcher(Generic[Item, Result]):
    """Coalesces concurrent :meth:`submit` calls into batched ``run`` calls.

    ``run`` is blocking (it runs in a thread) and returns one result per item,
    in order. A request larger than ``max_items`` is never split: it runs as a
    batch of its own. If ``run`` raises, every request in that batch gets the
    exception; other batches are unaffected.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Sequence[Result]],
        *,
        window: float,
        max_items: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self._run = run
        self._window = window
        self._max_items = max_items
        self._clock = clock
        self._sleep = sleep
        self._pending: list[_Pending[Item, Result]] = []
        self._pending_items = 0
        self._due_now = False  # a request that should not wait for the window is pending
        self._full = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches_run = 0  # for tests and metrics: how many ``run`` calls were made

    async def submit(self, items: Sequence[Item], *, wait: bool = True) -> list[Result]:
        """Results for ``items``, in order, computed in some batch with other callers'.

        ``wait=False``: the caller knows of no other request on its way (a lone
        query), so the batch runs without waiting for the window to close.
        """
        if not items:
            return []
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # asyncio primitives belong to one loop; a provider outlives test loops
            # and CLI runs, so start afresh (nothing can be pending on a dead loop).
            self._loop = loop
            self._full = asyncio.Event()
            self._drainer = None
            self._pending.clear()
            self._pending_items = 0
        future: asyncio.Future[list[Result]] = loop.create_future()
        self._pending.append(_Pending(items, self._clock(), future))
        self._pending_items += len(items)
        self._due_now = self._due_now or not wait
        if self._pending_items >= self._max_items or self._due_now:
            self._full.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            due = self._pending[0].arrived + self._window - self._clock()
            if due > 0 and self._pending_items < self._max_items and not self._due_now:
                await self._wait(due)
                continue
            self._due_now = False
            await self._run_batch(self._take_batch())

    async def _wait(self, seconds: float) -> None:
        """Sleep until the window closes, or until a submit fills the batch."""
        self._full.clear()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        filled = asyncio.ensure_future(self._full.wait())
        try:
            await asyncio.wait({sleeper, filled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, filled):
                task.cancel()

    def _take_batch(self) -> list[_Pending[Item, Result]]:
        batch: list[_Pending[Item, Result]] = []
        size = 0
        while self._pending:
            head = self._pending[0]
            if batch and size + len(head.items) > self._max_items:
                break
            self._pending.pop(0)
            self._pending_items -= len(head.items)
            if head.future.done():  # its caller went away (cancelled) while it waited
                continue
            batch.append(head)
            size += len(head.items)
        return batch

    async def _run_batch(self, batch: list[_Pending[Item, Result]]) -> None:
        if not batch:
            return
        flat = [item for request in batch for item in request.items]
        self.batches_run += 1
        log.debug("batch of %d inputs from %d requests", len(flat), len(batch))
        try:
            results = await asyncio.to_thread(self._run, flat)
            if len(results) != len(flat):
                raise RuntimeError(f"batch run returned {len(results)} results for {len(flat)}")
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        except BaseException:  # the drainer itself was cancelled (loop shutting down)
            for request in batch:
                request.future.cancel()
            raise
        start = 0
        for request in batch:
            end = start + len(request.items)
            if not request.future.done():
                request.future.set_result(list(results[start:end]))
            start = end
