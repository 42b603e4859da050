"""The building meter, from MQTT onto the in-process bus: the controller's view of the live building load.

Why a bridge: load management reads the building load from ``controller.bus.EventBus`` topic ``meter/site``
whatever the meter's transport is. With a broker, a meter (real, or ``simulators.meter.BuildingMeter``)
publishes on MQTT and this bridge validates each message and republishes it on the bus; without a broker the
simulated meter publishes on the bus directly. A message that fails validation is logged and dropped, never
forwarded: a wrong reading is worse than a stale one (a stale one is treated as an overload, ``[meter]
stale_after_s``).

MQTT topic: ``[mqtt] meter_topic`` (default ``evsite/site/meter``), QoS 0, not retained.

Payload: one JSON object per reading, UTF-8::

    {"ts": "2026-03-02T08:00:00+00:00", "power_kw": 182.4, "meter_id": "site", "energy_kwh": 51234.5}

- ``ts`` (required): RFC 3339 date-time *with* a time zone, when the reading was taken.
- ``power_kw`` (required): building import power in kW, a finite number; negative means net export.
- ``meter_id`` (optional, default ``"site"``): which meter, 1 to 64 characters.
- ``energy_kwh`` (optional): cumulative import register in kWh, finite and >= 0.

Bus topic: ``meter/site`` carries ``MeterReading`` (frozen dataclass, the same fields).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.bus import EventBus
from controller.mqtt_subscription import subscribe_forever
from evsite.clock import Clock
from evsite.log import log_event

logger = logging.getLogger("evsite.controller.meter_bridge")

BUS_TOPIC = "meter/site"


class MeterPayloadError(ValueError):
    """A meter message that is not a valid reading; ``str()`` says which field and why."""


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One building-meter reading (import power; negative = export)."""

    ts: datetime
    power_kw: float
    meter_id: str = "site"
    energy_kwh: float | None = None

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "ts": self.ts.isoformat(),
            "power_kw": round(self.power_kw, 3),
            "meter_id": self.meter_id,
        }
        if self.energy_kwh is not None:
            doc["energy_kwh"] = round(self.energy_kwh, 3)
        return json.dumps(doc)


def _number(doc: dict[str, Any], key: str) -> float:
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise MeterPayloadError(f"{key}: expected a finite number, got {v!r}")
    return float(v)


def parse_meter_payload(raw: bytes | str) -> MeterReading:
    """Validate one MQTT payload (see the module docstring) into a ``MeterReading``."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MeterPayloadError(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise MeterPayloadError(f"expected a JSON object, got {type(doc).__name__}")
    unknown = set(doc) - {"ts", "power_kw", "meter_id", "energy_kwh"}
    if unknown:
        raise MeterPayloadError(f"unknown field(s): {', '.join(sorted(unknown))}")
    for key in ("ts", "power_kw"):
        if key not in doc:
            raise MeterPayloadError(f"{key}: required field missing")
    if not isinstance(doc["ts"], str):
        raise MeterPayloadError(f"ts: expected an RFC 3339 string, got {doc['ts']!r}")
    try:
        ts = datetime.fromisoformat(doc["ts"])
    except ValueError:
        raise MeterPayloadError(f"ts: not an RFC 3339 date-time: {doc['ts']!r}") from None
    if ts.tzinfo is None:
        raise MeterPayloadError(f"ts: needs a time zone (got naive {doc['ts']!r})")
    power = _number(doc, "power_kw")
    meter_id = doc.get("meter_id", "site")
    if not isinstance(meter_id, str) or not 1 <= len(meter_id) <= 64:
        raise MeterPayloadError(f"meter_id: expected a string of 1-64 characters, got {meter_id!r}")
    energy = None
    if doc.get("energy_kwh") is not None:
        energy = _number(doc, "energy_kwh")
        if energy < 0:
            raise MeterPayloadError(f"energy_kwh: a register cannot be negative, got {energy}")
    return MeterReading(ts=ts, power_kw=power, meter_id=meter_id, energy_kwh=energy)


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
