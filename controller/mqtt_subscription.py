"""One MQTT subscription kept alive: the loop every broker-facing bridge shares.

Why shared: the building-meter bridge and the regulation-signal subscriber need the same behaviour from the
broker connection (subscribe, hand each payload to a pure ``handle`` function, and on any broker error wait
and reconnect with exponential backoff on the injected clock), and a fix to that behaviour must reach both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from evsite.clock import Clock
from evsite.log import log_event


async def subscribe_forever(
    *,
    host: str,
    port: int,
    topic: str,
    clock: Clock,
    handle: Callable[[bytes | str], Any],
    subscribed: asyncio.Event,
    on_disconnect: Callable[[], None],
    logger: logging.Logger,
    event_prefix: str,
    client_id: str | None = None,
    max_backoff_s: float = 60.0,
) -> None:
    """Run until cancelled. Logs ``<event_prefix>_subscribed`` / ``<event_prefix>_disconnected``."""
    import aiomqtt

    delay = 1.0
    while True:
        try:
            async with aiomqtt.Client(host, port, identifier=client_id) as client:
                await client.subscribe(topic)
                subscribed.set()
                log_event(logger, f"{event_prefix}_subscribed", host=host, port=port, topic=topic)
                delay = 1.0
                async for message in client.messages:
                    handle(message.payload)  # type: ignore[arg-type]
        except aiomqtt.MqttError as err:
            subscribed.clear()
            on_disconnect()
            log_event(logger, f"{event_prefix}_disconnected", logging.WARNING, error=str(err), retry_in_s=delay)
            await clock.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
