"""The evsite charger schedule: how many chargers, and the hourly EV power limit, at minimum TOU cost.

Model (``--method evsite``), 24 hourly periods of one representative day (the baseload cluster's):

    variables  N  integer >= 0             chargers installed
               P_t in [0, headroom_t]      EV power limit in hour t (kW); the ALM never exceeds it
    subject to P_t <= evse_kw * occ_t * N  only plugged-in cars draw power (occ_t from session data)
               sum_t P_t  = e * N          every charger's expected daily energy e (kWh) is served
    objective  min  sum_t price_t P_t  -  W N,   W = max(price) * e + 1

The weight W makes one more charger worth more than the energy cost it can ever add, so the optimum is
lexicographic: the largest charger count the headroom can serve, then the cheapest schedule for it. Feasible
N are downward closed (scale P by (N-1)/N), so this is exactly "maximise chargers, then minimise cost".

Solved with GEKKO's APOPT (the mixed-integer solver; the default IPOPT would relax N to a fraction) and
verified in tests against scipy's HiGHS ``milp`` on the same data (``solve_evsite_milp``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planning.errors import PlanningError

_APOPT_OPTIONS = [
    "minlp_gap_tol 1.0e-6",
    "minlp_integer_tol 1.0e-6",
    "minlp_maximum_iterations 2000",
    "nlp_maximum_iterations 500",
    "objective_convergence_tolerance 1.0e-8",
]


@dataclass
class Schedule:
    """A solved plan. ``power_kw[t]`` is the site's EV limit in hour t; ``chargers`` an exact integer."""

    method: str
    chargers: int
    power_kw: np.ndarray
    active_chargers: np.ndarray  # chargers drawing power per hour
    setpoint_kw: np.ndarray  # per-charger power per hour
    cost_per_day: float  # $ (prices are cents/kWh)
    objective: float
    solver: str
    extra: dict = field(default_factory=dict)


def _weight(prices: np.ndarray, energy: float) -> float:
    return float(np.max(prices)) * energy + 1.0


def _check_inputs(headroom: np.ndarray, prices: np.ndarray, occupancy: np.ndarray) -> None:
    for name, arr in (("headroom", headroom), ("prices", prices), ("occupancy", occupancy)):
        if arr.shape != (24,) or not np.all(np.isfinite(arr)):
            raise PlanningError(f"{name} must be 24 finite hourly values (got shape {arr.shape})")


def evsite_bounds(headroom_kw: np.ndarray, energy_kwh: float) -> int:
    """Upper bound on N from the energy balance (e*N = sum P <= sum headroom)."""
    return math.floor(float(np.clip(headroom_kw, 0, None).sum()) / energy_kwh + 1e-9)


def energy_bound_chargers(
    headroom_kw: np.ndarray, energy_kwh: float, evse_kw: float, occupancy: np.ndarray, rel_tol: float = 1e-9
) -> int:
    """The largest N of the evsite model (module docstring) in closed form: what ``solve_evsite_milp`` maximises.

    Why no solver: N is feasible iff some P with ``0 <= P_t <= min(headroom_t, evse_kw * occ_t * N)`` sums to
    ``e * N``, i.e. iff ``g(N) = sum_t min(headroom_t, evse_kw * occ_t * N) - e * N >= 0``. g is concave with
    g(0) = 0, so the feasible N form one interval from 0 and the answer is its largest integer, found by
    bisection on 0..(the energy bound) instead of a MILP (tested equal to HiGHS' answer). The cost-minimising
    schedule for that N is GEKKO's cost model, cross-checked by HiGHS on every plan.
    """
    h = np.clip(np.asarray(headroom_kw, dtype=float), 0.0, None)
    occ = np.asarray(occupancy, dtype=float)
    _check_inputs(h, np.zeros(24), occ)
    per_charger = evse_kw * occ

    def feasible(n: int) -> bool:
        need = energy_kwh * n
        return float(np.minimum(h, per_charger * n).sum()) >= need - rel_tol * max(1.0, need)

    lo, hi = 0, evsite_bounds(h, energy_kwh)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def solve_evsite_gekko(
    headroom_kw: np.ndarray, prices: np.ndarray, energy_kwh: float, evse_kw: float, occupancy: np.ndarray
) -> Schedule:
    """The evsite model in GEKKO/APOPT (local solver; its run folder is removed afterwards)."""
    from gekko import GEKKO

    h = np.clip(np.asarray(headroom_kw, dtype=float), 0.0, None)
    c = np.asarray(prices, dtype=float)
    occ = np.asarray(occupancy, dtype=float)
    _check_inputs(h, c, occ)
    n_ub = evsite_bounds(h, energy_kwh)
    if n_ub == 0:
        return _schedule("evsite", 0, np.zeros(24), c, evse_kw, 0.0, "trivial (no headroom)")
    w = _weight(c, energy_kwh)
    m = GEKKO(remote=False)
    try:
        n = m.Var(value=0, lb=0, ub=n_ub, integer=True, name="n_chargers")
        p = [m.Var(value=0.0, lb=0.0, ub=float(h[t]), name=f"p{t}") for t in range(24)]
        for t in range(24):
            m.Equation(p[t] <= evse_kw * float(occ[t]) * n)
        m.Equation(m.sum(p) == energy_kwh * n)
        m.Minimize(m.sum([float(c[t]) * p[t] for t in range(24)]) - w * n)
        m.options.SOLVER = 1  # APOPT: honours integer=True
        m.solver_options = list(_APOPT_OPTIONS)
        try:
            m.solve(disp=False, debug=1)
        except Exception as err:  # GEKKO raises a bare Exception with the solver's message
            raise PlanningError(f"evsite optimisation failed in APOPT: {str(err).strip().splitlines()[0]}") from None
        if m.options.APPSTATUS != 1:
            raise PlanningError("evsite optimisation: APOPT did not report a successful solution")
        n_val = float(n.value[0])
        power = np.array([float(v.value[0]) for v in p])
    finally:
        m.cleanup()  # GEKKO writes its model and solver files to a temp folder per model
    chargers = round(n_val)
    if abs(n_val - chargers) > 1e-6:
        raise PlanningError(f"evsite optimisation returned a fractional charger count ({n_val})")
    power = np.clip(power, 0.0, h)
    obj = float(c @ power - w * chargers)
    sched = _schedule("evsite", chargers, power, c, evse_kw, obj, "gekko-apopt")
    sched.extra["n_from_solver"] = n_val  # kept to show the count is integral as solved, not only rounded
    return sched


def solve_evsite_milp(
    headroom_kw: np.ndarray, prices: np.ndarray, energy_kwh: float, evse_kw: float, occupancy: np.ndarray
) -> Schedule:
    """The same model as ``solve_evsite_gekko``, written as matrices for scipy's HiGHS ``milp`` (reference)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    h = np.clip(np.asarray(headroom_kw, dtype=float), 0.0, None)
    c = np.asarray(prices, dtype=float)
    occ = np.asarray(occupancy, dtype=float)
    _check_inputs(h, c, occ)
    n_ub = evsite_bounds(h, energy_kwh)
    w = _weight(c, energy_kwh)
    # x = [N, P_0..P_23]
    cost = np.concatenate(([-w], c))
    a_cap = np.hstack((-(evse_kw * occ)[:, None], np.eye(24)))  # P_t - evse*occ_t*N <= 0
    a_energy = np.concatenate(([-energy_kwh], np.ones(24)))[None, :]  # sum P - e N = 0
    cons = [LinearConstraint(a_cap, -np.inf, 0.0), LinearConstraint(a_energy, 0.0, 0.0)]
    bounds = Bounds(np.zeros(25), np.concatenate(([n_ub], h)))
    integrality = np.concatenate(([1], np.zeros(24)))
    res = milp(cost, constraints=cons, bounds=bounds, integrality=integrality, options={"mip_rel_gap": 1e-9})
    if not res.success:
        raise PlanningError(f"evsite reference MILP failed: {res.message}")
    chargers = round(res.x[0])
    power = np.clip(res.x[1:], 0.0, h)
    return _schedule("evsite", chargers, power, c, evse_kw, float(res.fun), "scipy-highs-milp")


def _schedule(
    method: str, chargers: int, power: np.ndarray, prices: np.ndarray, evse_kw: float, obj: float, solver: str
) -> Schedule:
    active = np.minimum(np.ceil(power / evse_kw - 1e-9), chargers).astype(int)
    setpoint = np.where(active > 0, power / np.maximum(active, 1), 0.0)
    return Schedule(
        method=method,
        chargers=int(chargers),
        power_kw=power,
        active_chargers=active,
        setpoint_kw=setpoint,
        cost_per_day=float(prices @ power) / 100.0,
        objective=obj,
        solver=solver,
    )


DAYS_PER_MONTH = 365.25 / 12  # a monthly demand charge spread over the days of an average month


@dataclass
class CostSchedule:
    """The cheapest hourly EV power for a day's energy, within the hourly capacity (one solver's answer)."""

    power_kw: np.ndarray
    energy_cost_per_day: float  # $ (prices are cents/kWh)
    demand_charge_per_day: float  # $: the EV's share of the monthly peak charge, per day
    peak_kw: float  # site peak of the day (building + EV)
    objective: float  # $/day: energy + demand_charge_usd_per_kw_month / DAYS_PER_MONTH x peak
    solver: str


def _cost_inputs(cap_kw, prices, base_kw, energy_kwh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cap = np.clip(np.asarray(cap_kw, dtype=float), 0.0, None)
    c = np.asarray(prices, dtype=float)
    base = np.asarray(base_kw, dtype=float)
    _check_inputs(cap, c, base)
    if energy_kwh > cap.sum() + 1e-6:
        raise PlanningError(
            f"the day's EV energy ({energy_kwh:.1f} kWh) exceeds the hourly capacity ({cap.sum():.1f} kWh)"
        )
    return cap, c, base


def _cost_result(power, c, base, demand_charge, obj, solver) -> CostSchedule:
    peak = float((base + power).max())
    dc = demand_charge / DAYS_PER_MONTH * (peak - float(base.max()))
    return CostSchedule(power, float(c @ power) / 100.0, dc, peak, obj, solver)


def solve_cost_gekko(
    cap_kw: np.ndarray, prices: np.ndarray, base_kw: np.ndarray, energy_kwh: float, demand_charge: float = 0.0
) -> CostSchedule:
    """min sum_t price_t P_t / 100 + dc / DAYS_PER_MONTH * D  s.t.  0 <= P_t <= cap_t, sum P = E,
    D >= base_t + P_t (the day's site peak, on which the monthly demand charge is paid). GEKKO/APOPT."""
    from gekko import GEKKO

    cap, c, base = _cost_inputs(cap_kw, prices, base_kw, energy_kwh)
    w = demand_charge / DAYS_PER_MONTH
    m = GEKKO(remote=False)
    try:
        p = [m.Var(value=0.0, lb=0.0, ub=float(cap[t]), name=f"p{t}") for t in range(24)]
        d = m.Var(value=float(base.max()), lb=float(base.max()), name="peak")
        for t in range(24):
            m.Equation(d >= float(base[t]) + p[t])
        m.Equation(m.sum(p) == float(energy_kwh))
        m.Minimize(m.sum([float(c[t]) / 100.0 * p[t] for t in range(24)]) + w * d)
        m.options.SOLVER = 1
        m.solver_options = list(_APOPT_OPTIONS)
        try:
            m.solve(disp=False, debug=1)
        except Exception as err:  # GEKKO raises a bare Exception with the solver's message
            raise PlanningError(f"cost optimisation failed in APOPT: {str(err).strip().splitlines()[0]}") from None
        power = np.clip(np.array([float(v.value[0]) for v in p]), 0.0, cap)
        peak = float(d.value[0])
    finally:
        m.cleanup()
    return _cost_result(power, c, base, demand_charge, float(c @ power) / 100.0 + w * peak, "gekko-apopt")


def solve_cost_highs(
    cap_kw: np.ndarray, prices: np.ndarray, base_kw: np.ndarray, energy_kwh: float, demand_charge: float = 0.0
) -> CostSchedule:
    """The same LP as ``solve_cost_gekko`` as matrices for scipy's HiGHS (the cross-check on every plan)."""
    from scipy.optimize import linprog

    cap, c, base = _cost_inputs(cap_kw, prices, base_kw, energy_kwh)
    w = demand_charge / DAYS_PER_MONTH
    cost = np.concatenate((c / 100.0, [w]))  # x = [P_0..P_23, D]
    a_ub = np.hstack((np.eye(24), -np.ones((24, 1))))  # P_t - D <= -base_t
    a_eq = np.concatenate((np.ones(24), [0.0]))[None, :]
    bounds = [(0.0, float(cap[t])) for t in range(24)] + [(float(base.max()), None)]
    res = linprog(cost, A_ub=a_ub, b_ub=-base, A_eq=a_eq, b_eq=[energy_kwh], bounds=bounds, method="highs")
    if not res.success:
        raise PlanningError(f"cost optimisation (HiGHS) failed: {res.message}")
    power = np.clip(res.x[:24], 0.0, cap)
    return _cost_result(power, c, base, demand_charge, float(res.fun), "scipy-highs")


def cross_check(gekko_obj: float, highs_obj: float, what: str, rel_tol: float = 1e-6) -> dict:
    """Both objective values and their relative difference; PlanningError when they disagree (loudly)."""
    diff = abs(gekko_obj - highs_obj)
    rel = diff / max(abs(gekko_obj), abs(highs_obj), 1e-6)
    if rel > rel_tol:
        raise PlanningError(
            f"{what}: GEKKO objective {gekko_obj:.9g} and HiGHS objective {highs_obj:.9g} differ by {rel:.2e} "
            f"(relative; tolerance {rel_tol:g}): the optimisation cannot be trusted"
        )
    return {"gekko": gekko_obj, "highs": highs_obj, "abs_diff": diff, "rel_diff": rel, "rel_tol": rel_tol}
