"""The regulation signal, from MQTT onto the in-process bus (topic ``regulation/signal``).

Why: the aggregator reads the signal from ``evsite.bus.EventBus`` whatever its transport; with a broker
a grid operator's gateway (or ``simulators.regulation_signal.publish_signal``) publishes on
``[mqtt] regulation_topic`` every 2-4 s and this subscriber validates and republishes each sample. A sample
that fails validation is logged and dropped: a wrong set-point is worse than holding the last one.

Payload: ``{"ts": "<RFC 3339 with zone>", "value": <number in [-1, 1]>}`` (``simulators.regulation_signal``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime

from controller.mqtt_subscription import subscribe_forever
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.log import log_event

logger = logging.getLogger("evsite.controller.aggregator.signal")

BUS_TOPIC = topics.REGULATION_SIGNAL


class SignalPayloadError(ValueError):
    """A signal message that is not a valid sample; ``str()`` says which field and why."""


@dataclass(frozen=True, slots=True)
class SignalSample:
    ts: datetime
    value: float


def parse_signal_payload(raw: bytes | str) -> SignalSample:
    """Validate one payload into a ``SignalSample``."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SignalPayloadError(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise SignalPayloadError(f"expected a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"ts", "value"}
    if unknown:
        raise SignalPayloadError(f"unknown field(s): {', '.join(sorted(unknown))}")
    for key in ("ts", "value"):
        if key not in doc:
            raise SignalPayloadError(f"{key}: required field missing")
    try:
        ts = datetime.fromisoformat(doc["ts"]) if isinstance(doc["ts"], str) else None
    except ValueError:
        ts = None
    if ts is None:
        raise SignalPayloadError(f"ts: not an RFC 3339 date-time: {doc['ts']!r}")
    if ts.tzinfo is None:
        raise SignalPayloadError(f"ts: needs a time zone (got naive {doc['ts']!r})")
    v = doc["value"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or abs(v) > 1.0:
        raise SignalPayloadError(f"value: expected a number in [-1, 1], got {v!r}")
    return SignalSample(ts, float(v))


class SignalSubscriber:
    """Subscribe to the regulation topic and republish valid samples on the bus; reconnects with backoff."""

    def __init__(self, bus: EventBus, clock: Clock, host: str = "127.0.0.1", port: int = 1883,
                 topic: str = "evsite/site/regulation", bus_topic: str = BUS_TOPIC) -> None:  # fmt: skip
        self.bus, self.clock = bus, clock
        self.host, self.port, self.topic, self.bus_topic = host, port, topic, bus_topic
        self.received = self.rejected = self.reconnects = 0
        self.latest: SignalSample | None = None
        self.subscribed = asyncio.Event()

    def handle(self, payload: bytes | str) -> SignalSample | None:
        """Validate one payload and publish it (the pure part, testable without a broker)."""
        self.received += 1
        try:
            sample = parse_signal_payload(payload)
        except SignalPayloadError as err:
            self.rejected += 1
            log_event(logger, "regulation_signal_rejected", logging.WARNING, topic=self.topic, reason=str(err))
            return None
        self.latest = sample
        self.bus.publish(self.bus_topic, sample)
        return sample

    async def run(self) -> None:
        """Run until cancelled (reconnects with backoff: ``controller.mqtt_subscription``)."""

        def disconnected() -> None:
            self.reconnects += 1

        await subscribe_forever(
            host=self.host, port=self.port, topic=self.topic, clock=self.clock, handle=self.handle,
            subscribed=self.subscribed, on_disconnect=disconnected, logger=logger, event_prefix="regulation_signal",
        )  # fmt: skip
