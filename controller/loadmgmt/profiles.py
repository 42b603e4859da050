"""The OCPP 1.6 charging profiles load management sends, shaped by what each charger said it supports.

Why these three kinds (OCPP 1.6 section 3.13.6: the composite schedule is the *minimum* of
ChargePointMaxProfile and the Tx/TxDefault profile in force):

- **fail-safe**: a permanent TxDefaultProfile on connector 0 at stack level 0, at a current sized so the
  site stays within its limit with every connector at it. It is what a charger obeys when the controller is
  gone. It cannot be a ChargePointMaxProfile: that would cap every live limit too.
- **live limit**: a TxDefaultProfile on the connector itself (a connector-specific default wins over the
  connector-0 one) at a higher stack level, with a short ``validTo``; refreshed before it expires, so a
  controller that disappears leaves the charger on its fail-safe within ``profile_validity_s``. Every live
  limit expires on one grid (``common_expiry``), so all connectors fall to their fail-safes together. A
  TxDefaultProfile, not a TxProfile, so it holds from the instant a car plugs in (no race with the
  transaction id) and also when a transaction ends.
- **circuit ceiling**: a ChargePointMaxProfile only where the charger's own circuit cannot carry all its
  connectors at full current.

Times (``validTo``, ``startSchedule``) are written in the *charger's* clock when its offset is known
(``controller.clock_skew.ClockEstimate``, passed as ``clock``), on the early side of the estimate's margin: a
charger whose clock is behind ours still drops a live limit within ``profile_validity_s`` of our send, and one
ahead does not drop it early. Without an estimate they are written in ours.

Units: ``A`` per phase when the charger accepts Current, else ``W`` through the charger's real voltage and
phases. Limits are rounded down (whole watts, 0.1 A), never up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.clock_skew import ClockEstimate

FAIL_SAFE_PROFILE_ID = 7000
CEILING_PROFILE_ID = 7001
LIVE_PROFILE_ID0 = 7100  # + connector id
#: How far before our "now" every schedule starts. A charger applies an Absolute schedule only once its own
#: clock passes startSchedule, and charger clocks can be behind ours: a fail-safe starting a minute ago would
#: not protect a charger whose clock is two minutes slow. A day covers any plausible drift (validTo, not the
#: start, bounds a live limit; validTo is written in the charger's clock where its offset is known).
SCHEDULE_LEAD = timedelta(days=1)


@dataclass(frozen=True)
class Shape:
    """What a charger accepts, from its capabilities read at boot (GetConfiguration)."""

    unit: str  # "A" or "W"
    max_stack_level: int
    voltage_v: float
    phases: int

    @classmethod
    def from_capabilities(cls, caps: dict[str, Any] | None, voltage_v: float, phases: int, stack: int) -> Shape:
        units = str((caps or {}).get("ChargingScheduleAllowedChargingRateUnit") or "Current")
        unit = "A" if "Current" in units or units.strip() == "A" else "W"
        level = (caps or {}).get("ChargeProfileMaxStackLevel")
        max_level = int(level) if isinstance(level, int) and level >= 0 else stack
        return cls(unit, min(stack, max_level), voltage_v, phases)

    def rate(self, amps: float) -> float:
        """``amps`` per phase in this shape's unit, rounded down."""
        if self.unit == "A":
            return math.floor(max(amps, 0.0) * 10.0 + 1e-6) / 10.0
        return float(math.floor(max(amps, 0.0) * self.voltage_v * self.phases + 1e-6))


def common_expiry(now: datetime, validity_s: float) -> datetime:
    """When a live limit sent at ``now`` expires: the second grid boundary after ``now`` on a grid of
    ``validity_s / 2`` counted from the Unix epoch, so within ``(now + validity_s / 2, now + validity_s]``.

    Why one grid for every connector: if each live limit expired ``validity_s`` after its own send, a controller
    that dies leaves a mix for up to ``validity_s``: some connectors already back on their fail-safe (above a
    paused or small live limit) while the others still hold live limits that used the whole headroom, and that
    sum can exceed the site limit although each part alone fits. Limits that share an expiry all fall to the
    fail-safe at once, and every connector at its fail-safe fits. The clockwork refreshes on the same grid.
    """
    half = validity_s / 2.0
    return datetime.fromtimestamp((math.floor(now.timestamp() / half) + 2) * half, tz=UTC)


def grid_start(now: datetime, validity_s: float) -> datetime:
    """The grid boundary at or before ``now`` (the refresh trigger's first fire time is aligned to it)."""
    half = validity_s / 2.0
    return datetime.fromtimestamp(math.floor(now.timestamp() / half) * half, tz=UTC)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _theirs(t: datetime, clock: ClockEstimate | None) -> datetime:
    """Our instant ``t`` in the charger's clock (early side), or ours when its clock is unknown."""
    return t if clock is None else clock.charger_time(t)


def _schedule(shape: Shape, amps: float, now: datetime, clock: ClockEstimate | None) -> dict[str, Any]:
    return {
        "startSchedule": _stamp(_theirs(now, clock) - SCHEDULE_LEAD),
        "chargingRateUnit": shape.unit,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": shape.rate(amps)}],
    }


def fail_safe_profile(shape: Shape, amps: float, now: datetime, clock: ClockEstimate | None = None) -> dict[str, Any]:
    """Permanent TxDefaultProfile, stack level 0, connector 0 (sent with ``connectorId = 0``)."""
    return {
        "chargingProfileId": FAIL_SAFE_PROFILE_ID,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": _schedule(shape, amps, now, clock),
    }


def live_profile(
    shape: Shape,
    connector_id: int,
    amps: float,
    now: datetime,
    valid_s: float,
    stack: int,
    clock: ClockEstimate | None = None,
) -> dict[str, Any]:
    """Connector-specific TxDefaultProfile at ``stack`` valid until our ``now + valid_s`` (in the charger's
    clock when ``clock`` is given; whole seconds rounded down, so never later)."""
    return {
        "chargingProfileId": LIVE_PROFILE_ID0 + connector_id,
        "stackLevel": stack,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "validTo": _stamp(_theirs(now + timedelta(seconds=valid_s), clock)),
        "chargingSchedule": _schedule(shape, amps, now, clock),
    }


def ceiling_profile(shape: Shape, amps: float, now: datetime, clock: ClockEstimate | None = None) -> dict[str, Any]:
    """ChargePointMaxProfile for a charger whose own circuit cannot carry every connector at full current."""
    return {
        "chargingProfileId": CEILING_PROFILE_ID,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": _schedule(shape, amps, now, clock),
    }


def composite_limit_a(result: Any, shape: Shape) -> float | None:
    """The limit now (A per phase) from a GetCompositeSchedule answer, None when it carries none."""
    if str(getattr(result, "status", "")) != "Accepted":
        return None
    sched = getattr(result, "charging_schedule", None) or {}
    periods = sched.get("charging_schedule_period") or sched.get("chargingSchedulePeriod") or []
    if not periods:
        return None
    limit = float(periods[0]["limit"])
    unit = sched.get("charging_rate_unit") or sched.get("chargingRateUnit") or shape.unit
    return limit if unit == "A" else limit / (shape.voltage_v * shape.phases)
