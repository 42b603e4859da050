import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from evsite.clock import ManualClock, ScaledClock


async def test_manual_clock_wakes_sleepers_in_deadline_order():
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 30), ("early", 10), ("mid", 20))]
    await asyncio.sleep(0)
    assert clock.pending == 3
    await clock.advance(15)
    assert woke == [("early", 10.0)]
    await clock.advance(100)
    assert [n for n, _ in woke] == ["early", "mid", "late"]
    assert [t for _, t in woke] == [10.0, 20.0, 30.0]
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=115)
    await asyncio.gather(*tasks)


async def test_manual_clock_refuses_to_go_back():
    with pytest.raises(ValueError):
        await ManualClock().advance(-1)


def test_clocks_refuse_naive_start():
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(speed=0)


async def test_scaled_clock_runs_faster_than_real_time():
    clock = ScaledClock(speed=1000, start=datetime(2026, 1, 1, tzinfo=UTC))
    t0 = clock.monotonic()
    await clock.sleep(50)  # 50 ms real
    elapsed = clock.monotonic() - t0
    assert elapsed >= 50
    assert clock.now().tzinfo is not None
