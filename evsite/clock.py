"""The one source of time for every part of evsite.

Why: a simulated day must run in a minute, and a test must be deterministic. So nothing in evsite calls
``time.time()``, ``datetime.now()`` or ``asyncio.sleep()`` directly; it asks the ``Clock`` it was given.

Three clocks:

- ``RealClock``: wall time, for a live site.
- ``ScaledClock``: simulated time runs ``speed`` times faster than real time (``evsite simulate --speed 60``).
- ``ManualClock``: time moves only when a test calls ``advance``; sleepers wake in deadline order.

``now()`` is always timezone-aware UTC: OCPP timestamps are RFC 3339 with a zone, and naive datetimes were
one of the seed study's defects (UTC data shifted the day by five hours).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What every component may ask of time."""

    def now(self) -> datetime:
        """Current (possibly simulated) time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic (possibly simulated) scale, for intervals and timeouts."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time."""

    speed: float = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Simulated time that runs ``speed`` times faster than real time, starting at ``start``.

    Intervals are scaled too: ``sleep(60)`` at speed 60 waits one real second. Timeouts that guard real
    network I/O should be taken from ``monotonic()`` differences divided by ``speed`` when they must stay
    real; everything else simply uses this clock.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = float(speed)
        self._start = _aware(start) if start is not None else datetime.now(UTC)
        self._real0 = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that only moves when told to: the deterministic clock for tests.

    ``sleep`` parks the caller until ``advance`` moves time past its deadline. ``advance`` is async so that
    the woken tasks run (in deadline order) before it returns.
    """

    speed: float = 1.0

    def __init__(self, start: datetime | None = None) -> None:
        self._start = _aware(start) if start is not None else datetime(2026, 1, 1, tzinfo=UTC)
        self._t = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._seq), fut))
        await fut

    @property
    def pending(self) -> int:
        """Number of tasks currently sleeping on this clock."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each sleeper at its own deadline, in order."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._t + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
            # Let the woken task (and whatever it schedules) run before the next deadline.
            for _ in range(5):
                await asyncio.sleep(0)
        self._t = target
        await asyncio.sleep(0)


def _aware(dt: datetime) -> datetime:
    """Reject naive datetimes early: a naive time is a bug waiting for a time-zone shift."""
    if dt.tzinfo is None:
        raise ValueError(f"clock start must be timezone-aware, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)
