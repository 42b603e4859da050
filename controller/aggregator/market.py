"""The hourly-market closed loop: ``Tracker`` against the Monte Carlo fleet under real conditions.

What the controller does *not* get here (issue 12, "the cars as they are"):

- the cars' true state: each car's SoC and power reach it as meter values every ``meter_interval_s``
  (each car on its own phase), ``meter_delay_s`` late; the site total comes every step (2 s) from the site
  meter; plug-in and departure come from the chargers' transactions (exact);
- the departure: it plans with an estimate; drivers leave around it (normal, ``departure_sd_s``) and a
  share ``early_share`` leaves 30-90 min early;
- obedient chargers: each command arrives after a log-normal round trip (``latency_median_s``,
  ``latency_p99_s``) or is lost (``command_loss_share``); a meter value that disagrees with a command older
  than ``latency_p99_s`` + 15 s makes it send the command again;
- ideal cars: each ramps to a new setpoint at its own rate, tapers above ``soc_cv`` (CC/CV), does not
  charge below its charger's minimum current (``evsite.ev_fleet.apply_setpoints``).

Per hour: the offer (base, capacity, the SSM-forecast up/down headroom), what the fleet could actually have
delivered (the smallest headroom around the base over the hour, from the true state: ``deliverable``; a
car that needs nothing more never has to draw), and
the PJM score of the hour. The capacity forecasts of the SSM are compared with persistence (last hour's
deliverable) and seasonal-naive (same hour the day before) in ``forecast_errors``.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from controller.aggregator.simulate import DriverImpact, driver_impact
from controller.aggregator.tracker import Offer, Tracker, TrackerSettings, lognormal_delays
from evsite.ev_fleet import (
    SOC_MAX,
    SOC_MIN,
    CarPhysics,
    Fleet,
    FleetStepper,
    apply_setpoints,
    charge_ceiling_kw,
    charge_until,
)
from planning.pjm_score import PerformanceScore, hourly_scores, mean_score
from planning.ssm import StateSpaceModel, soc_bin, transition_counts

FloatArray = NDArray[np.float64]
HOUR_S = 3600.0
UNSCORED = PerformanceScore(0.0, 0.0, 0.0, float("nan"))


@dataclass(frozen=True)
class Conditions:
    """Latencies, meters and driver behaviour of the simulation (``[regulation]`` keys of the same names)."""

    latency_median_s: float = 2.0
    latency_p99_s: float = 10.0
    command_loss_share: float = 0.01
    meter_interval_s: float = 30.0
    meter_delay_s: float = 5.0
    departure_sd_s: float = 900.0
    early_share: float = 0.1


def departures(fleet: Fleet, cond: Conditions, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """(estimate, truth): the fleet's departure is what the controller estimates; drivers leave around it
    (normal, ``departure_sd_s``), and ``early_share`` of them 30-90 min early. Never before arrival + 15 min."""
    est = fleet.departure_s.copy()
    n = len(fleet)
    truth = est + rng.normal(0.0, cond.departure_sd_s, n)
    early = rng.random(n) < cond.early_share
    truth[early] = est[early] - rng.uniform(1800.0, 5400.0, int(early.sum()))
    truth = np.maximum(truth, fleet.arrival_s + 900.0)
    return est, truth


@dataclass
class HourRecord:
    start_s: float
    offer: Offer
    deliverable_up_kw: float
    deliverable_down_kw: float
    score: PerformanceScore
    switches: int
    car_hours: float

    @property
    def deliverable_kw(self) -> float:
        """The symmetric capacity the fleet could have held all hour around the offered base."""
        return min(self.deliverable_up_kw, self.deliverable_down_kw)

    @property
    def forecast_kw(self) -> float:
        """The SSM's forecast of that capacity (before the safety margin)."""
        return min(self.offer.up_kw, self.offer.down_kw)


@dataclass
class DriverOutcome:
    impact: DriverImpact
    early_leavers: int  # left 30 min or more before the estimate, demand reachable by then at rated power
    early_met_share: float
    at_est_minus_30_share: float  # of drivers there 30 min before their estimate whose demand was reachable by
    # then at rated power: the share with SoC >= demand at that moment


@dataclass
class MarketRun:
    dt_s: float
    t0_s: float
    signal: FloatArray
    injection_kw: FloatArray
    base_kw: FloatArray
    capacity_kw: FloatArray
    hours: list[HourRecord]
    switches_per_car_hour: FloatArray  # per car online at least 15 min
    commands: int
    car_hours: float
    drivers: DriverOutcome
    decide_s: FloatArray = field(repr=False)
    interrupted: bool = False  # Ctrl-C ended the run: everything above covers the whole hours done before it

    @property
    def response(self) -> FloatArray:
        """The fleet's deviation from its base point per unit of the offered capacity (0 when none)."""
        return np.divide(self.injection_kw - self.base_kw, self.capacity_kw, out=np.zeros_like(self.base_kw),
                         where=self.capacity_kw > 0)  # fmt: skip

    @property
    def scored_hours(self) -> list[HourRecord]:
        """Hours with capacity offered (PJM scores only hours a resource regulates)."""
        return [h for h in self.hours if h.offer.capacity_kw > 0]

    @property
    def score(self) -> PerformanceScore:
        """The mean of the scored hours' scores (all zero when no hour offered capacity)."""
        parts = [h.score for h in self.scored_hours]
        return mean_score(parts) if parts else UNSCORED

    def switch_stats(self) -> dict[str, float]:
        r = self.switches_per_car_hour
        if r.size == 0:
            return {"mean": float("nan"), "median": float("nan"), "p95": float("nan")}
        return {"mean": float(r.mean()), "median": float(np.median(r)), "p95": float(np.percentile(r, 95))}

    def forecast_errors(self, first_hour: int = 24) -> dict[str, float]:
        """Mean absolute error (kW) of the hour-ahead capacity forecasts from hour ``first_hour`` on:
        the SSM's, persistence's (last hour's deliverable) and seasonal-naive's (same hour the day before);
        ``hours`` says over how many hours (none before ``first_hour``, which needs a day of history)."""
        d = np.array([h.deliverable_kw for h in self.hours])
        f = np.array([h.forecast_kw for h in self.hours])
        idx = np.arange(max(first_hour, 24), d.size)
        if idx.size == 0:
            return {"hours": 0, "ssm": float("nan"), "persistence": float("nan"), "seasonal": float("nan")}
        return {"hours": int(idx.size), "ssm": float(np.mean(np.abs(f[idx] - d[idx]))),
                "persistence": float(np.mean(np.abs(d[idx - 1] - d[idx]))),
                "seasonal": float(np.mean(np.abs(d[idx - 24] - d[idx]))),
                "mean_deliverable": float(np.mean(d[idx]))}  # fmt: skip


def run_market(
    fleet: Fleet,
    signal_pu: FloatArray,
    model: StateSpaceModel,
    *,
    t0_s: float,
    dt_s: float = 2.0,
    model_dt_s: float = 4.0,
    settings: TrackerSettings | None = None,
    conditions: Conditions | None = None,
    can_discharge: NDArray[np.bool_] | None = None,
    seed: int = 0,
    online_update: bool = True,
    a_update_period_s: float = 100.0,
    timer: Callable[[], float] | None = None,
    on_hour: Callable[[int], None] | None = None,
) -> MarketRun:
    """Run ``signal_pu`` (one value per ``dt_s`` step, +1 = least consumption) from ``t0_s`` with hourly
    offers at every hour boundary (the first at ``t0_s``). ``fleet`` is advanced in place; its
    ``departure_s`` is replaced by the drivers' true departures (``departures``). With ``online_update``
    the model's A is refined (in place) from the transitions the controller observes. ``on_hour(n)`` is told
    when the n-th hour is done (progress). Ctrl-C (KeyboardInterrupt) ends the run at the last whole hour
    and returns it scored, marked ``interrupted``."""
    s = settings or TrackerSettings()
    cond = conditions or Conditions()
    rng = np.random.default_rng(seed)
    est, truth = departures(fleet, cond, rng)
    fleet.departure_s[:] = truth
    charge_until(fleet, t0_s)  # before the run the cars charged uncontrolled
    physics = CarPhysics(s.soc_cv)
    tr = Tracker(fleet, model, s, departure_est_s=est, can_discharge=can_discharge, model_dt_s=model_dt_s)
    stepper = FleetStepper(fleet)
    n, n_steps = len(fleet), int(signal_pu.size)
    steps_per_hour = round(HOUR_S / dt_s)
    inj, base_s, cap_s, decide_s = (np.zeros(n_steps) for _ in range(4))
    applied = np.zeros(n)
    power = np.zeros(n)
    pending_sp, pending_at = np.zeros(n), np.full(n, np.inf)
    sent_at = np.full(n, -np.inf)
    next_sample = t0_s + rng.uniform(0.0, cond.meter_interval_s, n)
    sampled_soc, sampled_p, due_at = np.zeros(n), np.zeros(n), np.full(n, np.inf)
    switches = np.zeros(n)
    online_s = np.zeros(n)
    est_check = est - 1800.0
    soc_at_check = np.full(n, np.nan)
    hours: list[HourRecord] = []
    hour_lo: list[float] = []
    hour_hi: list[float] = []
    hour_switch = 0
    hour_online0 = 0.0
    commands = 0
    offer: Offer | None = None
    retry_after = cond.latency_p99_s + 15.0
    # the SSM learns from the transitions it sees (its own view: commanded mode, SoC from meter values) at
    # its own period, blended into A every a_update_period_s (test-mode A describes random switching)
    ns = model.ns
    per = max(1, round(model_dt_s / dt_s))
    upd = max(1, round(a_update_period_s / dt_s))
    counts = np.zeros((3 * ns, 3 * ns))
    prev_state = tr.mode.astype(np.intp) * ns + soc_bin(tr.soc, ns)
    prev_online = tr.online.copy()
    recharge_s = HOUR_S * fleet.p_discharge_kw / np.maximum(fleet.p_charge_kw, 1e-9) / fleet.efficiency**2

    def send(idx: NDArray[np.intp], sp: FloatArray, t: float) -> None:
        nonlocal commands
        commands += idx.size
        delay = lognormal_delays(rng, idx.size, cond.latency_median_s, cond.latency_p99_s)
        lost = rng.random(idx.size) < cond.command_loss_share
        ok = idx[~lost]
        pending_sp[ok] = sp[~lost]
        pending_at[ok] = t + delay[~lost]
        sent_at[idx] = t

    def close_hour(k_end: int) -> None:
        assert offer is not None
        b = -offer.base_kw
        up = b - max(hour_lo) if hour_lo else 0.0
        down = min(hour_hi) - b if hour_hi else 0.0
        hours.append(HourRecord(offer.t_s, offer, max(up, 0.0), max(down, 0.0), UNSCORED, hour_switch,
                                float(online_s.sum() - hour_online0) / HOUR_S))  # fmt: skip
        if on_hour is not None:
            on_hour(len(hours))

    interrupted = False
    for k in range(n_steps):
        try:
            t = t0_s + k * dt_s
            online = fleet.online(t)
            tr.observe_online(online, t)
            # meter values: sampled on each car's phase, delivered meter_delay_s later
            due = online & (t >= next_sample)
            sampled_soc[due], sampled_p[due] = fleet.soc[due], power[due]
            due_at[due] = t + cond.meter_delay_s
            next_sample[due] += cond.meter_interval_s * np.ceil((t - next_sample[due] + 1e-9) / cond.meter_interval_s)
            arrived = np.flatnonzero(due_at <= t)
            if arrived.size:
                tr.observe_soc(arrived, sampled_soc[arrived])
                due_at[arrived] = np.inf
                stale = arrived[(np.abs(sampled_p[arrived] - tr.sent_kw[arrived]) > 0.5)
                                & (t - sent_at[arrived] > retry_after) & online[arrived]]  # fmt: skip
            else:
                stale = arrived
            t_a = timer() if timer else 0.0
            if k % steps_per_hour == 0:
                if offer is not None:
                    close_hour(k)
                offer, st = tr.offer(t)
                hour_lo.clear()
                hour_hi.clear()
                hour_switch = 0
                hour_online0 = float(online_s.sum())
            assert offer is not None
            target = offer.base_kw + float(signal_pu[k]) * offer.capacity_kw
            st2 = tr.decide(t, target)
            if k % steps_per_hour == 0:
                changed = np.union1d(st.changed, st2.changed)
                sw = np.union1d(st.switched, st2.switched)
            else:
                changed, sw = st2.changed, st2.switched
            if timer:
                decide_s[k] = timer() - t_a
            if stale.size:
                changed = np.union1d(changed, stale)
            if changed.size:
                send(changed, tr.sent_kw[changed], t)
            switches[sw] += 1
            hour_switch += int(sw.size)
            # chargers apply what reached them; departed cars stop
            hit = pending_at <= t
            applied[hit] = pending_sp[hit]
            pending_at[hit] = np.inf
            applied[~online] = 0.0
            pending_at[~online] = np.inf
            power = apply_setpoints(fleet, applied, power, dt_s, physics) * online
            # what the fleet could physically have done (any mode) around the base: true SoC, true presence
            ceil = charge_ceiling_kw(fleet, s.soc_cv)
            ceil[fleet.soc >= SOC_MAX - 1e-6] = 0.0
            ceil = np.minimum(ceil, tr.limit_kw) * online
            dis = online & tr.can_discharge & (fleet.soc > max(s.soc_force_charge, SOC_MIN) + 0.05) & ~tr.forced
            t_end = t0_s + (k // steps_per_hour + 1) * steps_per_hour * dt_s
            lax = tr.laxity_s(t)
            dis &= lax > (t_end - t) + recharge_s  # it can discharge to the hour's end and recharge
            # the least the fleet could draw from now to the hour's end without forcing a car to charge: forced
            # cars at their ceiling, each other car ceil x (1 - slack / time left), the dischargeable discharging
            left = max(t_end - t, dt_s)
            must = ceil * np.clip(1.0 - lax / left, 0.0, 1.0)
            must[tr.need_kwh() <= 0.0] = 0.0  # a car that needs nothing more is never forced
            must[tr.forced] = ceil[tr.forced]
            hour_lo.append(float(must.sum() - fleet.p_discharge_kw[dis].sum()))
            hour_hi.append(float(ceil.sum()))
            crossing = np.isnan(soc_at_check) & online & (est_check <= t)
            soc_at_check[crossing] = fleet.soc[crossing]
            r = stepper.step(t, dt_s, power_kw=power)
            power = r.power_kw.copy()
            inj[k] = -r.total_kw
            base_s[k], cap_s[k] = offer.base_kw, offer.capacity_kw
            online_s += online * dt_s
            tr.dead_reckon(dt_s)
            if online_update and (k + 1) % per == 0:
                state = tr.mode.astype(np.intp) * ns + soc_bin(tr.soc, ns)
                counts += transition_counts(prev_state, state, prev_online & tr.online, ns)
                prev_state, prev_online = state, tr.online.copy()
            if online_update and (k + 1) % upd == 0:
                model.partial_fit(counts)
                counts[:] = 0.0
        except KeyboardInterrupt:
            interrupted = True
            break
    if interrupted:  # keep the whole hours done: the open one's arrays are incomplete
        n_steps = len(hours) * steps_per_hour
        signal_pu, inj, base_s, cap_s, decide_s = (a[:n_steps] for a in (signal_pu, inj, base_s, cap_s, decide_s))
    elif offer is not None and hour_lo:
        close_hour(n_steps)
    resp = np.divide(inj - base_s, cap_s, out=np.zeros(n_steps), where=cap_s > 0)
    if n_steps >= 150:
        for h, part in zip(hours, hourly_scores(np.asarray(signal_pu, float), resp, dt_s), strict=False):
            h.score = part
    t_end = t0_s + n_steps * dt_s
    car_h = online_s / HOUR_S
    rates = switches[car_h >= 0.25] / car_h[car_h >= 0.25]
    left = (truth >= t0_s) & (truth <= t_end)
    met = fleet.soc >= fleet.soc_target - 0.01

    def reachable(by_s: FloatArray) -> NDArray[np.bool_]:
        """Demand reachable by ``by_s`` charging at rated power from arrival (else no controller could)."""
        h = np.clip(by_s - fleet.arrival_s, 0.0, None) / HOUR_S
        gain = h * fleet.p_charge_kw * fleet.efficiency / fleet.capacity_kwh
        return fleet.soc_initial + gain >= fleet.soc_target - 0.01

    early = left & (truth <= est - 1800.0) & reachable(truth)
    checked = ~np.isnan(soc_at_check) & (est_check >= t0_s) & reachable(est_check)
    drivers = DriverOutcome(
        driver_impact(fleet, t0_s, t_end),
        int(early.sum()),
        float(met[early].mean()) if early.any() else float("nan"),
        float(np.mean(soc_at_check[checked] >= fleet.soc_target[checked] - 0.01)) if checked.any() else float("nan"),
    )
    return MarketRun(dt_s, t0_s, np.asarray(signal_pu, float), inj, base_s, cap_s, hours, rates, commands,
                     float(car_h.sum()), drivers, decide_s, interrupted)  # fmt: skip
