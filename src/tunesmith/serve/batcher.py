"""Micro-batching: concurrent requests wait at most ``max_wait_s`` to share one model call of up to ``max_batch``
inputs, so throughput rises with load; the queue is bounded and says so at once when full."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any


class QueueFull(Exception):
    """More inputs are waiting than the server accepts; the caller should retry later (429)."""


class MemberFailed(Exception):
    """This caller's own inputs failed in the model when tried alone (the batch they shared was retried caller by
    caller, so the others still got their answers)."""


class MicroBatcher:
    def __init__(
        self,
        fn: Callable[[list[Any]], list[Any]],
        executor: Executor,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
    ):
        self.fn, self.executor = fn, executor
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.pending = 0  # inputs queued or in the model call
        self.batch_sizes: Counter[int] = Counter()
        self._queue: asyncio.Queue[tuple[list[Any], asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None

    def _ensure_started(self) -> asyncio.Queue:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        assert self._queue is not None
        return self._queue

    async def submit(self, items: list[Any]) -> list[Any]:
        """The model's outputs for ``items``, in order; raises QueueFull without waiting when the queue is full."""
        queue = self._ensure_started()
        if self.pending + len(items) > self.max_queue:
            raise QueueFull(f"{self.pending} inputs waiting; the queue holds {self.max_queue}")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending += len(items)
        queue.put_nowait((items, fut))
        return await fut

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            count = len(batch[0][0])
            deadline = loop.time() + self.max_wait_s
            while count < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(nxt)
                count += len(nxt[0])
            live = [(items, fut) for items, fut in batch if not fut.done()]  # timed-out callers are skipped
            try:
                if live:
                    flat = [x for items, _ in live for x in items]
                    self.batch_sizes[len(flat)] += 1
                    outputs = await loop.run_in_executor(self.executor, self.fn, flat)
                    start = 0
                    for items, fut in live:
                        if not fut.done():
                            fut.set_result(outputs[start : start + len(items)])
                        start += len(items)
            except Exception:  # one caller's inputs may have failed the batch: each caller is tried alone
                await self._one_by_one(live)
            finally:
                self.pending -= count

    async def _one_by_one(self, live: list[tuple[list[Any], asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        for items, fut in live:
            if fut.done():
                continue
            try:
                result = await loop.run_in_executor(self.executor, self.fn, items)
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(MemberFailed(f"{type(exc).__name__}: {exc}"[:300]))
                continue
            if not fut.done():
                fut.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
