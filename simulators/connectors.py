"""The electrical state of every simulated connector, as numpy arrays, and the vectorised power step.

Why arrays: one process drives hundreds of chargers, so the per-step physics (what the composite limit
allows, what each EV takes, how the energy register moves) is one vectorised computation over all
connectors, not a Python loop. Only connectors whose OCPP status changes are visited in Python.

The cars themselves are the regulation engineer's ``evsite.ev_fleet.Fleet`` (struct-of-arrays) and its
``FleetStepper`` integrates their SoC; a connector only knows which EV (``ev_id``) is plugged in.

The power a connector draws is ``min(EV acceptance, composite limit, connector rating)``; a negative composite
limit (a bidirectional charger's discharge setpoint, ``evsite.discharge``) makes it feed back, down to minus
its rating (OCPP 1.6 has no discharging status: the connector reports Charging). An EV accepts its
rated power until it reaches its demanded SoC (then it is SuspendedEV); a limit below the EV's minimum current
(IEC 61851: 6 A per phase) pauses charging (SuspendedEVSE); a charge-point-wide cap (ChargePointMaxProfile)
scales the connectors of that charger down together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evsite.ev_fleet import FleetStepper

# Status codes: small ints in the arrays, names on the wire.
AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, FAULTED, RESERVED, UNAVAILABLE = range(9)
STATUS_NAMES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "SuspendedEVSE",
    "Finishing",
    "Faulted",
    "Reserved",
    "Unavailable",
)
EV_MIN_CURRENT_A = 6.0  # IEC 61851-1: below 6 A per phase an EV cannot charge


@dataclass
class ConnectorArrays:
    """Per-connector state; index ``i`` is one connector of one charger (``SimulatedSite`` assigns them)."""

    voltage_v: np.ndarray
    phases: np.ndarray
    rating_a: np.ndarray
    group: np.ndarray  # which charger (for the charge-point-wide cap)
    energy_wh: np.ndarray  # the meter register: monotonic, survives transactions and reboots
    power_w: np.ndarray  # drawn over the last step
    limit_w: np.ndarray  # composite limit now (the chargers refresh it)
    ev_present: np.ndarray  # bool: a car is plugged in
    charging_enabled: np.ndarray  # bool: a transaction runs
    ev_id: np.ndarray  # index into the fleet, -1 when none
    #: the car was paused (limit below the minimum) and is one that never resumes: it takes nothing more
    #: until it is unplugged (some real cars behave so after a 0 A pause); cleared when a car arrives
    stuck: np.ndarray | None = None
    #: the car behind the connector has drawn power in this session (a pause is only a pause after that)
    charged: np.ndarray | None = None
    #: energy fed back by the connector (Wh): the export register, monotonic like the import one
    export_wh: np.ndarray | None = None

    @classmethod
    def build(cls, voltage_v: Any, phases: Any, rating_a: Any, group: Any) -> ConnectorArrays:
        v = np.asarray(voltage_v, dtype=float)
        ph = np.asarray(phases, dtype=float)
        r = np.asarray(rating_a, dtype=float)
        n = len(v)
        return cls(
            voltage_v=v,
            phases=ph,
            rating_a=r,
            group=np.asarray(group, dtype=np.int64),
            energy_wh=np.zeros(n),
            power_w=np.zeros(n),
            limit_w=v * ph * r,
            ev_present=np.zeros(n, dtype=bool),
            charging_enabled=np.zeros(n, dtype=bool),
            ev_id=np.full(n, -1, dtype=np.int64),
            stuck=np.zeros(n, dtype=bool),
            charged=np.zeros(n, dtype=bool),
            export_wh=np.zeros(n),
        )

    def __len__(self) -> int:
        return len(self.voltage_v)

    @property
    def rating_w(self) -> np.ndarray:
        return self.voltage_v * self.phases * self.rating_a

    @property
    def min_w(self) -> np.ndarray:
        return EV_MIN_CURRENT_A * self.voltage_v * self.phases


def offered_w(
    state: ConnectorArrays, wants: np.ndarray, group_cap_w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What each connector lets its EV draw (W, negative: discharge), and which are paused by the EVSE.

    ``wants``: the EV behind each connector still accepts energy (below its demanded SoC). A negative
    composite limit (only a bidirectional charger accepts one, ``evsite.discharge``) asks the car to feed
    back up to that magnitude, whatever its SoC target; a limit between minus and plus the minimum current
    pauses the connector. A ChargePointMaxProfile cap scales only charging (discharge lowers the load).
    """
    plugged = state.ev_present & state.charging_enabled
    active = plugged & wants
    paused = np.abs(state.limit_w) < state.min_w
    discharge = plugged & (state.limit_w <= -state.min_w)
    power = np.where(active & ~paused & ~discharge, np.minimum(state.limit_w, state.rating_w), 0.0)
    if group_cap_w is not None:
        total = np.bincount(state.group, weights=power, minlength=len(group_cap_w))
        scale = np.where(total > group_cap_w, group_cap_w / np.maximum(total, 1e-9), 1.0)
        power = power * scale[state.group]
        squeezed = (power > 0) & (power < state.min_w)  # below the EV minimum: pause rather than charge out of spec
        paused = paused | squeezed
        power = np.where(squeezed, 0.0, power)
    power = np.where(discharge, np.maximum(state.limit_w, -state.rating_w), power)
    return power, paused & active


def step(
    state: ConnectorArrays,
    stepper: FleetStepper,
    t_s: float,
    dt_s: float,
    group_cap_w: np.ndarray | None = None,
    no_resume: np.ndarray | None = None,
) -> np.ndarray:
    """Advance every connector and its EV by ``dt_s`` seconds from fleet time ``t_s``; returns status codes.

    The fleet stepper clips to each car's rated power and stops at the battery bound, so the power reported
    (and metered) is what the car actually took. ``no_resume`` (one flag per EV of the fleet) marks cars that
    never resume after the EVSE paused them: once paused after they have charged in this session, they take
    nothing more (``stuck``); waiting at 0 A before the first charge is not a pause.
    """
    fleet = stepper.fleet
    occupied = state.ev_id >= 0
    ev = state.ev_id[occupied]
    wants = np.zeros(len(state), dtype=bool)
    wants[occupied] = fleet.soc[ev] < fleet.soc_target[ev]
    if state.stuck is not None:
        wants &= ~state.stuck
    power, paused = offered_w(state, wants, group_cap_w)
    if no_resume is not None and state.stuck is not None and state.charged is not None:
        quirky = np.zeros(len(state), dtype=bool)
        quirky[occupied] = no_resume[ev]
        state.stuck |= paused & quirky & state.charged
    per_ev_kw = np.zeros(len(fleet))
    per_ev_kw[ev] = power[occupied] / 1000.0
    drawn = stepper.step(t_s, dt_s, per_ev_kw)
    power = np.zeros(len(state))
    power[occupied] = drawn.power_kw[ev] * 1000.0
    state.power_w = power  # negative while discharging: the site meter sees it as negative EV load
    if state.charged is not None:
        state.charged |= state.power_w > 0
    state.energy_wh += np.maximum(state.power_w, 0.0) * dt_s / 3600.0  # the import register only rises
    if state.export_wh is not None:
        state.export_wh += np.maximum(-state.power_w, 0.0) * dt_s / 3600.0

    base = np.where(state.ev_present, PREPARING, AVAILABLE)
    in_tx = state.ev_present & state.charging_enabled
    tx_status = np.where(state.power_w != 0, CHARGING, np.where(paused, SUSPENDED_EVSE, SUSPENDED_EV))
    return np.where(in_tx, tx_status, base)
