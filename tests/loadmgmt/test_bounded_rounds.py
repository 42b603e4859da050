"""A round over many chargers talks to a bounded number at once, and still reaches every one of them."""

from __future__ import annotations

import asyncio

import pytest

from controller.loadmgmt.manager import for_each_bounded


async def test_every_item_is_worked_with_at_most_limit_at_once() -> None:
    running, peak, done = 0, 0, []

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)  # hand the loop to the other workers
        await asyncio.sleep(0)
        running -= 1
        done.append(item)

    await for_each_bounded(list(range(50)), work, 7)
    assert sorted(done) == list(range(50))
    assert peak == 7


async def test_the_first_failure_propagates() -> None:
    done: list[int] = []

    async def work(item: int) -> None:
        await asyncio.sleep(0)
        if item == 3:
            raise ValueError("charger 3")
        done.append(item)

    with pytest.raises(ValueError, match="charger 3"):
        await for_each_bounded(list(range(10)), work, 4)
    assert 3 not in done and {0, 1, 2} <= set(done)


async def test_no_items_no_work() -> None:
    async def work(item: int) -> None:
        raise AssertionError(item)

    await for_each_bounded([], work, 5)
