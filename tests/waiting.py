"""Waiting for real I/O in tests: one helper, so every test fails the same clear way when it never happens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], object], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Wait (real time) for I/O to make ``predicate()`` true; the test fails with ``what`` otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
