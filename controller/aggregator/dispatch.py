"""From the aggregator's setpoints to current limits on real OCPP 1.6 chargers.

A setpoint (kW, + charge / - discharge) becomes a current limit through the charger's own voltage and phase
count (``ConnectorRef.power_kw``, never a constant), clipped to the connector's rating. A *negative* limit
is discharge (``evsite.discharge``) and is never sent to a connector whose charger is not declared
``bidirectional = true`` in ``[[chargers]]``: the change is refused (counted and logged). That is the last
of the guards: load management's envelope (``limits.LimitGate``) gives such a connector no discharge bound,
and the tracker is built with it unable to discharge.

Where the limit goes: with load management running (``publish``), to it as a ``RegulationSetpoint`` on
``regulation/setpoints`` (one writer per connector, load management's limits win); otherwise as the
aggregator's own TxDefaultProfile in amperes via ``send(cp_id, request, reason=...)``.

Every limit carries the reason of the change (``tracker.REASONS``), stored with the profile by the central
system or passed on to load management, and a ``regulation_limit_sent`` / ``regulation_setpoint`` event is
logged with cp_id, connector, limit and reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, MODE_NAMES
from evsite.log import log_event

logger = logging.getLogger("evsite.controller.aggregator.dispatch")

Send = Callable[..., Awaitable[Any]]

#: Stack level of the aggregator's TxDefaultProfile (above load management's base profiles).
DEFAULT_STACK_LEVEL = 8
#: chargingProfileId of the aggregator's profile on connector c: PROFILE_ID_BASE + c.
PROFILE_ID_BASE = 5000


@dataclass(frozen=True)
class ConnectorRef:
    """A connector the aggregator may command, with its charger's electrical facts."""

    cp_id: str
    connector_id: int
    max_current_a: float
    voltage_v: float
    phases: int
    bidirectional: bool = False

    def power_kw(self, current_a: float) -> float:
        """Power at ``current_a`` per phase through this charger's voltage and phase count."""
        return current_a * self.voltage_v * self.phases / 1000.0


def connectors_from_config(chargers: Sequence[Any]) -> list[ConnectorRef]:
    """One ``ConnectorRef`` per connector of each ``[[chargers]]`` entry (``evsite.config.ChargerConfig``)."""
    return [
        ConnectorRef(c.id, k, c.max_current_a, c.voltage_v, c.phases, c.bidirectional)
        for c in chargers
        for k in range(1, c.connectors + 1)
    ]


def can_discharge_mask(refs: Sequence[ConnectorRef]) -> NDArray[np.bool_]:
    """Which connectors the operator declared bidirectional (``[[chargers]]``): the ``can_discharge`` of the
    live ``Tracker`` before load management's envelope narrows it (``live_market``)."""
    return np.array([r.bidirectional for r in refs], dtype=bool)


def profile_request(ref: ConnectorRef, limit: float, stack_level: int = DEFAULT_STACK_LEVEL) -> Any:
    """The ``SetChargingProfile`` request for one connector (TxDefaultProfile, Relative, amperes)."""
    from ocpp.v16 import call

    return call.SetChargingProfile(
        connector_id=ref.connector_id,
        cs_charging_profiles={
            "chargingProfileId": PROFILE_ID_BASE + ref.connector_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(float(limit), 1)}],
            },
        },
    )


@dataclass
class DispatchResult:
    sent: int = 0
    accepted: int = 0
    refused: int = 0  # never sent (discharge to a unidirectional charger)
    failed: list[tuple[str, int, str]] = field(default_factory=list)  # (cp_id, connector, why)


class ProfileDispatcher:
    """Turns the tracker's setpoint changes (EV index = connector index) into limits: profiles via
    ``send(cp_id, request)``, or setpoints handed to load management (``publish``)."""

    def __init__(
        self,
        send: Send,
        connectors: Sequence[ConnectorRef],
        stack_level: int = DEFAULT_STACK_LEVEL,
        gate: Any | None = None,
        publish: Callable[[str, int, float, str], None] | None = None,
    ):
        self.send = send
        self.connectors = list(connectors)
        self.stack_level = stack_level
        #: ``limits.LimitGate``: when given, no limit above load management's grant, nothing without one
        self.gate = gate
        #: when load management runs: ``publish(cp_id, connector_id, limit_a, reason)`` hands each limit to it
        #: (``regulation/setpoints``, ``evsite.site_state.RegulationSetpoint``) instead of sending a
        #: profile of our own, so every connector has one writer and load management's limits always win
        self.publish = publish

    async def apply_setpoints(
        self, changed: NDArray[np.integer], setpoint_kw: NDArray[np.floating], reasons: Sequence[str]
    ) -> DispatchResult:
        """Send power setpoints (kW, + charge / - discharge) as current limits through each charger's own
        voltage and phases: no discharge to a charger not declared bidirectional (refused, logged, never sent),
        never outside load management's envelope, nothing without one."""
        result = DispatchResult()
        per_cp: dict[str, list[tuple[ConnectorRef, float, str, int]]] = {}
        for i, kw, why in zip(changed.tolist(), setpoint_kw.tolist(), reasons, strict=True):
            ref = self.connectors[i]
            lim = float(np.clip(kw * 1000.0 / (ref.voltage_v * ref.phases), -ref.max_current_a, ref.max_current_a))
            mode = CHARGING if lim > 0 else (DISCHARGING if lim < 0 else IDLE)
            if lim < 0 and not ref.bidirectional:
                result.refused += 1
                log_event(logger, "regulation_limit_refused", logging.WARNING, cp_id=ref.cp_id,
                          connector_id=ref.connector_id, reason=why,
                          why="not bidirectional, cannot discharge")  # fmt: skip
                continue
            clamped = self._gated(ref, lim, why, result)
            if clamped is None:
                continue
            per_cp.setdefault(ref.cp_id, []).append((ref, clamped[0], clamped[1], mode))
        await self._send_all(per_cp, result)
        return result

    def _gated(self, ref: ConnectorRef, lim: float, why: str, result: DispatchResult) -> tuple[float, str] | None:
        """``(limit, reason)`` within load management's grant, or None (counted, logged) without one."""
        if self.gate is None:
            return lim, why
        self.gate.poll()
        clamped = self.gate.clamp(ref, lim)
        if clamped is None:
            result.refused += 1
            log_event(logger, "regulation_limit_refused", logging.WARNING, cp_id=ref.cp_id,
                      connector_id=ref.connector_id, reason=why,
                      why="no limit granted by load management yet")  # fmt: skip
            return None
        if clamped != lim:
            why = f"{why}; load_management_limit {clamped:g} A"
        return clamped, why

    async def _send_all(
        self, per_cp: dict[str, list[tuple[ConnectorRef, float, str, int]]], result: DispatchResult
    ) -> None:
        if self.publish is not None:
            for items in per_cp.values():
                for ref, lim, why, m in items:
                    result.sent += 1
                    result.accepted += 1
                    self.publish(ref.cp_id, ref.connector_id, lim, why)
                    log_event(logger, "regulation_setpoint", cp_id=ref.cp_id, connector_id=ref.connector_id,
                              limit_a=lim, mode=MODE_NAMES[m], reason=why)  # fmt: skip
            return

        async def one_charger(items: list[tuple[ConnectorRef, float, str, int]]) -> None:
            for ref, lim, why, m in items:  # one call in flight per charger (OCPP-J)
                result.sent += 1
                try:
                    res = await self.send(ref.cp_id, profile_request(ref, lim, self.stack_level), reason=why)
                except Exception as err:  # a CsmsError or a transport error: record it, keep going
                    result.failed.append((ref.cp_id, ref.connector_id, str(err)))
                    log_event(logger, "regulation_limit_failed", logging.WARNING, cp_id=ref.cp_id,
                              connector_id=ref.connector_id, limit_a=lim, reason=why, error=str(err))  # fmt: skip
                    continue
                status = str(getattr(res, "status", ""))
                if status == "Accepted":
                    result.accepted += 1
                else:
                    result.failed.append((ref.cp_id, ref.connector_id, status))
                log_event(logger, "regulation_limit_sent", cp_id=ref.cp_id, connector_id=ref.connector_id,
                          limit_a=lim, power_kw=round(ref.power_kw(lim), 2), mode=MODE_NAMES[m], reason=why,
                          status=status)  # fmt: skip

        await asyncio.gather(*(one_charger(items) for items in per_cp.values()))
