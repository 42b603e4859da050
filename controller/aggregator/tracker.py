"""The hourly-market aggregator: energy first, an hourly offer, and the signal followed by current modulation.

Why this shape (issue 12): PJM clears regulation per hour, so the base point and the capacity are fixed
before the hour and the signal moves the fleet within them. Switching a car between charging, idle and
discharging wears contactors and car electronics; modulating the current within a mode (minimum current
to rated) does not. So:

1. ``offer`` (at each hour boundary): every online car's *required* rate is the energy it still needs
   (from its estimated SoC) spread over the time to the start of the clock hour in which its *estimated*
   departure less ``slack_margin_s`` falls (to that moment itself once the hour has begun): the cars'
   energy is done before the hour they leave in, so the evening, when most leave, does not find them all
   forced. The base consumption is at least ``energy_lead`` x their sum (energy assurance first). Cars with
   no slack left, or below ``soc_force_charge``, are forced to charge at their ceiling and are not offered.
   The other cars are split into charging, discharging (only behind chargers that declared it, and only when
   they can afford an hour of it) and idle so that the middle of the fleet's modulation range sits on the
   base point; each car's share of the base is its own energy rate (``share_base``). A car leaving within
   the hour that needs nothing more is flexible while it stays. The capacity offered is the half-width of
   that range at the hour's end: each car's top weighed by its chance to stay, the charging cars' ceilings
   as the state-space model forecasts them (``ceiling_end_kw``), plus ``switch_room`` of what a mode switch
   at the range's edge adds (``decide`` switches there). It is never more than the SSM's forecast of what the
   fleet can hold in any mode, less ``safety_margin``; when it is nothing, the leaving cars that are done stay
   idle and the base is the energy's alone. Mode switches happen here, once an hour at most for most cars.
2. ``decide`` (every step): the target consumption ``-(base + signal * capacity)`` is met by moving every
   flexible car from its base share by one common fraction of its room on that side (towards its ceiling
   for more consumption, towards its minimum current, or its most discharge, for less): each car gets its
   share on average, and a car that has reached its demand keeps none. Only when the target leaves the
   fleet's range (a departure, a car turned forced, a lost command) are cars switched: the fewest that
   close the gap, none that switched less than ``min_hold_s`` ago (forced charging excepted), and only for
   a gap above ``switch_deadband`` of the capacity: the switching cost.

Discharge convention: a negative setpoint (kW, shown to the charger as a negative current limit), only for
cars whose charger declared ``bidirectional``; ``can_discharge`` is False for every other car, and the
OCPP dispatcher refuses it a second time.

Load management: ``limit_kw`` is the most each car may draw (the latest limit load management granted
its connector; +inf in the simulation unless set). No setpoint ever exceeds it; a car whose limit is
below its minimum current is idle.

Pure: arrays in, arrays out; the controller sees only what ``observe_soc`` and ``observe_online`` tell it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, SOC_MAX, SOC_MIN, Fleet, charge_ceiling_kw
from planning.ssm import StateSpaceModel, soc_bin

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Why a car's setpoint changed (index into REASONS): every limit sent is traceable to one.
REASONS = ("none", "regulation_modulate", "hourly_mode_plan", "regulation_switch", "forced_charge_driver_demand",
           "departed", "load_management_limit")  # fmt: skip
R_NONE, R_MODULATE, R_PLAN, R_SWITCH, R_FORCED, R_DEPARTED, R_LIMIT = range(len(REASONS))


@dataclass(frozen=True)
class TrackerSettings:
    """The ``[regulation]`` settings the control law uses."""

    soc_force_charge: float = 0.15
    slack_margin_s: float = 2700.0
    min_hold_s: float = 300.0
    soc_cv: float = 0.8
    safety_margin: float = 0.1
    energy_lead: float = 1.1  # base consumption = this x the required rate (a little ahead of need)
    switch_deadband: float = 0.02  # a gap below this share of the capacity is not worth a switch
    command_deadband_kw: float = 0.1  # a setpoint change smaller than this is not sent
    # a car's energy is due by the start of the clock hour it leaves in (else at its departure less the margin)
    due_by_last_hour: bool = True
    # share of the room that switching modes at the range's edge adds counted in the offer (0: modulation only)
    switch_room: float = 1.0
    # the site's departure-error distribution (learnt from history): normal spread, share leaving 30-90 min early
    departure_sd_s: float = 900.0
    early_share: float = 0.1


@dataclass(frozen=True)
class Offer:
    """The hour's offer: base point and symmetric capacity (kW, injection positive, i.e. -consumption)."""

    t_s: float
    base_kw: float
    capacity_kw: float
    up_kw: float  # SSM forecast: how far below the base the fleet can physically go all hour (any mode)
    down_kw: float  # and how far above it
    required_kw: float  # the consumption energy assurance needs this hour
    forced_kw: float
    flexible: int


@dataclass(frozen=True)
class _Hour:
    """What ``Tracker.offer`` knows of the hour before it chooses a base point."""

    t_s: float
    hour_s: float
    ceil: FloatArray
    rate: FloatArray  # each car's energy rate this hour (kW)
    flex: BoolArray
    leave_ch: BoolArray
    fixed_kw: float
    dis_ok: BoolArray
    ceil_end: FloatArray  # the SSM's forecast of each car's ceiling at the hour's end (in its present mode)
    p_end: FloatArray  # each car's chance to be plugged in at the hour's end
    bottom: float  # the least the fleet is forecast to draw all hour (kW), whatever the plan


@dataclass(frozen=True)
class _Plan:
    """One candidate plan of the hour: modes, base point and shares, capacity, and the forecast top."""

    mode: NDArray[np.int8]
    base: float
    shares: FloatArray
    capacity_kw: float
    top: float  # the most the fleet is forecast to hold drawing all hour (kW)


@dataclass
class Step:
    """One decision: the new setpoints (kW) of the cars whose command changed, and why."""

    changed: NDArray[np.intp]
    setpoint_kw: FloatArray
    reason: NDArray[np.int8]
    switched: NDArray[np.intp]  # cars whose mode changed
    alpha: float  # the common move from the base shares: -1 every car at its range's bottom, +1 at its top
    gap_kw: float  # target consumption the range could not reach (+ short, - over)


class Tracker:
    """The control law of the module docstring, over one EV slot per car (index = car)."""

    def __init__(
        self,
        fleet: Fleet,
        model: StateSpaceModel,
        settings: TrackerSettings,
        *,
        departure_est_s: FloatArray,
        can_discharge: BoolArray | None = None,
        model_dt_s: float = 4.0,
    ) -> None:
        self.fleet, self.model, self.s = fleet, model, settings
        self.model_dt_s = model_dt_s
        n = len(fleet)
        self.can_discharge = np.zeros(n, bool) if can_discharge is None else can_discharge.astype(bool).copy()
        self.departure_est_s = np.asarray(departure_est_s, float).copy()
        self.soc = fleet.soc.copy()  # the controller's view, from meter values (dead-reckoned between them)
        self.online = np.zeros(n, bool)
        self.mode = np.full(n, IDLE, np.int8)  # commanded mode
        self.sent_kw = np.zeros(n)  # last setpoint sent
        self.switched_at = np.full(n, -np.inf)
        self.forced = np.zeros(n, bool)
        self.limit_kw = np.full(n, np.inf)
        self.base_kw = np.zeros(n)  # each car's share of the hour's base point (its mean setpoint)
        self.hour_base_kw = 0.0  # the hour's base point (consumption, kW)
        self.offer_: Offer | None = None
        self.arrivals_kw: dict[int, float] = {}  # rated kW of the cars that arrived, per clock hour
        self.arrivals_floor_kw: dict[int, float] = {}  # and what they had to draw on arrival (``_floor_kw``, 0 s)

    # ----------------------------------------------------------------------------------- observation

    def observe_online(self, online: BoolArray, t_s: float | None = None) -> None:
        """Plug-in state from the chargers (transaction start/stop): exact, unlike the SoC. With ``t_s`` the
        arrivals are remembered (their rated power per hour) for the next day's capacity forecast."""
        came = online & ~self.online
        if t_s is not None and came.any():
            key = int(t_s // 3600.0)
            self.arrivals_kw[key] = self.arrivals_kw.get(key, 0.0) + float(self.fleet.p_charge_kw[came].sum())
            floor = self._floor_kw(t_s, came, self.ceiling_kw(), came & (self.soc < self.s.soc_force_charge), 0.0)
            self.arrivals_floor_kw[key] = self.arrivals_floor_kw.get(key, 0.0) + float(floor.sum())
        gone = self.online & ~online
        self.mode[gone] = IDLE
        self.sent_kw[gone] = 0.0
        self.online = online.copy()

    def observe_soc(self, idx: NDArray[np.intp], soc: FloatArray) -> None:
        """Meter values (SoC measurand) for cars ``idx``."""
        self.soc[idx] = soc

    def dead_reckon(self, dt_s: float) -> None:
        """Advance the SoC view by what the commanded setpoints should have moved (corrected by readings)."""
        f, p = self.fleet, self.sent_kw * self.online
        gain = np.where(p > 0, p * f.efficiency, p / f.efficiency) * dt_s / 3600.0 / f.capacity_kwh
        self.soc = np.clip(self.soc + gain, 0.0, 1.0)

    def ceiling_kw(self) -> FloatArray:
        """What each car may draw now: taper at its SoC view, 0 when full, never above its granted limit."""
        c = charge_ceiling_kw(self.fleet, self.s.soc_cv, self.soc)
        c[self.soc >= SOC_MAX - 1e-6] = 0.0
        return np.minimum(c, self.limit_kw)

    def need_kwh(self) -> FloatArray:
        """Grid energy each car still needs for its demanded SoC."""
        f = self.fleet
        return np.maximum(f.soc_target - self.soc, 0.0) * f.capacity_kwh / f.efficiency

    def laxity_s(self, t_s: float) -> FloatArray:
        """Slack (s): estimated departure less the margin less the time to charge the need at rated power."""
        f = self.fleet
        return self.departure_est_s - self.s.slack_margin_s - t_s - self.need_kwh() / f.p_charge_kw * 3600.0

    def _update_forced(self, t_s: float) -> BoolArray:
        can = self.ceiling_kw() >= self.fleet.p_min_kw
        now = self.online & can & ((self.soc < self.s.soc_force_charge) | (self.laxity_s(t_s) <= 0.0))
        now &= self.need_kwh() > 0
        self.forced = now
        return now

    def _ranges(self, ceil: FloatArray, mode: NDArray[np.int8] | None = None) -> tuple[FloatArray, FloatArray]:
        """(lo, hi) consumption of each car in its commanded mode (or ``mode``; forced cars at their ceiling)."""
        f = self.fleet
        mode = self.mode if mode is None else mode
        pmin = np.minimum(f.p_min_kw, ceil)
        lo = np.where(mode == CHARGING, pmin, np.where(mode == DISCHARGING, -f.p_discharge_kw, 0.0))
        hi = np.where(mode == CHARGING, ceil, np.where(mode == DISCHARGING, -f.p_min_kw, 0.0))
        lo = np.where(self.forced, ceil, lo)
        hi = np.where(self.forced, ceil, hi)
        return lo * self.online, hi * self.online

    # ---------------------------------------------------------------------------------------- offer

    def offer(self, t_s: float, hour_s: float = 3600.0) -> tuple[Offer, Step]:
        """Plan the hour from ``t_s``: modes, base point and capacity (see the module docstring)."""
        f, s = self.fleet, self.s
        forced = self._update_forced(t_s)
        ceil = self.ceiling_kw()
        online = self.online
        dep = self.departure_est_s - s.slack_margin_s
        # energy due by the start of the clock hour the car leaves in, so that the evening hour when most cars
        # leave does not find them all still charging (forced); by its departure less the margin once that
        # hour has begun (hours counted from this one's end, ``t_s + hour_s``, a clock hour in every caller)
        t_end = t_s + hour_s
        due = t_end + np.floor((dep - t_end) / 3600.0) * 3600.0 if s.due_by_last_hour else dep
        due = np.where(dep >= t_end, due, dep)
        hours_left = np.maximum((due - t_s) / 3600.0, 1e-3)
        need = self.need_kwh()
        required = np.minimum(need / hours_left, ceil) * online
        leaving = online & (dep < t_end)  # by estimate: not offered, they charge what they need
        # a leaving car that needs nothing more is flexible while it stays (its chance to stay weighs its range)
        flex = online & ~forced & (~leaving | (need <= 0.0)) & (ceil >= f.p_min_kw)
        staying = flex & ~leaving
        fixed_kw = float(ceil[forced].sum())
        # leaving cars take their required rate as a fixed load, rounded to a mode (charge or not)
        leave_ch = leaving & ~forced & (required > 0) & (ceil >= f.p_min_kw)
        fixed_kw += float(ceil[leave_ch].sum())
        base_need = fixed_kw + float(required[flex].sum())
        dis_ok = flex & self._dischargeable(self.laxity_s(t_s), hour_s)
        rate = s.energy_lead * required  # this hour's rate of each car: a little ahead of its even spread
        p_end = self.stay_probability(t_end)
        # the least the fleet can draw all hour, whatever the plan: what the cars must draw not to be forced
        # (``_floor_kw``), now and at the hour's end (then only the forced cars likely to stay, and the arrivals
        # of the same hour the day before that came forced)
        floor = self._floor_kw(t_s, online, ceil, forced, hour_s)
        floor_end = self._floor_kw(t_s, online, ceil, forced, 0.0) * p_end
        bottom = max(
            float(floor.sum()), float(floor_end.sum()) + self.arrivals_floor_kw.get(int(t_s // 3600.0) - 24, 0.0)
        )
        ctx = _Hour(t_s, hour_s, ceil, rate * online, flex, leave_ch, fixed_kw, dis_ok,
                    self.ceiling_end_kw(hour_s), p_end, bottom)  # fmt: skip
        plan = self._plan(ctx, fixed_kw + float(ctx.rate[flex].sum()))
        if plan.capacity_kw <= 0.0:  # nothing to offer: charge for energy only, leaving cars that are done idle
            plan = self._plan(replace(ctx, flex=staying, dis_ok=dis_ok & staying),
                              fixed_kw + float(ctx.rate[staying].sum()))  # fmt: skip
        switched = np.flatnonzero(online & (plan.mode != self.mode))
        self.mode = plan.mode
        self.switched_at[switched] = t_s
        self.base_kw, self.hour_base_kw = plan.shares, plan.base
        self.offer_ = Offer(t_s, -plan.base, plan.capacity_kw, max(plan.base - bottom, 0.0),
                            max(plan.top - plan.base, 0.0), base_need, fixed_kw, int(flex.sum()))  # fmt: skip
        step = self._setpoints(t_s, plan.base, ceil, switched, R_PLAN)
        return self.offer_, step

    def _plan(self, h: _Hour, base: float) -> _Plan:
        """Modes, base shares and capacity for a base consumption ``base`` (nothing is changed)."""
        f, s = self.fleet, self.s
        online, ceil, flex = self.online, h.ceil, h.flex
        pmin = f.p_min_kw
        # the middle of each car's range over the hour: its bottom now, its top at the hour's end (taper as
        # the SSM forecasts it, departures as the estimate's spread makes them likely)
        top_end = np.minimum(ceil, h.ceil_end) * h.p_end
        mid_c = np.where(flex, (pmin + top_end) / 2.0, 0.0)
        mid_d = np.where(h.dis_ok, (f.p_discharge_kw + pmin * h.p_end) / 2.0, 0.0)
        fixed = self.forced | h.leave_ch
        fixed_mid = float((ceil + top_end)[fixed].sum()) / 2.0
        # charging set: every flexible car, most urgent first; then the least urgent move to discharge (if
        # allowed) or idle until the middle of the range is at the base consumption
        urgency = np.where(flex, h.rate / np.maximum(ceil, 1e-9), -np.inf)
        order = np.argsort(-urgency, kind="stable")[: int(flex.sum())]
        mode = np.full(len(f), IDLE, np.int8)
        mode[order] = CHARGING
        excess = fixed_mid + mid_c[order].sum() - base
        if excess > 0:
            rev = order[::-1]  # least urgent first
            # moving a car to discharge lowers the middle by mid_c + mid_d and keeps its range
            step_d = np.where(h.dis_ok[rev], mid_c[rev] + mid_d[rev], 0.0)
            k = _nearest_count(step_d, excess)
            to_dis = rev[:k][h.dis_ok[rev[:k]]]
            mode[to_dis] = DISCHARGING
            excess -= float(step_d[:k].sum())
            if excess > 0:
                cand = rev[mode[rev] == CHARGING]
                mode[cand[: _nearest_count(mid_c[cand], excess)]] = IDLE
        mode[self.forced | h.leave_ch] = CHARGING
        # hold: a car switched less than min_hold_s ago keeps its mode (unless forced)
        held = online & (h.t_s - self.switched_at < s.min_hold_s) & ~self.forced
        mode[held] = self.mode[held]
        mode[~online] = IDLE

        lo, hi = self._ranges(ceil, mode)
        lmin, lmax = float(lo.sum()), float(hi.sum())
        base = min(max(base, lmin), lmax) if lmax >= lmin else base
        # each car's share of the base: its energy rate (a leaving or forced car its ceiling), see ``share_base``
        shares = share_base(base, np.where(h.leave_ch, hi, h.rate) * online, lo, hi)
        ceil_end = self.ceiling_end_kw(h.hour_s, mode)
        p_end = h.p_end
        # offered: the half-width of the modes' range, its top at the hour's end shrinking with the charging
        # cars' taper (SSM) and the departures (each car weighted by its chance to stay)
        hi_end = np.where(mode == CHARGING, np.minimum(hi, ceil_end), hi)
        lmax_end = float((hi_end * p_end)[online].sum())
        if s.switch_room > 0.0:
            # and, for a share of it, what switching a mode at the range's edge adds: idle cars that could
            # charge above it (by the hour's end), charging ones that could stop or idle ones discharge below
            idle, ch_flex = flex & (mode == IDLE), flex & (mode == CHARGING)
            lmax_end += s.switch_room * float((ceil_end * p_end)[idle & (ceil >= f.p_min_kw)].sum())
            lmin -= s.switch_room * (float(lo[ch_flex].sum()) + float(f.p_discharge_kw[idle & h.dis_ok].sum()))
        cap = min(base - lmin, min(lmax, lmax_end) - base, key=float)
        # forecast of what the fleet can physically hold all hour (any mode): up to every car likely to stay
        # at its (SSM-forecast) ceiling at the hour's end, plus the arrivals seen in the same hour the day
        # before (the min over the hour is at its start or its end)
        top_end = float((ceil_end * p_end)[online].sum()) + self.arrivals_kw.get(int(h.t_s // 3600.0) - 24, 0.0)
        top = min(float(ceil[online].sum()), top_end)
        # never more than the forecast says the fleet can hold in any mode (the evening, when the cars left
        # at the hour's end cannot draw the base)
        cap = max(min(cap, base - h.bottom, top - base), 0.0) * (1.0 - s.safety_margin)
        return _Plan(mode, base, shares, cap, top)

    def _floor_kw(
        self, t_s: float, cars: BoolArray, ceil: FloatArray, forced: BoolArray, horizon_s: float, hour_s: float = 3600.0
    ) -> FloatArray:
        """The least each of ``cars`` can draw on average over ``horizon_s`` without being forced (kW; 0 for
        the others): 0 s is the instant (only forced cars, and cars with no slack, must draw).

        Forced cars draw their ceiling; a car with slack under the horizon must draw ceil x (1 - slack /
        horizon) (cars leaving this hour included: the base holds them at their ceiling, but the fleet could
        hold them lower); a car behind a bidirectional charger that can afford an hour of discharge and its
        recharge counts at minus its discharge power. The deliverable in ``market.run_market`` applies the
        same rules to the true state from each instant to the hour's end.
        """
        f = self.fleet
        lax = self.laxity_s(t_s)
        must = np.where(forced | (lax <= 0.0), ceil, ceil * np.clip(1.0 - lax / max(horizon_s, 1e-9), 0.0, 1.0))
        must[~forced & ((ceil < f.p_min_kw) | (self.need_kwh() <= 0.0))] = 0.0  # cannot draw, or needs nothing
        dis = ~forced & self._dischargeable(lax, hour_s)
        return np.where(cars, must - f.p_discharge_kw * dis, 0.0)

    def _dischargeable(self, lax: FloatArray, hour_s: float) -> BoolArray:
        """Cars that may discharge for the hour: behind a bidirectional charger, above the force-charge SoC,
        and with slack left after the hour and the time to recharge what it gave."""
        f, s = self.fleet, self.s
        recharge_s = hour_s * (f.p_discharge_kw / np.maximum(f.p_charge_kw, 1e-9)) / f.efficiency**2
        ok = self.can_discharge & (self.soc > max(s.soc_force_charge, SOC_MIN) + 0.05)
        return ok & (lax > hour_s + recharge_s)

    def stay_probability(self, t_s: float) -> FloatArray:
        """Probability that each car is still plugged in at ``t_s``, from its estimated departure and the
        site's departure-error distribution (normal spread; a share leaving 30-90 min early)."""
        from scipy.special import ndtr

        s = self.s
        ahead = self.departure_est_s - t_s
        normal = ndtr(ahead / s.departure_sd_s) if s.departure_sd_s > 0 else (ahead >= 0).astype(float)
        early = np.clip((ahead - 1800.0) / 3600.0, 0.0, 1.0)
        return (1.0 - s.early_share) * normal + s.early_share * early

    def ceiling_end_kw(self, horizon_s: float, mode: NDArray[np.int8] | None = None) -> FloatArray:
        """SSM forecast of each car's charging ceiling ``horizon_s`` from now, if it stays (kW).

        Each car's state (its commanded mode, or ``mode``, and SoC bin) is advanced by A^m (m steps of the
        model's period): a distribution over the states at the end. Its ceiling there is the CC/CV taper at
        the bin's SoC, with the SoC capped at the car's demand (or its SoC, if past it) plus an hour at its
        minimum current: the charging cars' base shares end at their demand, after which the charging mode
        still draws the minimum. A fleet-wide A cannot know where each car stops: without the cap it drove the
        cars charging hard in the evening deep into the taper (on 2,000 EVs, seed 0, it forecast the 22:00
        hour's top 30 % down for taper where the cars' true ceilings fell about 10 %). Never above the car's
        granted limit; 0 at the top SoC.
        """
        ns = self.model.ns
        reach = np.linalg.matrix_power(self.model.A_, self.model_steps(horizon_s))  # column j: from state j
        mode = self.mode if mode is None else mode
        states = mode.astype(np.intp) * ns + soc_bin(self.soc, ns)
        f = self.fleet
        # past its demand a car in the charging mode still draws its minimum current, and more when the signal
        # asks: capped there, plus an hour at that minimum
        past = f.p_min_kw * f.efficiency * horizon_s / 3600.0 / f.capacity_kwh
        cap = np.maximum(f.soc_target, self.soc) + past
        # per car, the SoC bins below its cap count at their own taper and the rest at the cap's: cumulative
        # sums over the bins of each starting state's distribution (modes pooled), looked up per car (O(cars),
        # not a bins x cars array)
        mid = (np.arange(ns) + 0.5) / ns
        by_bin = reach.reshape(3, ns, 3 * ns).sum(axis=0)  # (bin at the end, starting state)
        mass = np.cumsum(by_bin, axis=0)
        tapered = np.cumsum(by_bin * self._taper(mid)[:, None], axis=0)
        below = np.searchsorted(mid, cap, side="right")  # bins whose middle is at or under the cap
        total = mass[-1, states]
        under_mass = np.where(below > 0, mass[np.maximum(below - 1, 0), states], 0.0)
        under_tapered = np.where(below > 0, tapered[np.maximum(below - 1, 0), states], 0.0)
        frac = (under_tapered + self._taper(cap) * (total - under_mass)) / np.maximum(total, 1e-12)
        return np.minimum(f.p_charge_kw * frac, self.limit_kw)

    def _taper(self, soc: FloatArray) -> FloatArray:
        """The CC/CV ceiling as a share of rated power at ``soc`` (0 at the top SoC)."""
        t = np.clip((1.0 - soc) / max(1.0 - self.s.soc_cv, 1e-9), 0.0, 1.0)
        return np.where(soc >= SOC_MAX - 1e-6, 0.0, t)

    def model_steps(self, horizon_s: float) -> int:
        """Model periods in ``horizon_s`` (the model's period is the step it was estimated at)."""
        return max(1, round(horizon_s / self.model_dt_s))

    # --------------------------------------------------------------------------------------- decide

    def _switch(
        self,
        ordered: NDArray[np.intp],
        gain: NDArray[np.float64],
        gap: float,
        to: int,
        t_s: float,
        switched: list[NDArray[np.intp]],
    ) -> float:
        """Switch the first of ``ordered`` to mode ``to`` until their ``gain`` covers ``gap``; the kW gained."""
        k = int(np.searchsorted(np.cumsum(gain[ordered]), gap))
        pick = ordered[: k + 1]
        self.mode[pick] = to
        self.switched_at[pick] = t_s
        switched.append(pick)
        return float(gain[pick].sum())

    def decide(self, t_s: float, target_kw: float) -> Step:
        """Setpoints for the fleet injection ``target_kw`` (kW) now, within the hour's offer."""
        s = self.s
        was_forced = self.forced
        forced = self._update_forced(t_s)
        switched: list[NDArray[np.intp]] = []
        newly = np.flatnonzero(forced & ~was_forced & (self.mode != CHARGING))
        self.mode[newly] = CHARGING
        self.switched_at[newly] = t_s
        switched.append(newly)
        ceil = self.ceiling_kw()
        want = -target_kw
        lo, hi = self._ranges(ceil)
        lmin, lmax = float(lo.sum()), float(hi.sum())
        cap = self.offer_.capacity_kw if self.offer_ is not None else 0.0
        tol = max(s.switch_deadband * cap, 1e-6)
        f = self.fleet
        free = self.online & ~forced & (t_s - self.switched_at >= s.min_hold_s)
        lax = self.laxity_s(t_s)
        if want > lmax + tol:  # not enough consumption: discharging -> idle, then idle -> charging
            gap = want - lmax
            for frm, to, gain, prio in (
                (DISCHARGING, IDLE, f.p_min_kw, lax),
                (IDLE, CHARGING, ceil, lax),
            ):
                if gap <= 0:
                    break
                cand = np.flatnonzero(free & (self.mode == frm) & ((to != CHARGING) | (ceil >= f.p_min_kw)))
                gap -= self._switch(cand[np.argsort(prio[cand], kind="stable")], gain, gap, to, t_s, switched)
        elif want < lmin - tol:  # too much consumption: charging -> idle, then idle -> discharging
            gap = lmin - want
            pmin = np.minimum(f.p_min_kw, ceil)
            dis_ok = self.can_discharge & (self.soc > max(s.soc_force_charge, SOC_MIN) + 0.05) & (lax > 0)
            for frm, to, gain, ok in (
                (CHARGING, IDLE, pmin, np.ones(len(f), bool)),
                (IDLE, DISCHARGING, f.p_discharge_kw, dis_ok),
            ):
                if gap <= 0:
                    break
                cand = np.flatnonzero(free & ok & (self.mode == frm))
                cand = cand[np.argsort(-lax[cand], kind="stable")]  # most slack first
                gap -= self._switch(cand, gain, gap, to, t_s, switched)
        sw = np.unique(np.concatenate(switched)) if switched else np.zeros(0, np.intp)
        reason = R_SWITCH
        return self._setpoints(t_s, want, ceil, sw, reason, forced_new=newly)

    def _setpoints(
        self,
        t_s: float,
        want_kw: float,
        ceil: FloatArray,
        switched: NDArray[np.intp],
        switch_reason: int,
        forced_new: NDArray[np.intp] | None = None,
    ) -> Step:
        lo, hi = self._ranges(ceil)
        # each car's base share, kept inside its present range (mode switches, taper, departures move it); a
        # car that reached its demand keeps none (its minimum current, or 0 when idle)
        done = (self.need_kwh() <= 0.0) & ~self.forced
        b = np.where(done, lo, self.base_kw) * self.online
        # and the hour's base kept: what they gave up goes to the others' shares (the signal stays centred)
        b = share_base(self.hour_base_kw, b, lo, hi, movable=~done)
        self.base_kw = b
        dev = want_kw - float(b.sum())
        room = hi - b if dev > 0 else b - lo
        total = float(room.sum())
        alpha = float(np.sign(dev) * min(abs(dev) / total, 1.0)) if total > 1e-9 else 0.0
        sp = b + alpha * room
        sp[~self.online] = 0.0
        gap = want_kw - float(sp.sum())
        moved = np.abs(sp - self.sent_kw) >= self.s.command_deadband_kw
        moved[switched] = True
        moved &= self.online | (self.sent_kw != 0.0)
        changed = np.flatnonzero(moved)
        reason = np.full(changed.size, R_MODULATE, np.int8)
        is_sw = np.isin(changed, switched)
        reason[is_sw] = switch_reason
        if forced_new is not None and forced_new.size:
            reason[np.isin(changed, forced_new)] = R_FORCED
        reason[np.isin(changed, np.flatnonzero(self.limit_kw < np.inf)) & (sp[changed] >= self.limit_kw[changed])] = (
            R_LIMIT
        )
        self.sent_kw[changed] = sp[changed]
        return Step(changed, sp[changed].copy(), reason, switched, alpha, gap)


def share_base(
    base_kw: float, rate_kw: FloatArray, lo_kw: FloatArray, hi_kw: FloatArray, movable: BoolArray | None = None
) -> FloatArray:
    """Each car's share of the fleet's base point: its energy rate within its range [lo, hi], then all
    shares moved together towards ``base_kw`` in proportion to the room each has on that side (never out of
    its range; the sum is ``base_kw`` when the ranges allow it).

    Why per car: ``Tracker.decide`` spreads the signal's deviations over the same rooms around these shares,
    so each car gets its share on average whatever the signal does. One common position in every car's range
    (the rule before) gave a car that needed little as much as one that needed much: the needy fell behind
    and were forced to charge in the evening, just when most cars leave. Cars not ``movable`` keep their
    (clipped) rate."""
    b = np.clip(rate_kw, lo_kw, hi_kw)
    gap = base_kw - float(b.sum())
    room = hi_kw - b if gap > 0 else b - lo_kw
    if movable is not None:
        room = np.where(movable, room, 0.0)
    total = float(room.sum())
    if total > 1e-9:
        b = b + np.sign(gap) * room * min(abs(gap) / total, 1.0)
    return b


def _nearest_count(gain: FloatArray, excess: float) -> int:
    """How many of the first cars to move so that their summed ``gain`` comes nearest ``excess`` (none to
    all). Nearest, not "at least": with a few cars, covering the excess in full can overshoot by a whole
    car's range, push the base point to the edge of the fleet's range and leave no capacity to offer."""
    sums = np.concatenate([[0.0], np.cumsum(gain)])
    return int(np.argmin(np.abs(sums - excess)))


def lognormal_delays(rng: np.random.Generator, n: int, median_s: float, p99_s: float) -> FloatArray:
    """Command round trips drawn from a log-normal with the given median and 99th percentile."""
    sigma = np.log(max(p99_s, median_s * 1.0001) / median_s) / 2.326
    return median_s * np.exp(sigma * rng.standard_normal(n))
