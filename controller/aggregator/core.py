"""The regulation aggregator's decision step: from the fleet's state and a target injection to the cars
that change mode.

Why a pure core: the same decision runs against the Monte Carlo fleet (``evsite regulate``, the benchmark,
the tests) and against cars behind real OCPP chargers (``dispatch.ProfileDispatcher`` turns the mode
changes into SetChargingProfile calls). Nothing here touches a socket or a clock; time is a number.

Each step (every ``step_s``, 4 s by default):

1. Who is online, which cars are forced to charge (SoC below ``soc_force_charge``, or no slack left to
   reach the demanded SoC by the declared departure) — with ``boundary=True`` only.
2. The SSM state x (shares per mode and SoC bin, ``planning.ssm``), Ne and the mean rated powers.
3. The model's next-step injection without control, ``P_nc = Ne·D·A x``; the requested change
   ``delta = target - P_nc``; the shares (u, v) from ``planning.ssm.control`` (up: CS->IS then IS->DS from
   the highest SoC; down: DS->IS then IS->CS from the lowest SoC).
4. The shares become concrete cars (``select_per_bin``): per SoC bin the required number of cars, taken
   from those allowed to make the move, most slack first when stopping charge / starting discharge, least
   slack first when (re)starting charge — so drivers who need energy get it first.

Every changed car carries a reason (``REASONS``) so each limit sent to a charger is traceable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, Fleet
from planning.ssm import (
    SOC_EMPTY,
    SOC_FULL,
    Availability,
    FleetPowers,
    StateSpaceModel,
    capacity_forecast,
    control,
    effective_mode,
    fleet_powers,
    output_kw,
    output_weights,
    shares,
    soc_bin,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Why a car's mode changed (index stored in ``Decision.reason``).
REASONS = ("none", "regulation_up_stop_charge", "regulation_up_discharge", "regulation_down_stop_discharge",
           "regulation_down_charge", "forced_charge_driver_demand", "out_of_service_full")  # fmt: skip
R_NONE, R_UP_STOP, R_UP_DIS, R_DOWN_STOP, R_DOWN_CH, R_FORCED, R_FULL = range(len(REASONS))


@dataclass
class Decision:
    """The outcome of one aggregator step."""

    target_kw: float
    delta_kw: float
    predicted_kw: float  # the model's injection for the next step with the control applied
    uncontrolled_kw: float  # the model's injection for the next step without control
    ne: int
    u: FloatArray
    v: FloatArray
    changed: IntArray  # indices of EVs whose commanded mode changed
    new_mode: NDArray[np.int8]  # their new commanded modes
    reason: NDArray[np.int8]  # why (index into REASONS)
    x: FloatArray = field(repr=False)


@dataclass
class Observation:
    """The fleet as the model sees it at one instant (per-EV masks and the SSM state)."""

    online: NDArray[np.bool_]
    lax: FloatArray  # slack to departure, s
    forced: NDArray[np.bool_]  # must charge (boundary handling)
    eff: NDArray[np.int8]  # effective mode, forced cars counted as charging
    bins: IntArray  # SoC bin
    x: FloatArray  # state shares
    ne: int
    powers: FleetPowers


def laxity_s(fleet: Fleet, t_s: float) -> FloatArray:
    """Slack (s): time to departure minus the time needed to reach the demanded SoC at full power."""
    need_kwh = np.maximum(fleet.soc_target - fleet.soc, 0.0) * fleet.capacity_kwh / fleet.efficiency
    need_s = need_kwh / np.maximum(fleet.p_charge_kw, 1e-9) * 3600.0
    return fleet.departure_s - t_s - need_s


def select_per_bin(
    candidates: NDArray[np.bool_], bins: IntArray, counts: NDArray[np.integer], priority: FloatArray, ns: int
) -> IntArray:
    """Indices of ``counts[j]`` candidate EVs in each SoC bin j, lowest ``priority`` first (vectorised)."""
    idx = np.flatnonzero(candidates)
    if idx.size == 0 or not np.any(counts > 0):
        return idx[:0]
    b = bins[idx]
    order = np.lexsort((priority[idx], b))
    idx, b = idx[order], b[order]
    per_bin = np.bincount(b, minlength=ns)
    starts = np.cumsum(per_bin) - per_bin
    rank = np.arange(idx.size) - starts[b]
    return idx[rank < counts[b]]


def round_shares(share: FloatArray, ne: int) -> NDArray[np.int64]:
    """Share per bin -> whole cars per bin, keeping the total (cumulative rounding)."""
    cum = np.round(np.cumsum(share) * ne).astype(np.int64)
    return np.diff(cum, prepend=0)


class RegulationController:
    """Tracks the commanded mode of every EV and decides the switches each step.

    ``fleet`` supplies the per-EV facts (SoC, rated powers, declared departure, demanded SoC);
    ``can_discharge`` marks EVs behind bidirectional chargers (never discharge the others);
    ``boundary`` enables the SoC-boundary handling (see ``planning.ssm``).
    """

    def __init__(
        self,
        fleet: Fleet,
        model: StateSpaceModel,
        *,
        can_discharge: NDArray[np.bool_] | None = None,
        boundary: bool = True,
        soc_force_charge: float = 0.15,
        laxity_margin_s: float = 300.0,
    ) -> None:
        self.fleet = fleet
        self.model = model
        self.ns = model.ns
        n = len(fleet)
        self.can_discharge = np.ones(n, dtype=bool) if can_discharge is None else can_discharge.astype(bool)
        if self.can_discharge.shape != (n,):
            raise ValueError(f"can_discharge has shape {self.can_discharge.shape}, expected ({n},)")
        self.boundary = boundary
        self.soc_force_charge = soc_force_charge
        self.laxity_margin_s = laxity_margin_s
        self.commanded = fleet.mode.copy()

    # ----------------------------------------------------------------------------------- observation

    def observe(self, t_s: float) -> Observation:
        """Everything a decision needs about the fleet at ``t_s`` (masks, bins, x, Ne, powers, slack)."""
        f = self.fleet
        online = f.online(t_s)
        lax = laxity_s(f, t_s)
        forced = np.zeros(len(f), dtype=bool)
        if self.boundary:
            forced = online & (f.soc < SOC_FULL) & ((f.soc < self.soc_force_charge) | (lax <= self.laxity_margin_s))
        eff = effective_mode(self.commanded, f.soc, self.boundary)
        bins = soc_bin(f.soc, self.ns)
        eff_forced = eff.copy()
        eff_forced[forced] = CHARGING
        x, ne = shares(eff_forced.astype(np.intp) * self.ns + bins, online, self.ns)
        powers = fleet_powers(f.p_charge_kw, f.p_discharge_kw, online)
        return Observation(online, lax, forced, eff_forced, bins, x, ne, powers)

    def _availability(self, obs: Observation) -> tuple[Availability, dict[str, NDArray[np.bool_]]]:
        f, ns, ne = self.fleet, self.ns, max(obs.ne, 1)
        online, eff, bins, forced = obs.online, obs.eff, obs.bins, obs.forced
        free = online & ~forced
        dischargeable = self.can_discharge.copy()
        chargeable = np.ones(len(f), dtype=bool)
        if self.boundary:
            dischargeable &= (f.soc > max(self.soc_force_charge, SOC_EMPTY)) & (obs.lax > self.laxity_margin_s)
            chargeable &= f.soc < SOC_FULL
        masks = {
            "cs_free": free & (eff == CHARGING),
            "is_dis": free & (eff == IDLE) & dischargeable,
            "cs_dis": free & (eff == CHARGING) & dischargeable,
            "ds": online & (eff == DISCHARGING),
            "is_ch": online & (eff == IDLE) & chargeable,
            "ds_ch": online & (eff == DISCHARGING) & chargeable,
        }
        h = {k: np.bincount(bins[m], minlength=ns) / ne for k, m in masks.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(h["cs_free"] > 0, h["cs_dis"] / h["cs_free"], 0.0)
        av = Availability(h["cs_free"], h["is_dis"], frac, h["ds"], h["is_ch"] + h["ds_ch"])
        return av, masks

    def capacity(self, t_s: float, horizon_s: float, step_s: float) -> tuple[float, float, float]:
        """(injection now, up kW, down kW) the fleet can hold over the next ``horizon_s``."""
        obs = self.observe(t_s)
        av, _ = self._availability(obs)
        ne_future = int((obs.online & (self.fleet.departure_s >= t_s + horizon_s)).sum())
        p_now = output_kw(obs.x, obs.ne, obs.powers)
        up, down = capacity_forecast(self.model, obs.x, av, ne_future, obs.powers, int(horizon_s // step_s))
        return p_now, up, down

    # ---------------------------------------------------------------------------------------- decide

    def decide(self, t_s: float, target_kw: float) -> Decision:
        """Choose the switches that move the fleet's injection (kW) towards ``target_kw``; apply them to
        ``commanded``."""
        obs = self.observe(t_s)
        x, ne, powers, bins = obs.x, obs.ne, obs.powers, obs.bins
        ns = self.ns
        changed: list[IntArray] = []
        reasons: list[NDArray[np.int8]] = []
        old = self.commanded.copy()

        # Forced charging first (boundary handling): these are not the regulation's to move.
        forced_now = obs.forced & (self.commanded != CHARGING)
        self.commanded[forced_now] = CHARGING
        if self.boundary:
            full_now = obs.online & (self.commanded == CHARGING) & (self.fleet.soc >= SOC_FULL)
            self.commanded[full_now] = IDLE
        else:
            full_now = np.zeros(len(self.fleet), dtype=bool)

        w = output_weights(ns, powers)
        a_x = self.model.A_ @ x
        uncontrolled = float(ne * (w @ a_x))
        delta = target_kw - uncontrolled
        av, masks = self._availability(obs)
        u, v = control(delta, av, ne, powers)
        lax = obs.lax
        if delta > 0:
            pick = select_per_bin(masks["cs_free"], bins, round_shares(np.maximum(u, 0), ne), -lax, ns)
            self.commanded[pick] = IDLE
            changed.append(pick)
            reasons.append(np.full(pick.size, R_UP_STOP, np.int8))
            stopped = np.zeros(len(self.fleet), dtype=bool)
            stopped[pick] = True
            cand = (masks["is_dis"] | (stopped & masks["cs_dis"])) & (self.commanded == IDLE)
            pick = select_per_bin(cand, bins, round_shares(np.maximum(v, 0), ne), -lax, ns)
            self.commanded[pick] = DISCHARGING
            changed.append(pick)
            reasons.append(np.full(pick.size, R_UP_DIS, np.int8))
        elif delta < 0:
            pick = select_per_bin(masks["ds"], bins, round_shares(np.maximum(-v, 0), ne), lax, ns)
            self.commanded[pick] = IDLE
            changed.append(pick)
            reasons.append(np.full(pick.size, R_DOWN_STOP, np.int8))
            stopped = np.zeros(len(self.fleet), dtype=bool)
            stopped[pick] = True
            cand = (masks["is_ch"] | (stopped & masks["ds_ch"])) & (self.commanded == IDLE)
            pick = select_per_bin(cand, bins, round_shares(np.maximum(-u, 0), ne), lax, ns)
            self.commanded[pick] = CHARGING
            changed.append(pick)
            reasons.append(np.full(pick.size, R_DOWN_CH, np.int8))
        b, c = self.model.B, self.model.C
        predicted = float(ne * (w @ (self.model.A_ @ (x + b @ u + c @ v))))

        # One reason per changed car: the last move wins, forced/full flags fill in the rest.
        reason_all = np.zeros(len(self.fleet), dtype=np.int8)
        reason_all[forced_now] = R_FORCED
        reason_all[full_now] = R_FULL
        for idx, r in zip(changed, reasons, strict=True):
            reason_all[idx] = r
        diff = np.flatnonzero(self.commanded != old)
        return Decision(target_kw, delta, predicted, uncontrolled, ne, u, v, diff, self.commanded[diff].copy(),
                        reason_all[diff], x)  # fmt: skip
