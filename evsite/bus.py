"""The in-process event bus: how the parts of a running site talk without a broker.

Why: the embedded default (``evsite demo``, ``evsite serve``) must run with nothing but Python, yet the
same components must also run against a real MQTT broker. So every producer (OCPP handlers, the building
meter, the regulation signal) publishes here, and an MQTT bridge is just one more producer/consumer.

Topics are plain strings (``meter/site``, ``ocpp/status``, ``regulation/signal``); payloads are any Python
object (usually a frozen dataclass). Each subscriber has its own bounded queue: a slow consumer loses its
*oldest* messages (counted in ``dropped``), never blocks the publisher, and never slows another subscriber.
For live readings the newest value is what matters; for records that must not be lost, use the store.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Subscription:
    """One subscriber's view of a topic (or of a prefix, when the pattern ends with ``#``)."""

    pattern: str
    queue: asyncio.Queue[tuple[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=1024))
    dropped: int = 0

    def matches(self, topic: str) -> bool:
        if self.pattern.endswith("#"):
            return topic.startswith(self.pattern[:-1])
        return topic == self.pattern

    async def get(self) -> tuple[str, Any]:
        """Next ``(topic, payload)``."""
        return await self.queue.get()

    def get_nowait(self) -> tuple[str, Any] | None:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        while True:
            yield await self.queue.get()


class EventBus:
    """Topic-based fan-out to bounded per-subscriber queues; keeps the last payload of every topic."""

    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subs: list[Subscription] = []
        self._last: dict[str, Any] = {}
        self.published: defaultdict[str, int] = defaultdict(int)

    def subscribe(self, pattern: str) -> Subscription:
        """Subscribe to ``pattern`` (exact topic, or prefix ending in ``#``)."""
        sub = Subscription(pattern, asyncio.Queue(maxsize=self._queue_size))
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, topic: str, payload: Any) -> None:
        """Deliver to every matching subscriber without awaiting (safe to call from protocol handlers)."""
        self._last[topic] = payload
        self.published[topic] += 1
        for sub in self._subs:
            if not sub.matches(topic):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait((topic, payload))

    def last(self, topic: str, default: Any = None) -> Any:
        """The most recent payload published on ``topic`` (a live snapshot without subscribing)."""
        return self._last.get(topic, default)
