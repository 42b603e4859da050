"""A building-meter reading, the one shape every meter transport delivers (MQTT, bus, replay).

Why in the base: the simulated meter (``simulators.meter``) produces readings, the controller's MQTT bridge
validates and forwards them, and load management consumes them. Neither side may import the other, so the
reading and its wire payload live here.

Payload: one JSON object per reading, UTF-8::

    {"ts": "2026-03-02T08:00:00+00:00", "power_kw": 182.4, "meter_id": "site", "energy_kwh": 51234.5}

- ``ts`` (required): RFC 3339 date-time *with* a time zone, when the reading was taken.
- ``power_kw`` (required): building import power in kW, a finite number; negative means net export.
- ``meter_id`` (optional, default ``"site"``): which meter, 1 to 64 characters.
- ``energy_kwh`` (optional): cumulative import register in kWh, finite and >= 0.

Bus topic: ``meter/site`` (``BUS_TOPIC``) carries ``MeterReading``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evsite import topics

BUS_TOPIC = topics.METER_SITE


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
