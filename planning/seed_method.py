"""``--method seed``: the seed study's charger model, with its published defects fixed.

The study's model (MODELS.md §1, steps 5-6): 24 hourly periods; ``demand_max`` = max(baseload) rounded up to
the next 100 kW; ``cap_low_t = demand_max - baseload_t``; ``cap_up = 0.8 * demand_max`` if
``max(cap_low) < 0.9 * demand_max`` else ``demand_max``, and ``cap_low`` scaled by 0.8 if
``max(cap_low) >= cap_up``; integer active chargers ``n_t``; setpoint ``x_t`` in [3, 6.6] kW (curtailment on)
or 6.6 kW; assigned capacity ``C_t`` between the bounds; ``k * C_t = n_t * x_t`` with k = 1.1; minimise
``sum_t TOU_t n_t x_t``. Outputs: max n (the charger count), min n, cost per day = sum TOU n x / 100.

Ambiguities and defects, and what this module chooses:

1. ``C_t >= cap_low_t`` with ``n x = 1.1 C`` forces EV power to at least 1.1 x the headroom, so the site
   exceeds ``demand_max`` every hour (323 kW against 300 kW in a measured run). Chosen: ``cap_low_t`` is the
   hour's headroom and bounds the assigned capacity from ABOVE, the safety factor applies to the EV power
   (``C_t = k * n_t * x_t``, so EV power is at most headroom / 1.1), and ``C_t <= cap_up`` still holds.
2. Without a lower bound the cost-minimising optimum is "no charging". The seed's intent (fill the headroom)
   is kept by a lower bound one charger below the upper one: ``C_t >= max(0, U_t - k * x_max)``. It is always
   feasible, because the reachable n*x values cover [x_min, inf) (6.6 n >= 3 (n + 1) for n >= 1).
3. ``integer=True`` was ignored by GEKKO's default solver (fractional counts like 38.78), APOPT then found the
   model infeasible and ``debug=False`` hid it ("1 charger, $9.27/day"); the except branch discarded its
   retry. Chosen: APOPT (SOLVER=1) always, a failed solve is an error, counts are checked to be integral.
4. ``n_t * x_t`` is bilinear. With x_t free in [x_min, x_max] it is exactly ``y_t`` with
   ``x_min n_t <= y_t <= x_max n_t`` (``y_t = x_max n_t`` without curtailment), which makes the model a MILP
   that APOPT solves to global optimality; ``x_t = y_t / n_t`` is reported.
5. The cost leaves n_t undetermined (any n with x_min n <= y <= x_max n costs the same). Chosen tie-break:
   prefer more chargers at lower setpoints (what curtailment is for), a tiny -1e-4 per charger-hour.
6. ``n_t`` lower bound 1 and upper bound ``max(cap_low)/6``: kept (floored), except that an hour whose
   headroom cannot carry one charger at the minimum setpoint gets lower bound 0 instead of infeasibility.
7. IMODE 6 (dynamic) treated hour 0 as an initial condition, so the seed's min n skipped t = 0. This model
   has no dynamics: it is 24 explicit periods (IMODE 3), all hours count; min n is reported over all hours
   and, for comparison, over t >= 1.
8. TOU prices: hourly cents/kWh of the tier in force; the tier dates are MM-DD (the seed's ``01/07/2022``
   parsed as 7 January). The plan uses the mean price of the baseload cluster's days.
"""

from __future__ import annotations

import math

import numpy as np

from planning.errors import PlanningError
from planning.optimise import _APOPT_OPTIONS, Schedule

TIE_BREAK = 1e-4


def seed_bounds(baseload_kw: np.ndarray) -> tuple[float, np.ndarray, float]:
    """The study's demand_max, cap_low (per hour) and cap_up, exactly as published."""
    base = np.asarray(baseload_kw, dtype=float)
    peak = float(base.max())
    if peak <= 0:
        raise PlanningError("seed method: the baseload has no positive hour, so demand_max is 0")
    demand_max = math.ceil(peak / 100.0) * 100.0
    cap_low = demand_max - base
    cap_up = 0.8 * demand_max if cap_low.max() < 0.9 * demand_max else demand_max
    if cap_low.max() >= cap_up:
        cap_low = cap_low * 0.8
    return demand_max, cap_low, cap_up


def solve_seed(
    baseload_kw: np.ndarray,
    prices: np.ndarray,
    *,
    curtailment: bool = True,
    x_min: float = 3.0,
    x_max: float = 6.6,
    safety: float = 1.1,
) -> Schedule:
    """Solve the (fixed) seed model with GEKKO/APOPT; see the module docstring for every choice."""
    from gekko import GEKKO

    c = np.asarray(prices, dtype=float)
    demand_max, cap_low, cap_up = seed_bounds(baseload_kw)
    upper = np.clip(np.minimum(cap_low, cap_up), 0.0, None)
    lower = np.clip(upper - safety * x_max, 0.0, None)
    if upper.max() < safety * (x_min if curtailment else x_max):
        raise PlanningError(f"seed method: no hour has headroom for one charger (max headroom {upper.max():.1f} kW)")
    n_ub = max(1, math.floor(cap_low.max() / 6.0))
    fits_one = upper >= safety * (x_min if curtailment else x_max)
    m = GEKKO(remote=False)
    try:
        n = [m.Var(value=1, lb=int(fits_one[t]), ub=n_ub, integer=True, name=f"n{t}") for t in range(24)]
        y = [m.Var(value=0.0, lb=0.0, name=f"y{t}") for t in range(24)]
        cap = [m.Var(value=float(lower[t]), lb=float(lower[t]), ub=float(upper[t]), name=f"c{t}") for t in range(24)]
        for t in range(24):
            m.Equation(cap[t] == safety * y[t])
            if curtailment:
                m.Equation(y[t] >= x_min * n[t])
                m.Equation(y[t] <= x_max * n[t])
            else:
                m.Equation(y[t] == x_max * n[t])
        m.Minimize(m.sum([float(c[t]) * y[t] - TIE_BREAK * n[t] for t in range(24)]))
        m.options.SOLVER = 1
        m.solver_options = list(_APOPT_OPTIONS)
        try:
            m.solve(disp=False, debug=1)
        except Exception as err:  # GEKKO raises a bare Exception carrying the solver's message
            raise PlanningError(f"seed optimisation failed in APOPT: {str(err).strip().splitlines()[0]}") from None
        if m.options.APPSTATUS != 1:
            raise PlanningError("seed optimisation: APOPT did not report a successful solution")
        n_val = np.array([float(v.value[0]) for v in n])
        y_val = np.array([float(v.value[0]) for v in y])
    finally:
        m.cleanup()
    counts = np.round(n_val).astype(int)
    if np.abs(n_val - counts).max() > 1e-6:
        raise PlanningError(f"seed optimisation returned fractional charger counts ({n_val})")
    setpoint = np.where(counts > 0, y_val / np.maximum(counts, 1), 0.0)
    return Schedule(
        method="seed",
        chargers=int(counts.max()),
        power_kw=y_val,
        active_chargers=counts,
        setpoint_kw=setpoint,
        cost_per_day=float(c @ y_val) / 100.0,
        objective=float(c @ y_val - TIE_BREAK * counts.sum()),
        solver="gekko-apopt",
        extra={
            "demand_max_kw": demand_max,
            "cap_low_kw": cap_low.round(3).tolist(),
            "cap_up_kw": cap_up,
            "capacity_lower_kw": lower.round(3).tolist(),
            "capacity_upper_kw": upper.round(3).tolist(),
            "min_chargers": int(counts.min()),
            "min_chargers_from_hour1": int(counts[1:].min()),
            "max_site_load_kw": float((np.asarray(baseload_kw) + safety * y_val).max()),
        },
    )


def seed_milp(
    baseload_kw: np.ndarray,
    prices: np.ndarray,
    *,
    curtailment: bool = True,
    x_min: float = 3.0,
    x_max: float = 6.6,
    safety: float = 1.1,
) -> float:
    """The same model as ``solve_seed`` written as matrices for scipy's HiGHS ``milp``; returns its objective.

    x = [n_0..n_23, y_0..y_23]; ``C_t = safety * y_t`` is eliminated into the bounds of y.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    c = np.asarray(prices, dtype=float)
    _, cap_low, cap_up = seed_bounds(baseload_kw)
    upper = np.clip(np.minimum(cap_low, cap_up), 0.0, None)
    lower = np.clip(upper - safety * x_max, 0.0, None)
    n_ub = max(1, math.floor(cap_low.max() / 6.0))
    fits_one = upper >= safety * (x_min if curtailment else x_max)
    eye = np.eye(24)
    cost = np.concatenate((np.full(24, -TIE_BREAK), c))
    if curtailment:
        cons = [
            LinearConstraint(np.hstack((x_min * eye, -eye)), -np.inf, 0.0),  # x_min n - y <= 0
            LinearConstraint(np.hstack((-x_max * eye, eye)), -np.inf, 0.0),  # y - x_max n <= 0
        ]
    else:
        cons = [LinearConstraint(np.hstack((-x_max * eye, eye)), 0.0, 0.0)]
    bounds = Bounds(
        np.concatenate((fits_one.astype(float), lower / safety)), np.concatenate((np.full(24, n_ub), upper / safety))
    )
    integrality = np.concatenate((np.ones(24), np.zeros(24)))
    res = milp(cost, constraints=cons, bounds=bounds, integrality=integrality, options={"mip_rel_gap": 1e-9})
    if not res.success:
        raise PlanningError(f"seed reference MILP (HiGHS) failed: {res.message}")
    return float(res.fun)
