"""Honouring a task's pending cancel that an awaited library call swallowed.

Why: on CPython 3.11, ``asyncio.wait_for`` loses a cancel that arrives just as the awaited operation completes
(it returns the result instead of raising). aiomqtt's ``publish`` awaits through ``wait_for``, so a loop that
publishes until cancelled could keep running for ever and leave whoever cancelled it waiting (a finished
simulation did). Loops that publish over MQTT call ``raise_if_cancelling`` after each publish. In the base
because the controller's and the simulators' publishers both need it.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` when the current task has a cancel pending that was not delivered."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
