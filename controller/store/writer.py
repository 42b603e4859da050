"""Write-behind persistence for the OCPP read loop.

Why: at thousands of messages per second, one commit per MeterValues would make the disk the bottleneck and
block the event loop. So answer-independent writes are buffered in a ``WriteBatch`` and committed together
on one dedicated thread. Writes an answer depends on (``await writer.run(store.start_transaction, ...)``) run
on that same thread after the buffered batch, so the store always sees messages in the order they arrived.

The price is a loss window: a charger never resends a message we acknowledged, so what is buffered when the
process dies is lost. ``max_unsaved_s`` (``[store] max_unsaved_s``) bounds it: a change is committed within
``max_unsaved_s`` of being buffered (the writer starts a commit at most half the window after the first
buffered change, so one commit may take up to the other half), or at once when ``max_batch`` items wait.
``max_unsaved_s = 0`` writes MeterValues, StatusNotification and the other answer-independent records
*before* their answer is sent (``commit_if_unbuffered``, on the event loop thread: one small commit per
message, so throughput is the disk's commit rate).

A failed batch is logged with its size and dropped: losing a few meter samples must not stop charging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from controller.store.store import Store, WriteBatch
from evsite.log import log_event

log = logging.getLogger(__name__)
T = TypeVar("T")


class DbWriter:
    """One writer thread, a buffered ``WriteBatch``, and ordered synchronous calls."""

    def __init__(self, store: Store, max_unsaved_s: float = 0.1, max_batch: int = 2000) -> None:
        self.store = store
        self.max_unsaved_s = max_unsaved_s
        self.max_batch = max_batch
        self.batch = WriteBatch()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evsite-db")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches_written = 0
        self.batches_failed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="evsite-db-writer")

    def changed(self) -> None:
        """Tell the writer the batch has grown (call after appending to ``batch``)."""
        if not self._wake.is_set():
            self._wake.set()

    def commit_if_unbuffered(self) -> None:
        """Call after buffering a record the charger will not resend, before its answer goes out: with
        ``max_unsaved_s == 0`` the batch is committed now (on this thread), else the writer is woken."""
        if self.max_unsaved_s > 0:
            self.changed()
            return
        batch = self._take()
        if batch is not None:
            self._write(batch)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            # Real time on purpose: this paces disk I/O, not simulated time.
            if len(self.batch) < self.max_batch and self.max_unsaved_s > 0:
                await asyncio.sleep(self.max_unsaved_s / 2)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Commit whatever is buffered now (returns after the commit)."""
        batch = self._take()
        if batch is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)

    def _take(self) -> WriteBatch | None:
        if not len(self.batch):
            return None
        batch, self.batch = self.batch, WriteBatch()
        return batch

    def _write(self, batch: WriteBatch) -> None:
        try:
            self.store.write_batch(batch)
            self.batches_written += 1
        except Exception as err:  # a bad batch must not kill the writer: log it with its size
            self.batches_failed += 1
            log_event(log, "store_batch_failed", logging.ERROR, items=len(batch), error=repr(err))

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args, **kwargs)`` on the writer thread now, after everything buffered so far.

        Submission happens at call time, so two submits run in the order they were made.
        """
        batch = self._take()

        def job() -> T:
            if batch is not None:
                self._write(batch)
            return fn(*args, **kwargs)

        return asyncio.get_running_loop().run_in_executor(self._executor, job)

    def submit_logged(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``submit`` without waiting: a failure is logged (with the function's name), never lost silently."""

        def done(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log_event(log, "store_write_failed", logging.ERROR, op=fn.__name__, error=repr(fut.exception()))

        self.submit(fn, *args, **kwargs).add_done_callback(done)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``submit`` and wait for the result."""
        return await self.submit(fn, *args, **kwargs)

    async def close(self) -> None:
        """Flush and stop the writer thread."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        self._executor.shutdown(wait=True)
