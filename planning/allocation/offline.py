"""The offline optima: what any schedule could do knowing every session in advance (HiGHS LP and MILP).

Why two optima: the schedule that delivers the most energy and the one that serves the most sessions fully
are different schedules, and an online policy is read against both. Variables are the current of each
session in each period it is present (0..32 A, continuous, as ACN-Sim's EVSEs); constraints are the cap in
every period and each session's request. ``offline_optimum_sessions`` is lexicographic: first the most
sessions served (a binary per session, "short by less than 0.1 kWh"), then the most energy with that count
held.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from planning.allocation.model import FloatArray
from planning.allocation.replay import SERVED_TOL_KWH, ReplaySessions


class OptimumError(RuntimeError):
    """HiGHS did not reach an optimum (time limit, numerical trouble); the message says which."""


def _grid(rs: ReplaySessions) -> tuple[np.ndarray, np.ndarray]:
    """(session, period) of every variable: one per period each car is present."""
    stay = rs.departure - rs.arrival
    session = np.repeat(np.arange(len(rs)), stay)
    offsets = np.arange(stay.sum()) - np.repeat(np.cumsum(stay) - stay, stay)
    return session, rs.arrival[session] + offsets


def _matrices(rs: ReplaySessions) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """Energy per variable-ampere: rows sessions (energy) and periods (power); plus the variable indices."""
    session, period = _grid(rs)
    nvar = session.size
    cols = np.arange(nvar)
    kwh_per_a = rs.kw_per_a * rs.period_h
    energy = sp.csr_matrix((np.full(nvar, kwh_per_a), (session, cols)), shape=(len(rs), nvar))
    power = sp.csr_matrix((np.full(nvar, rs.kw_per_a), (period, cols)), shape=(max(rs.periods, 1), nvar))
    return energy, power, session, period


def _delivered(rs: ReplaySessions, x: np.ndarray) -> tuple[FloatArray, FloatArray]:
    energy, power, _, _ = _matrices(rs)
    delivered = np.minimum(energy @ x, rs.requested_kwh)
    return delivered, (power @ x)[: rs.periods]


def offline_optimum_energy(rs: ReplaySessions, cap_kw: float) -> tuple[FloatArray, FloatArray]:
    """The most energy any schedule delivers under the cap: (delivered per session, power per period)."""
    if len(rs) == 0:
        return np.zeros(0), np.zeros(0)
    energy, power, _, _ = _matrices(rs)
    A = sp.vstack([energy, power]).tocsr()
    b = np.concatenate([rs.requested_kwh, np.full(power.shape[0], cap_kw)])
    c = -np.asarray(energy.sum(axis=0)).ravel()
    res = linprog(c, A_ub=A, b_ub=b, bounds=(0.0, rs.max_a), method="highs")
    if res.status != 0:
        raise OptimumError(f"offline energy LP: HiGHS stopped without an optimum ({res.message})")
    return _delivered(rs, res.x)


def offline_optimum_sessions(
    rs: ReplaySessions, cap_kw: float, time_limit_s: float = 120.0
) -> tuple[FloatArray, FloatArray, str]:
    """The most sessions served under the cap, then the most energy: (delivered, power, note).

    The note is empty when HiGHS proved both stages optimal, else it says which stage stopped at its time
    limit and with what gap (the row is then a lower bound, and the table says so).
    """
    if len(rs) == 0:
        return np.zeros(0), np.zeros(0), ""
    energy, power, _, _ = _matrices(rs)
    n, nvar = energy.shape
    # Variables: currents (nvar), then served flags (n). served_i = 1 -> energy_i >= request_i - tolerance.
    need = np.maximum(rs.requested_kwh - SERVED_TOL_KWH * 0.99, 0.0)
    serve = sp.hstack([energy, -sp.diags(need)]).tocsr()  # energy - need*y >= 0
    cap_rows = sp.hstack([power, sp.csr_matrix((power.shape[0], n))]).tocsr()
    req_rows = sp.hstack([energy, sp.csr_matrix((n, n))]).tocsr()
    constraints = [
        LinearConstraint(serve, 0.0, np.inf),
        LinearConstraint(cap_rows, -np.inf, cap_kw),
        LinearConstraint(req_rows, -np.inf, rs.requested_kwh),
    ]
    bounds = Bounds(np.zeros(nvar + n), np.concatenate([np.full(nvar, rs.max_a), np.ones(n)]))
    integrality = np.concatenate([np.zeros(nvar), np.ones(n)])
    notes = []
    count = np.concatenate([np.zeros(nvar), -np.ones(n)])
    first = milp(
        count, constraints=constraints, bounds=bounds, integrality=integrality, options={"time_limit": time_limit_s}
    )
    if first.x is None:
        raise OptimumError(f"offline sessions MILP: no solution ({first.message})")
    if first.status != 0:
        notes.append(f"sessions stage stopped at its time limit (gap {first.mip_gap:.2%})")
    best = round(-first.fun)
    held = LinearConstraint(sp.csr_matrix(-count), best, np.inf)
    kwh = np.concatenate([-np.asarray(energy.sum(axis=0)).ravel(), np.zeros(n)])
    second = milp(
        kwh,
        constraints=[*constraints, held],
        bounds=bounds,
        integrality=integrality,
        options={"time_limit": time_limit_s},
    )
    x = second.x if second.x is not None else first.x
    if second.status != 0:
        notes.append(f"energy stage stopped at its time limit (gap {getattr(second, 'mip_gap', float('nan')):.2%})")
    delivered, pw = _delivered(rs, x[:nvar])
    return delivered, pw, "; ".join(notes)
