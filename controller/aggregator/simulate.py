"""Run the aggregator against the Monte Carlo fleet and a regulation signal: the closed loop that
``evsite regulate``, the benchmark and the tests measure.

Per step (``dt_s``, 4 s): the controller decides the switches for ``target = base + signal · capacity``,
the fleet simulator applies the commanded modes and reports the power actually drawn (the ground truth),
and the model's prediction for that step is recorded. Every ``capacity_horizon_s`` (5 min) the base point
and the capacity offered are re-declared from the model's forecast (``RegulationController.capacity``):
the base is the middle of the reachable range and the capacity its half-width less a safety margin. Every
``a_update_period_s`` the transitions observed since the last update refine A (``partial_fit``).

Pure: no clock and no I/O; the caller passes the fleet, the signal and the model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from controller.aggregator.core import RegulationController
from evsite.ev_fleet import CHARGING, Fleet, FleetStepper
from planning.pjm_score import NATIVE_S, PerformanceScore, resample_mean, score_hourly
from planning.ssm import StateSpaceModel, effective_mode, shares, state_index, transition_counts

FloatArray = NDArray[np.float64]


@dataclass
class DriverImpact:
    """SoC at departure against the demanded SoC, for the EVs that left during the run."""

    departed: int
    mean_soc_departure: float
    mean_soc_demanded: float
    met_share: float  # share of departed drivers with SoC >= demanded - 0.01
    mean_shortfall_kwh: float
    feasible: int = 0  # departed drivers whose demand full-power charging from arrival could have met
    met_share_feasible: float = float("nan")


@dataclass
class RegulationRun:
    """Per-step series (kW, injection positive) and the scores of one closed-loop run."""

    dt_s: float
    signal: FloatArray
    target_kw: FloatArray
    actual_kw: FloatArray
    predicted_kw: FloatArray
    base_kw: FloatArray
    capacity_kw: FloatArray
    online: NDArray[np.int64]
    switches: NDArray[np.int64]
    drivers: DriverImpact
    score: PerformanceScore
    decide_s: FloatArray = field(repr=False)
    declared: list[tuple[float, float, float]] = field(default_factory=list)  # (t_s, up_kw, down_kw) per interval

    @property
    def mean_capacity_kw(self) -> float:
        return float(self.capacity_kw.mean())

    def prediction_error(self) -> dict[str, float]:
        """Next-step error of the model's injection against the ground truth (kW and relative to capacity)."""
        err = self.predicted_kw - self.actual_kw
        cap = max(self.mean_capacity_kw, 1e-9)
        return {"mae_kw": float(np.mean(np.abs(err))), "rmse_kw": float(np.sqrt(np.mean(err**2))),
                "mae_per_capacity": float(np.mean(np.abs(err)) / cap)}  # fmt: skip


def driver_impact(fleet: Fleet, t_start_s: float, t_end_s: float) -> DriverImpact:
    """Compare SoC at departure with the demand for EVs that departed in ``[t_start_s, t_end_s]``."""
    left = (fleet.departure_s >= t_start_s) & (fleet.departure_s <= t_end_s) & (fleet.arrival_s <= t_end_s)
    n = int(left.sum())
    if n == 0:
        return DriverImpact(0, float("nan"), float("nan"), float("nan"), 0.0)
    soc, tgt = fleet.soc[left], fleet.soc_target[left]
    short = np.maximum(tgt - soc, 0.0) * fleet.capacity_kwh[left]
    met = soc >= tgt - 0.01
    stay_h = (fleet.departure_s[left] - fleet.arrival_s[left]) / 3600.0
    reachable = fleet.soc_initial[left] + stay_h * (fleet.p_charge_kw * fleet.efficiency / fleet.capacity_kwh)[left]
    feasible = reachable >= tgt - 0.01
    nf = int(feasible.sum())
    return DriverImpact(n, float(soc.mean()), float(tgt.mean()), float(np.mean(met)), float(short.mean()), nf,
                        float(np.mean(met[feasible])) if nf else float("nan"))  # fmt: skip


def run_regulation(
    fleet: Fleet,
    signal_pu: FloatArray,
    model: StateSpaceModel,
    *,
    t0_s: float,
    dt_s: float = 4.0,
    boundary: bool = True,
    can_discharge: NDArray[np.bool_] | None = None,
    capacity_horizon_s: float = 300.0,
    a_update_period_s: float = 100.0,
    safety_margin: float = 0.1,
    online_update: bool = True,
    latency_s: float = 0.0,
    timer: Callable[[], float] | None = None,
) -> RegulationRun:
    """Track ``signal_pu`` (one per-unit value per step, +1 = inject) with ``fleet`` from ``t0_s``.

    ``fleet`` is advanced in place (its SoCs at the end are the drivers' departure SoCs). ``latency_s``
    delays every command by whole steps (rounded up) before the cars follow it: the OCPP round trip and the
    charger's reaction, which the controller does not see. ``timer`` (a zero-argument callable returning
    seconds, e.g. ``time.perf_counter``) measures each decision when given.
    """
    n_steps = int(signal_pu.size)
    ctrl = RegulationController(fleet, model, can_discharge=can_discharge, boundary=boundary)
    stepper = FleetStepper(fleet)
    ns = model.ns
    out = {k: np.zeros(n_steps) for k in ("target", "actual", "pred", "base", "cap", "decide")}
    online_n = np.zeros(n_steps, dtype=np.int64)
    switches = np.zeros(n_steps, dtype=np.int64)
    horizon_steps = max(1, round(capacity_horizon_s / dt_s))
    update_steps = max(1, round(a_update_period_s / dt_s))
    counts = np.zeros((3 * ns, 3 * ns))
    base = cap = 0.0
    declared: list[tuple[float, float, float]] = []
    lag = max(0, math.ceil(latency_s / dt_s - 1e-9))
    pending: deque[NDArray[np.int8]] = deque([fleet.mode.copy()] * lag)
    for k in range(n_steps):
        t = t0_s + k * dt_s
        if k % horizon_steps == 0:
            p_now, up, down = ctrl.capacity(t, capacity_horizon_s, dt_s)
            declared.append((t, up, down))
            base = p_now + (up - down) / 2.0
            cap = max((up + down) / 2.0 * (1.0 - safety_margin), 0.0)
        target = base + float(signal_pu[k]) * cap
        t_a = timer() if timer else 0.0
        d = ctrl.decide(t, target)
        if timer:
            out["decide"][k] = timer() - t_a
        prev = state_index(effective_mode(ctrl.commanded, fleet.soc, boundary), fleet.soc, ns)
        online_before = fleet.online(t)
        pending.append(ctrl.commanded.copy())
        fleet.mode[:] = pending.popleft()  # what the chargers apply now (commanded `lag` steps ago)
        r = stepper.step(t, dt_s)
        out["actual"][k] = -r.total_kw
        if online_update:
            nxt = state_index(effective_mode(ctrl.commanded, fleet.soc, boundary), fleet.soc, ns)
            counts += transition_counts(prev, nxt, online_before & fleet.online(t + dt_s), ns)
            if (k + 1) % update_steps == 0:
                model.partial_fit(counts)
                counts[:] = 0.0
        out["target"][k], out["pred"][k], out["base"][k], out["cap"][k] = target, d.predicted_kw, base, cap
        online_n[k], switches[k] = d.ne, d.changed.size
    t_end = t0_s + n_steps * dt_s
    resp = np.divide(out["actual"] - out["base"], out["cap"], out=np.zeros(n_steps), where=out["cap"] > 0)
    # scored on the 2 s grid (each step's value held over its 2 s samples)
    perf = score_hourly(
        resample_mean(np.asarray(signal_pu, float), dt_s, NATIVE_S), resample_mean(resp, dt_s, NATIVE_S)
    )
    drivers = driver_impact(fleet, t0_s, t_end)
    sig = np.asarray(signal_pu, float)
    return RegulationRun(dt_s, sig, out["target"], out["actual"], out["pred"], out["base"], out["cap"], online_n,
                         switches, drivers, perf, out["decide"], declared)  # fmt: skip


def open_loop_errors(
    fleet: Fleet, model: StateSpaceModel, *, t0_s: float, duration_s: float, dt_s: float = 4.0,
    boundary: bool = True, ahead_s: float = 300.0,
) -> dict[str, float]:  # fmt: skip
    """Prediction error of the model under the default control (every car charging, no regulation).

    Next step: ``Ne·D·A x(k)`` against the simulated injection over step k; ``ahead_s``: ``Ne_k·D·A^m x(k)``
    against the injection m steps later (Ne of the cars still there). Plain model (``boundary=False``):
    states from the commanded mode, so a full car told to charge counts as charging.
    """
    from planning.ssm import fleet_powers, output_weights

    f = fleet.take(slice(None))
    f.mode[:] = CHARGING
    commanded = f.mode.copy()
    stepper = FleetStepper(f)
    ns = model.ns
    n_steps = round(duration_s / dt_s)
    m = max(1, round(ahead_s / dt_s))
    a_m = np.linalg.matrix_power(model.A_, m)
    actual = np.zeros(n_steps)
    pred1 = np.zeros(n_steps)
    pred_m = np.full(n_steps, np.nan)
    for k in range(n_steps):
        t = t0_s + k * dt_s
        online = f.online(t)
        x, ne = shares(state_index(effective_mode(commanded, f.soc, boundary), f.soc, ns), online, ns)
        w = output_weights(ns, fleet_powers(f.p_charge_kw, f.p_discharge_kw, online))
        pred1[k] = ne * (w @ (model.A_ @ x))
        if k + m < n_steps:
            staying = online & (f.departure_s >= t + m * dt_s)
            xs, ns_e = shares(state_index(effective_mode(commanded, f.soc, boundary), f.soc, ns), staying, ns)
            pred_m[k + m] = ns_e * (w @ (a_m @ xs))
        f.mode[:] = commanded
        actual[k] = -stepper.step(t, dt_s).total_kw
    ok = ~np.isnan(pred_m)
    scale = max(float(np.mean(np.abs(actual))), 1e-9)
    return {
        "next_step_mae_kw": float(np.mean(np.abs(pred1 - actual))),
        "ahead_mae_kw": float(np.mean(np.abs(pred_m[ok] - actual[ok]))) if ok.any() else float("nan"),
        "mean_abs_power_kw": scale,
        "next_step_rel": float(np.mean(np.abs(pred1 - actual)) / scale),
        "ahead_rel": float(np.mean(np.abs(pred_m[ok] - actual[ok])) / scale) if ok.any() else float("nan"),
    }
