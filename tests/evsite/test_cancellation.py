"""A cancel swallowed by an awaited call is still honoured by ``raise_if_cancelling``."""

from __future__ import annotations

import asyncio

import pytest

from evsite.cancellation import raise_if_cancelling


async def test_a_swallowed_cancel_is_raised_and_an_undisturbed_task_goes_on() -> None:
    entered = asyncio.Event()
    rounds = swallowed = 0

    async def loop() -> None:
        nonlocal rounds, swallowed
        while True:
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1  # the library race being modelled: the cancel is lost, the call "completes"
            raise_if_cancelling()
            rounds += 1

    task = asyncio.create_task(loop())
    await entered.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert (swallowed, rounds) == (1, 0)
    raise_if_cancelling()  # nothing pending here: no error
