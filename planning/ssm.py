"""State-space model (SSM) of an aggregated EV fleet, after Wang et al., "State Space Model of Aggregated
Electric Vehicles for Frequency Regulation", IEEE Trans. Smart Grid 11(2), 2020 (MODELS.md section 2).

State: an online EV is charging (CS), idle (IS) or discharging (DS) and in one of ``ns`` equal SoC bins;
``x`` (length 3·ns, order ``[CS_1..CS_ns, IS_1..IS_ns, DS_1..DS_ns]``) holds the *shares* of online EVs.

    x(k+1) = A (x(k) + B u(k) + C v(k)),  B = [-I; I; 0],  C = [0; -I; I]

``u > 0`` moves CS -> IS, ``v > 0`` moves IS -> DS (negative values move back). The output is the fleet's
*injection* ``P = Ne · D x`` with ``D = [-Pch, 0, +Pdis]`` (the paper's sign: negative = consumption; the
fleet simulator's ``power_kw`` is the opposite sign). ``A`` (columns sum to 1) is estimated by counting the
observed transitions of EVs from one step to the next (``transition_counts``, ``StateSpaceModel.fit``).

Pure functions on numpy arrays: no clock, no I/O beyond ``save``/``load``.

Defects of the seed's ``ev_ssm`` as published, and what this module does instead:

- Online update of A did nothing: its factor was ``int(lr / (1 - lr))``, i.e. 0 for lr = 0.1.
  Here ``partial_fit`` blends ``A <- (1 - lr) A + lr A_batch`` for every column the batch observed.
- In test mode the SoC was updated twice per step, so A described 8 s steps while used for 4 s steps.
  ``planning.ssm_estimate`` advances the fleet exactly once per observed transition.
- Pave came from a kernel-density integral that undershoots the mean (5.61 kW against 6.00 kW).
  ``fleet_powers`` takes the plain mean of the online EVs' rated powers (separately for charge and
  discharge).
- The control signal was not clipped (a share of 1.277 was seen). ``control`` never moves more than the
  share available in a state, and ``u``/``v`` are bounded by ``x``.
- Idle EVs were counted as charging in the power update: ``output_kw`` weights IS by 0.
- Methods read a module-level global instance instead of ``self``: everything here is a function of its
  arguments or a method of its own instance.

Boundary handling (``boundary=True`` here and in ``controller.aggregator.core``): the plain model believes a
car does what it was told, so a full car commanded to charge counts as drawing Pave (it draws nothing), and
regulation down may "move" full cars to charging or regulation up discharge nearly empty ones. With boundary
handling, full cars (SoC >= ``SOC_FULL``) are out of service for charging, empty cars (<= ``SOC_EMPTY``) for
discharging, low-SoC cars (< ``soc_force_charge``) and cars that need all their remaining time to reach the
demanded SoC are forced to charge and excluded from the control.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, SOC_MAX, SOC_MIN

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: A car at or above this SoC cannot charge any more (the simulator's/BMS's stop point).
SOC_FULL = SOC_MAX - 1e-6
#: A car at or below this SoC cannot discharge any more.
SOC_EMPTY = SOC_MIN + 1e-6


# ----------------------------------------------------------------------------------------- state vector


def soc_bin(soc: FloatArray, ns: int) -> IntArray:
    """SoC interval 0..ns-1 of each EV (equal width over [0, 1]; SoC 1.0 falls in the top bin)."""
    b = (soc * ns).astype(np.intp)
    np.clip(b, 0, ns - 1, out=b)
    return b


def state_index(mode: NDArray[np.integer], soc: FloatArray, ns: int) -> IntArray:
    """Index 0..3·ns-1 of each EV's (mode, SoC bin) state."""
    return mode.astype(np.intp) * ns + soc_bin(soc, ns)


def effective_mode(commanded: NDArray[np.int8], soc: FloatArray, boundary: bool) -> NDArray[np.int8]:
    """The mode the model assumes: the commanded one, or (with boundary handling) idle for cars at a bound.

    A full car told to charge draws nothing and an empty car told to discharge feeds nothing; only the
    boundary-aware model knows it.
    """
    if not boundary:
        return commanded
    m = commanded.copy()
    m[(commanded == CHARGING) & (soc >= SOC_FULL)] = IDLE
    m[(commanded == DISCHARGING) & (soc <= SOC_EMPTY)] = IDLE
    return m


def shares(states: IntArray, online: NDArray[np.bool_], ns: int) -> tuple[FloatArray, int]:
    """(x, Ne): the share of online EVs in each of the 3·ns states, and the number online."""
    counts = np.bincount(states[online], minlength=3 * ns).astype(float)
    ne = int(online.sum())
    return (counts / ne if ne else counts), ne


def transition_counts(prev: IntArray, nxt: IntArray, mask: NDArray[np.bool_], ns: int) -> FloatArray:
    """counts[j, i] = number of EVs (where ``mask``) that went from state i to state j in one step."""
    m = 3 * ns
    flat = np.bincount(nxt[mask] * m + prev[mask], minlength=m * m)
    return flat.reshape(m, m).astype(float)


def control_matrices(ns: int) -> tuple[FloatArray, FloatArray]:
    """B = [-I; I; 0] and C = [0; -I; I] (3·ns x ns)."""
    eye, zero = np.eye(ns), np.zeros((ns, ns))
    return np.vstack([-eye, eye, zero]), np.vstack([zero, -eye, eye])


# -------------------------------------------------------------------------------------------- the model


class StateSpaceModel:
    """The transition matrix A and what it predicts (scikit-learn style: learned state ends in ``_``).

    ``fit(counts)`` normalises observed transition counts column by column; a state never observed keeps
    its previous column (or stays put, the identity, before any fit). ``partial_fit(counts)`` is the online
    update with ``learning_rate``.
    """

    def __init__(self, ns: int = 20, learning_rate: float = 0.1) -> None:
        if ns < 2:
            raise ValueError(f"need at least 2 SoC bins, got {ns}")
        if not 0.0 <= learning_rate <= 1.0:
            raise ValueError(f"learning_rate must be in [0, 1], got {learning_rate}")
        self.ns = ns
        self.learning_rate = learning_rate
        self.A_: FloatArray = np.eye(3 * ns)
        self.observed_: NDArray[np.bool_] = np.zeros(3 * ns, dtype=bool)
        self.B, self.C = control_matrices(ns)

    def _normalise(self, counts: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
        m = 3 * self.ns
        if counts.shape != (m, m):
            raise ValueError(f"transition counts must be {m}x{m}, got {counts.shape}")
        col = counts.sum(axis=0)
        seen = col > 0
        a = self.A_.copy()
        a[:, seen] = counts[:, seen] / col[seen]
        return a, seen

    def fit(self, counts: FloatArray) -> StateSpaceModel:
        """Estimate A from a whole batch of transition counts (``transition_counts``)."""
        self.A_, seen = self._normalise(counts)
        self.observed_ = self.observed_ | seen
        return self

    def partial_fit(self, counts: FloatArray) -> StateSpaceModel:
        """Online update: ``A <- (1 - lr) A + lr A_batch`` on the columns this batch observed.

        (The seed multiplied by ``int(lr / (1 - lr))``, which is 0 for lr < 0.5: its A never moved.)
        A column seen for the first time is taken as observed (blending with the identity would bias it).
        """
        batch, seen = self._normalise(counts)
        lr = self.learning_rate
        blend = seen & self.observed_
        fresh = seen & ~self.observed_
        self.A_[:, blend] = (1 - lr) * self.A_[:, blend] + lr * batch[:, blend]
        self.A_[:, fresh] = batch[:, fresh]
        self.observed_ |= seen
        return self

    def predict(
        self, x: FloatArray, u: FloatArray | None = None, v: FloatArray | None = None, steps: int = 1
    ) -> FloatArray:
        """x(k+steps): the control is applied once, then A advances ``steps`` times."""
        y = x.copy()
        if u is not None:
            y += self.B @ u
        if v is not None:
            y += self.C @ v
        if steps == 1:
            return self.A_ @ y
        return np.linalg.matrix_power(self.A_, steps) @ y

    def save(self, path: str | Path) -> None:
        """Write A (and which columns were observed) to an ``.npz`` file."""
        np.savez(path, A=self.A_, observed=self.observed_, ns=self.ns, learning_rate=self.learning_rate)

    @classmethod
    def load(cls, path: str | Path) -> StateSpaceModel:
        """Read a model written by ``save``; a clear error for a file that is not one."""
        try:
            with np.load(path) as z:
                ns, lr, a, obs = int(z["ns"]), float(z["learning_rate"]), z["A"], z["observed"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{path}: not a saved state-space model ({err})") from None
        model = cls(ns, lr)
        if a.shape != (3 * ns, 3 * ns) or not np.allclose(a.sum(axis=0), 1.0):
            raise ValueError(f"{path}: A must be {3 * ns}x{3 * ns} with columns summing to 1")
        model.A_, model.observed_ = a, obs.astype(bool)
        return model


# ------------------------------------------------------------------------------------ powers and output


@dataclass(frozen=True)
class FleetPowers:
    """Mean rated powers (kW) of the online EVs: the model's Pave for each direction."""

    charge_kw: float
    discharge_kw: float


def fleet_powers(p_charge_kw: FloatArray, p_discharge_kw: FloatArray, online: NDArray[np.bool_]) -> FleetPowers:
    """Plain means over the online EVs (not the seed's kernel-density integral, which undershot)."""
    if not online.any():
        return FleetPowers(0.0, 0.0)
    return FleetPowers(float(p_charge_kw[online].mean()), float(p_discharge_kw[online].mean()))


def output_weights(ns: int, powers: FleetPowers) -> FloatArray:
    """D: the injection (kW) per EV in each state (-Pch charging, 0 idle, +Pdis discharging)."""
    return np.concatenate([np.full(ns, -powers.charge_kw), np.zeros(ns), np.full(ns, powers.discharge_kw)])


def output_kw(x: FloatArray, ne: int, powers: FleetPowers) -> float:
    """Fleet injection ``Ne · D x`` in kW (negative while the fleet consumes)."""
    ns = x.shape[0] // 3
    return float(ne * (output_weights(ns, powers) @ x))


# ------------------------------------------------------------------------------------------- control


@dataclass
class Availability:
    """Shares of online EVs (per SoC bin) that each switching move may use.

    ``cs_to_is``: charging cars allowed to stop; ``is_to_ds``: idle cars allowed to discharge;
    ``cs_to_ds_frac``: of the cars stopped in a bin, the fraction that may go on to discharge;
    ``ds_to_is``: discharging cars (may always stop); ``is_to_cs``: idle cars able to charge.
    """

    cs_to_is: FloatArray
    is_to_ds: FloatArray
    cs_to_ds_frac: FloatArray
    ds_to_is: FloatArray
    is_to_cs: FloatArray

    def up_kw(self, ne: int, powers: FleetPowers) -> float:
        """Largest injection increase available now (CS -> IS, then IS -> DS)."""
        moved = self.cs_to_is.sum()
        dis = self.is_to_ds.sum() + (self.cs_to_is * self.cs_to_ds_frac).sum()
        return float(ne * (moved * powers.charge_kw + dis * powers.discharge_kw))

    def down_kw(self, ne: int, powers: FleetPowers) -> float:
        """Largest injection decrease available now (DS -> IS, then IS -> CS), as a positive number."""
        return float(ne * (self.ds_to_is.sum() * powers.discharge_kw + self.is_to_cs.sum() * powers.charge_kw))


def _take_in_order(request: float, caps: FloatArray, order: IntArray) -> FloatArray:
    """Fill ``request`` (a share) from ``caps`` bin by bin in ``order``; vectorised greedy."""
    c = caps[order]
    before = np.concatenate([[0.0], np.cumsum(c)[:-1]])
    take = np.clip(request - before, 0.0, c)
    out = np.zeros_like(caps)
    out[order] = take
    return out


def control(delta_kw: float, avail: Availability, ne: int, powers: FleetPowers) -> tuple[FloatArray, FloatArray]:
    """Shares (u, v) per SoC bin that change the fleet injection by ``delta_kw`` (Wang et al., eq. for r_u/r_v).

    Regulation up (``delta_kw > 0``): CS -> IS first, highest SoC bins first; what is still missing comes
    from IS -> DS, highest SoC first (cars just stopped may continue to DS where allowed). Regulation down
    mirrors it: DS -> IS then IS -> CS, lowest SoC first. Never moves more than is available (the seed's
    unclipped 1.277 share cannot happen), so the achieved change may be smaller than requested.
    """
    ns = avail.cs_to_is.shape[0]
    u, v = np.zeros(ns), np.zeros(ns)
    if ne == 0 or delta_kw == 0.0:
        return u, v
    high_first = np.arange(ns)[::-1]
    low_first = np.arange(ns)
    if delta_kw > 0:
        pch, pdis = max(powers.charge_kw, 1e-9), max(powers.discharge_kw, 1e-9)
        r_u = delta_kw / (ne * pch)
        u = _take_in_order(r_u, avail.cs_to_is, high_first)
        rest_kw = delta_kw - ne * u.sum() * pch
        if rest_kw > 1e-9:
            caps = avail.is_to_ds + u * avail.cs_to_ds_frac
            v = _take_in_order(rest_kw / (ne * pdis), caps, high_first)
        return u, v
    pch, pdis = max(powers.charge_kw, 1e-9), max(powers.discharge_kw, 1e-9)
    need = -delta_kw
    back_v = _take_in_order(need / (ne * pdis), avail.ds_to_is, low_first)
    rest_kw = need - ne * back_v.sum() * pdis
    back_u = np.zeros(ns)
    if rest_kw > 1e-9:
        back_u = _take_in_order(rest_kw / (ne * pch), avail.is_to_cs, low_first)
    return -back_u, -back_v


def controlled_output_kw(x: FloatArray, u: FloatArray, v: FloatArray, ne: int, powers: FleetPowers) -> float:
    """Injection right after applying (u, v) to x (before A advances)."""
    b, c = control_matrices(x.shape[0] // 3)
    return output_kw(x + b @ u + c @ v, ne, powers)


def capacity_forecast(
    model: StateSpaceModel,
    x: FloatArray,
    avail: Availability,
    ne_future: int,
    powers: FleetPowers,
    horizon_steps: int,
) -> tuple[float, float]:
    """(up_kw, down_kw) the fleet can offer over the next ``horizon_steps``: the worst case over the horizon.

    A moves the shares (cars drift up the SoC bins while charging, full ones turn idle); the share of each
    mode's cars that may make each move is taken as it is now, per mode (not per SoC bin: a bin empty now may
    fill within the horizon). ``ne_future`` counts the EVs still plugged in at the end of the horizon.
    """
    ns = model.ns

    def ratio(num: float, den: float) -> float:
        return num / den if den > 0 else 0.0

    cs0, is0, ds0 = x[:ns].sum(), x[ns : 2 * ns].sum(), x[2 * ns :].sum()
    r_cs = ratio(avail.cs_to_is.sum(), cs0)
    r_csd = ratio((avail.cs_to_is * avail.cs_to_ds_frac).sum(), cs0)
    r_isd = ratio(avail.is_to_ds.sum(), is0)
    r_isc = ratio(avail.is_to_cs.sum(), is0 + ds0)
    pch, pdis = powers.charge_kw, powers.discharge_kw
    up, down = np.inf, np.inf
    a_end = np.linalg.matrix_power(model.A_, max(horizon_steps, 0))
    for y in (x, a_end @ x):
        cs, is_, ds = y[:ns].sum(), y[ns : 2 * ns].sum(), y[2 * ns :].sum()
        up = min(up, ne_future * (r_cs * cs * pch + (r_isd * is_ + r_csd * cs) * pdis))
        down = min(down, ne_future * (ds * pdis + r_isc * (is_ + ds) * pch))
    return float(up), float(down)


def mode_outputs(x: FloatArray, ne: int, powers: FleetPowers) -> dict[str, float]:
    """The paper's mode outputs (kW): y_a (CS->IS), y_b (IS->DS after a), y_c (DS->IS), y_d (IS->CS after c),
    and the range P_u (all discharging) / P_l (all charging)."""
    ns = x.shape[0] // 3
    cs, is_, ds = x[:ns].sum(), x[ns : 2 * ns].sum(), x[2 * ns :].sum()
    pch, pdis = powers.charge_kw, powers.discharge_kw
    return {
        "y_a": ne * cs * pch,
        "y_b": ne * (cs + is_) * pdis,
        "y_c": -ne * ds * pdis,
        "y_d": -ne * (is_ + ds) * pch,
        "P_u": ne * (cs + is_ + ds) * pdis,
        "P_l": -ne * (cs + is_ + ds) * pch,
    }
