"""The building meter, from MQTT onto the in-process bus: the controller's view of the live building load.

Why a bridge: load management reads the building load from ``evsite.bus.EventBus`` topic ``meter/site``
whatever the meter's transport is. With a broker, a meter (real, or ``simulators.meter.BuildingMeter``)
publishes on MQTT and this bridge validates each message and republishes it on the bus; without a broker the
simulated meter publishes on the bus directly. A message that fails validation is logged and dropped, never
forwarded: a wrong reading is worse than a stale one (a stale one is treated as an overload, ``[meter]
stale_after_s``).

MQTT topic: ``[mqtt] meter_topic`` (default ``evsite/site/meter``), QoS 0, not retained.

Payload and bus payload: ``evsite.meter_reading`` (one JSON object per reading; ``MeterReading`` on
``meter/site``), shared with the simulated meter that produces it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from controller.mqtt_subscription import subscribe_forever
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.log import log_event
from evsite.meter_reading import BUS_TOPIC, MeterPayloadError, MeterReading, parse_meter_payload

logger = logging.getLogger("evsite.controller.meter_bridge")


@dataclass
class BridgeStats:
    received: int = 0
    forwarded: int = 0
    rejected: int = 0
    reconnects: int = 0


class MeterBridge:
    """Subscribe to the meter topic and republish valid readings on the bus; reconnects with backoff."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic: str = "evsite/site/meter",
        client_id: str | None = None,
        bus_topic: str = BUS_TOPIC,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.host, self.port, self.topic = host, port, topic
        self.client_id = client_id
        self.bus_topic = bus_topic
        self.stats = BridgeStats()
        self.subscribed = asyncio.Event()

    def handle(self, payload: bytes | str) -> MeterReading | None:
        """Validate one payload and publish it; the pure part, testable without a broker."""
        self.stats.received += 1
        try:
            reading = parse_meter_payload(payload)
        except MeterPayloadError as err:
            self.stats.rejected += 1
            log_event(logger, "meter_payload_rejected", logging.WARNING, topic=self.topic, reason=str(err))
            return None
        self.bus.publish(self.bus_topic, reading)
        self.stats.forwarded += 1
        return reading

    async def run(self) -> None:
        """Run until cancelled (reconnects with backoff: ``controller.mqtt_subscription``)."""

        def disconnected() -> None:
            self.stats.reconnects += 1

        await subscribe_forever(
            host=self.host, port=self.port, topic=self.topic, clock=self.clock, handle=self.handle,
            subscribed=self.subscribed, on_disconnect=disconnected, logger=logger, event_prefix="meter_bridge",
            client_id=self.client_id,
        )  # fmt: skip
