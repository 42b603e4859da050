"""A vectorised Monte Carlo EV fleet: the ground truth for the regulation aggregator and the cars behind
the simulated chargers.

Why struct-of-arrays: the seed study kept one DataFrame row per EV and updated it row by row (about 22,000
EV-steps per second, 12 s to build 10,000 EVs). Here every attribute is one numpy array over all EVs, every
operation is a whole-array expression, and a step writes into preallocated buffers, so a 4 s step of a
million EVs is a few dozen array operations.

Units: times in seconds from the fleet's time origin ``t0`` (``Fleet.epoch`` when the origin is a real
instant, e.g. for replayed sessions), energy in kWh, power in kW. Power is positive when the car charges
(draws from the grid) and negative when it discharges (feeds the grid).

Modes (``Fleet.mode``, int8) follow the state-space model's block order: ``CHARGING`` (0), ``IDLE`` (1),
``DISCHARGING`` (2). An EV is online (plugged in) while ``arrival_s <= t <= departure_s``.

Builders:

- ``seed_fleet(n, seed)``: the seed study's distributions (MODELS.md section 2): uniform rated powers
  5-7 kW, efficiencies 0.88-0.95, batteries 20-30 kWh; truncated-normal initial and demanded SoC; two
  equal arrival groups with truncated-normal start and finish times (a start after its finish is swapped).
- ``behaviour_fleet(n, seed, data_dir)``: a workplace fleet sampled from the ElaadNL distributions that
  EV2Gym ships (arrival slot, connection time, energy demand) and its EV model specs (battery, AC power).
- ``replay_sessions(csv_path)``: the real ACN-Data sessions, one EV per session.

Physics (``step``): SoC advances by ``dt * P * efficiency / Q`` while charging and falls by
``dt * |P| / (efficiency * Q)`` while discharging (the battery supplies the conversion losses). Charging
stops at SoC 0.995 and discharging at 0.005: the step delivers only the energy that reaches the bound and
the car then turns idle (what a real car's battery management does); the aggregator decides what happens
next (the SSM's boundary handling).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

CHARGING: int = 0
IDLE: int = 1
DISCHARGING: int = 2
MODE_NAMES = ("charging", "idle", "discharging")

SOC_MAX = 0.995
SOC_MIN = 0.005

HOUR_S = 3600.0

#: ``../shared/data/ev-behaviour`` beside the repository (real data is never copied into the product).
DEFAULT_BEHAVIOUR_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ev-behaviour"

FloatArray = NDArray[np.float64]


class FleetDataError(ValueError):
    """A data file the fleet cannot be built from; ``str()`` names the file and what is wrong."""


@dataclass
class Fleet:
    """Struct-of-arrays EV fleet; every array has one entry per EV (index = EV id)."""

    arrival_s: FloatArray
    departure_s: FloatArray
    capacity_kwh: FloatArray
    p_charge_kw: FloatArray
    p_discharge_kw: FloatArray
    efficiency: FloatArray
    soc: FloatArray
    soc_target: FloatArray
    mode: NDArray[np.int8]
    soc_initial: FloatArray = field(default_factory=lambda: np.empty(0))
    #: the charger's minimum charging power (kW; IEC 61851 minimum 6 A): below it the car does not charge.
    p_min_kw: FloatArray = field(default_factory=lambda: np.empty(0))
    #: time (s) the car and charger take to ramp from 0 to rated power after a new setpoint.
    ramp_s: FloatArray = field(default_factory=lambda: np.empty(0))
    epoch: datetime | None = None

    def __post_init__(self) -> None:
        n = self.arrival_s.shape[0]
        if self.soc_initial.shape[0] != n:
            self.soc_initial = self.soc.copy()
        if self.p_min_kw.shape[0] != n:
            self.p_min_kw = np.zeros(n)
        if self.ramp_s.shape[0] != n:
            self.ramp_s = np.zeros(n)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray) and v.shape != (n,):
                raise ValueError(f"Fleet.{f.name} has shape {v.shape}, expected ({n},)")

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def n(self) -> int:
        return len(self)

    def online(self, t_s: float, out: NDArray[np.bool_] | None = None) -> NDArray[np.bool_]:
        """Which EVs are plugged in at ``t_s`` (``arrival_s <= t_s <= departure_s``)."""
        out = np.less_equal(self.arrival_s, t_s, out=out)
        out &= self.departure_s >= t_s
        return out

    def mode_power_kw(self, out: FloatArray | None = None) -> FloatArray:
        """The power each EV's mode asks for: +p_charge (charging), 0 (idle), -p_discharge (discharging)."""
        if out is None:
            out = np.empty(len(self))
        np.multiply(self.p_charge_kw, self.mode == CHARGING, out=out)
        out -= self.p_discharge_kw * (self.mode == DISCHARGING)
        return out

    def take(self, idx: NDArray[np.intp] | slice) -> Fleet:
        """A new fleet holding the selected EVs (copies)."""
        kw = {f.name: np.array(getattr(self, f.name)[idx]) for f in fields(self) if f.name != "epoch"}
        return Fleet(**kw, epoch=self.epoch)

    def energy_shortfall_kwh(self) -> FloatArray:
        """Energy each driver still misses against the demanded SoC (0 when reached)."""
        return np.maximum(self.soc_target - self.soc, 0.0) * self.capacity_kwh


@dataclass
class StepResult:
    """What one ``step`` did: the power actually drawn (kW, + charge / - discharge) and who was online."""

    power_kw: FloatArray
    online: NDArray[np.bool_]

    @property
    def total_kw(self) -> float:
        return float(self.power_kw.sum())


class FleetStepper:
    """Advance a fleet in time with preallocated buffers (no large allocation per step).

    ``step(t_s, dt_s, power_kw=None)``: integrate SoC over ``[t_s, t_s + dt_s)`` for EVs online at ``t_s``.
    ``power_kw`` is the power each charger allows (kW, + charge / - discharge); it is clipped to the car's
    rated powers. None means "what each EV's mode asks for" (``Fleet.mode_power_kw``). Offline EVs draw
    nothing and their SoC is frozen (so after departure ``soc`` is the SoC the driver left with). The
    returned arrays are the stepper's buffers: copy them to keep them past the next step.
    """

    #: EVs per block: the temporaries of a block stay in the CPU cache, so a large fleet is read about once
    #: per step instead of once per array operation.
    BLOCK = 32_768

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        n = len(fleet)
        b = min(n, self.BLOCK)
        self._p = np.empty(n)
        self._online = np.empty(n, dtype=bool)
        self._rate = np.empty(b)
        self._new = np.empty(b)
        self._lo = np.empty(b)
        self._hi = np.empty(b)
        self._mask = np.empty(b, dtype=bool)
        self._zero = np.zeros(n)
        # The car parameters are read once: a stepper assumes they do not change (SoC and mode may).
        self._neg_pdis = -fleet.p_discharge_kw
        # SoC per kWh of grid energy: eff / Q while charging, 1 / (eff * Q) while discharging.
        self._soc_per_kwh_ch = fleet.efficiency / fleet.capacity_kwh
        self._soc_per_kwh_dis = 1.0 / (fleet.capacity_kwh * fleet.efficiency)

    def step(self, t_s: float, dt_s: float, power_kw: FloatArray | None = None) -> StepResult:
        f = self.fleet
        n = len(f)
        h = dt_s / HOUR_S
        for start in range(0, n, self.BLOCK):
            sl = slice(start, min(start + self.BLOCK, n))
            self._step_block(sl, t_s, h, None if power_kw is None else power_kw[sl])
        return StepResult(power_kw=self._p, online=self._online)

    def _step_block(self, sl: slice, t_s: float, h: float, power_kw: FloatArray | None) -> None:
        f = self.fleet
        m = sl.stop - sl.start
        p, online = self._p[sl], self._online[sl]
        rate, new, lo, hi, mask = self._rate[:m], self._new[:m], self._lo[:m], self._hi[:m], self._mask[:m]
        soc, mode = f.soc[sl], f.mode[sl]
        np.less_equal(f.arrival_s[sl], t_s, out=online)
        online &= f.departure_s[sl] >= t_s
        if power_kw is None:
            np.choose(mode, (f.p_charge_kw[sl], self._zero[sl], self._neg_pdis[sl]), out=p)
        else:
            np.clip(power_kw, self._neg_pdis[sl], f.p_charge_kw[sl], out=p)
        p *= online
        # SoC change per kW over this step (charging stores eff, discharging drains 1 / eff per kWh).
        np.greater(p, 0.0, out=mask)
        np.copyto(rate, self._soc_per_kwh_dis[sl])
        np.copyto(rate, self._soc_per_kwh_ch[sl], where=mask)
        rate *= h
        np.multiply(p, rate, out=new)
        new += soc
        # Charging stops at SOC_MAX and discharging at SOC_MIN (a car already beyond a bound stays there).
        np.minimum(soc, SOC_MIN, out=lo)
        np.maximum(soc, SOC_MAX, out=hi)
        np.clip(new, lo, hi, out=lo)
        # Cars that hit a bound turn idle (their battery management stops the flow).
        np.not_equal(new, lo, out=mask)
        mode[mask] = IDLE
        # Power actually drawn = energy moved over the step.
        np.subtract(lo, soc, out=p)
        p /= rate
        soc[:] = lo


@dataclass(frozen=True)
class CarPhysics:
    """What a real car and charger do with a power setpoint (the regulation simulation's ground truth).

    ``soc_cv``: above this SoC the battery is in constant voltage and its charging power tapers linearly
    to 0 at SoC 1 (constant current below). The charger's minimum current (``Fleet.p_min_kw``): a setpoint
    between 0 and the minimum is not served (the car pauses). ``Fleet.ramp_s``: the power moves towards the
    setpoint at ``rated / ramp_s`` kW per second.
    """

    soc_cv: float = 0.8


def charge_ceiling_kw(fleet: Fleet, soc_cv: float, soc: FloatArray | None = None) -> FloatArray:
    """The most each car can draw at its SoC: rated power, tapered linearly above ``soc_cv`` (CC/CV)."""
    s = fleet.soc if soc is None else soc
    if soc_cv >= 1.0:
        return fleet.p_charge_kw.copy()
    frac = np.clip((1.0 - s) / (1.0 - soc_cv), 0.0, 1.0)
    return fleet.p_charge_kw * frac


def apply_setpoints(
    fleet: Fleet, setpoint_kw: FloatArray, power_kw: FloatArray, dt_s: float, physics: CarPhysics
) -> FloatArray:
    """The power each car draws over the next ``dt_s`` (+ charge / - discharge) given the charger's setpoint
    and what it drew over the last step (``power_kw``): minimum current, CC/CV taper and ramp applied."""
    sp = np.where((setpoint_kw > 0) & (setpoint_kw < fleet.p_min_kw), 0.0, setpoint_kw)
    sp = np.where((sp < 0) & (-sp < fleet.p_min_kw), 0.0, sp)
    sp = np.clip(sp, -fleet.p_discharge_kw, charge_ceiling_kw(fleet, physics.soc_cv))
    rate = np.where(fleet.ramp_s > 0, fleet.p_charge_kw / np.maximum(fleet.ramp_s, 1e-9), np.inf) * dt_s
    return power_kw + np.clip(sp - power_kw, -rate, rate)


def multi_day_fleet(
    n_per_day: int, days: int, seed: int = 0, builder: Callable[..., Fleet] | None = None, **kwargs
) -> Fleet:
    """A fleet over ``days`` consecutive days: day d is ``builder(n_per_day, seed + d)`` (default
    ``seed_fleet``; ``behaviour_fleet`` works too) shifted by d x 24 h."""
    build = seed_fleet if builder is None else builder
    parts = []
    for d in range(days):
        f = build(n_per_day, seed + d, **kwargs)
        f.arrival_s += d * 86_400.0
        f.departure_s += d * 86_400.0
        parts.append(f)
    kw = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Fleet) if f.name != "epoch"}
    return Fleet(**kw)


def charge_until(fleet: Fleet, t_s: float) -> None:
    """Warm start: every EV that arrived before ``t_s`` has charged at its rated power since arrival.

    A run that starts in the evening then sees the morning's cars with the SoC they would have by now
    (or, for cars already gone, the SoC they left with) instead of their arrival SoC. Closed form, no steps:
    SoC rises by ``hours · P · eff / Q`` up to SOC_MAX; a car that reached SOC_MAX is idle.
    """
    hours = np.clip(np.minimum(t_s, fleet.departure_s) - fleet.arrival_s, 0.0, None) / HOUR_S
    gain = hours * fleet.p_charge_kw * fleet.efficiency / fleet.capacity_kwh
    fleet.soc[:] = np.minimum(fleet.soc + gain, np.maximum(fleet.soc, SOC_MAX))
    fleet.mode[(fleet.soc >= SOC_MAX) & (gain > 0)] = IDLE


def step(fleet: Fleet, t_s: float, dt_s: float, power_kw: FloatArray | None = None) -> StepResult:
    """One-off step (allocates its buffers); use ``FleetStepper`` in loops."""
    return FleetStepper(fleet).step(t_s, dt_s, power_kw)


# --------------------------------------------------------------------------------------------- sampling


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def truncnorm(rng: np.random.Generator, mean: float, sd: float, lower: float, upper: float, n: int) -> FloatArray:
    """Vectorised truncated normal by inverse CDF (mirrored into the lower tail for numerical accuracy)."""
    from scipy.special import ndtr, ndtri

    if not lower < upper:
        raise ValueError(f"truncated normal needs lower < upper, got {lower}, {upper}")
    a, b = (lower - mean) / sd, (upper - mean) / sd
    flip = a > 0  # both bounds in the upper tail: sample the mirror image where ndtr has precision
    if flip:
        a, b = -b, -a
    u = rng.uniform(ndtr(a), ndtr(b), n)
    z = ndtri(u)
    if flip:
        z = -z
    return np.clip(mean + sd * z, lower, upper)


def seed_fleet(
    n: int,
    seed: int | np.random.Generator | None = 0,
    *,
    p_kw: tuple[float, float] = (5.0, 7.0),
    efficiency: tuple[float, float] = (0.88, 0.95),
    capacity_kwh: tuple[float, float] = (20.0, 30.0),
    soc0: tuple[float, float, float, float] = (0.3, 0.05, 0.2, 0.4),
    soc_target: tuple[float, float, float, float] = (0.8, 0.03, 0.7, 0.9),
    groups: tuple[tuple[tuple[float, float, float, float], tuple[float, float, float, float]], ...] = (
        ((-6.5, 3.4, 0.0, 5.5), (8.9, 3.4, 0.0, 20.9)),
        ((17.5, 3.4, 5.5, 24.0), (32.9, 3.4, 20.9, 24.0)),
    ),
    min_current_a: float = 6.0,
    voltage_v: float = 230.0,
    ramp_s: tuple[float, float] = (2.0, 10.0),
) -> Fleet:
    """The seed study's fleet (MODELS.md section 2); arrival/finish parameters are (mean, sd, lo, hi) hours.

    The same rated power is used for charging and discharging (as in the study). All EVs start charging.
    5-7 kW is a single-phase 230 V charger at 22-30 A: the minimum power is ``min_current_a`` at
    ``voltage_v``; ramp times are uniform in ``ramp_s`` (drawn last, so the other draws do not move).
    """
    if n < 0:
        raise ValueError(f"fleet size must be >= 0, got {n}")
    rng = _rng(seed)
    p = rng.uniform(*p_kw, n)
    eff = rng.uniform(*efficiency, n)
    cap = rng.uniform(*capacity_kwh, n)
    s0 = truncnorm(rng, *soc0, n)
    st = truncnorm(rng, *soc_target, n)
    arr = np.empty(n)
    dep = np.empty(n)
    bounds = np.linspace(0, n, len(groups) + 1).astype(np.int64)
    for g, (start, finish) in enumerate(groups):
        lo, hi = bounds[g], bounds[g + 1]
        arr[lo:hi] = truncnorm(rng, *start, hi - lo)
        dep[lo:hi] = truncnorm(rng, *finish, hi - lo)
    a, d = np.minimum(arr, dep), np.maximum(arr, dep)
    return Fleet(
        arrival_s=a * HOUR_S,
        departure_s=d * HOUR_S,
        capacity_kwh=cap,
        p_charge_kw=p,
        p_discharge_kw=p.copy(),
        efficiency=eff,
        soc=s0,
        soc_target=st,
        mode=np.zeros(n, dtype=np.int8),
        p_min_kw=np.full(n, min_current_a * voltage_v / 1000.0),
        ramp_s=rng.uniform(*ramp_s, n),
    )


def _column(path: Path, name: str) -> tuple[FloatArray, FloatArray]:
    """(first column, named column) of an EV2Gym distribution CSV; the first column may be 'HH:MM'."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as err:
        raise FleetDataError(f"{path}: cannot read: {err.strerror}") from None
    if not rows or name not in rows[0]:
        raise FleetDataError(f"{path}: no column {name!r} (header: {rows[0] if rows else 'empty file'})")
    j = rows[0].index(name)
    xs, ys = [], []
    for i, r in enumerate(rows[1:], start=2):
        try:
            x = r[0]
            xs.append(int(x[:2]) * 60 + int(x[3:5]) if ":" in x else float(x))
            ys.append(float(r[j]))
        except (ValueError, IndexError):
            raise FleetDataError(f"{path}: line {i}: cannot read {r!r}") from None
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _sample_quantiles(rng: np.random.Generator, pct: FloatArray, values: FloatArray, n: int) -> FloatArray:
    """Sample from a quantile table: ``values[i]`` is exceeded by ``pct[i]`` % of the events.

    (EV2Gym's connection-time and energy tables have this shape: at 0 % the longest session, 72 h for
    workplaces; at 50 % the median, 4.9 h; at 100 % zero.) Inverse-CDF sampling with linear interpolation.
    """
    order = np.argsort(pct)
    return np.interp(rng.uniform(0.0, 100.0, n), pct[order], values[order])


def behaviour_fleet(
    n: int,
    seed: int | np.random.Generator | None = 0,
    data_dir: str | Path = DEFAULT_BEHAVIOUR_DIR,
    *,
    location: str = "workplace",
    max_ac_kw: float = 11.0,
    soc_target: tuple[float, float, float, float] = (0.8, 0.03, 0.7, 0.9),
) -> Fleet:
    """A fleet sampled from the ElaadNL distributions EV2Gym ships (``location`` column, default workplace).

    Arrival: a 15-minute slot drawn from ``distribution-of-arrival.csv``, uniform inside it. Connection time
    and energy demand: ``distribution-of-connection-time.csv`` / ``distribution-of-energy-demand.csv``.
    The car model is drawn from ``ev_specs.json`` weighted by registrations (battery, AC charge power capped
    at ``max_ac_kw``; V2G models from ``ev_specs_v2g_enabled2024.json`` give their discharge power, others
    discharge at their charge power so the fleet can be used for V2G studies). The demanded SoC is the seed
    distribution; the arrival SoC is what the energy demand leaves below it (at least 0.05).
    """
    if n < 0:
        raise ValueError(f"fleet size must be >= 0, got {n}")
    rng = _rng(seed)
    d = Path(data_dir)
    slot_min, share = _column(d / "distribution-of-arrival.csv", location)
    if share.sum() <= 0:
        raise FleetDataError(f"{d / 'distribution-of-arrival.csv'}: column {location!r} has no positive share")
    slot = rng.choice(slot_min.size, size=n, p=share / share.sum())
    arr = (slot_min[slot] + rng.uniform(0, 15, n)) * 60.0
    pct, hours = _column(d / "distribution-of-connection-time.csv", location)
    stay_h = np.maximum(_sample_quantiles(rng, pct, hours, n), 0.25)
    pct, kwh = _column(d / "distribution-of-energy-demand.csv", location)
    energy = np.maximum(_sample_quantiles(rng, pct, kwh, n), 0.5)
    try:
        specs = json.loads((d / "ev_specs.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise FleetDataError(f"{d / 'ev_specs.json'}: cannot read EV specs: {err}") from None
    names = list(specs)
    reg = np.array([float(specs[k].get("number_of_registrations", 0)) for k in names])
    cap_m = np.array([float(specs[k]["battery_capacity"]) for k in names])
    pch_m = np.minimum(np.array([float(specs[k]["max_ac_charge_power"]) for k in names]), max_ac_kw)
    model = rng.choice(len(names), size=n, p=reg / reg.sum())
    cap = cap_m[model]
    pch = pch_m[model]
    st = truncnorm(rng, *soc_target, n)
    s0 = np.maximum(st - energy / cap, 0.05)
    # charger minimum 6 A: three-phase above 7.4 kW (one phase at 32 A), else single-phase, at 230 V
    phases = np.where(pch > 7.4, 3.0, 1.0)
    return Fleet(
        arrival_s=arr,
        departure_s=arr + stay_h * HOUR_S,
        capacity_kwh=cap,
        p_charge_kw=pch,
        p_discharge_kw=pch.copy(),
        efficiency=np.full(n, 0.9),
        soc=s0,
        soc_target=st,
        mode=np.zeros(n, dtype=np.int8),
        p_min_kw=np.minimum(6.0 * 230.0 * phases / 1000.0, pch),
        ramp_s=rng.uniform(2.0, 10.0, n),  # drawn last: the other draws do not move
    )


def replay_sessions(
    csv_path: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    capacity_kwh: float = 60.0,
    p_charge_kw: float = 6.6,
    efficiency: float = 0.9,
    soc_target: float = 0.9,
) -> Fleet:
    """One EV per real session of an ACN-Data CSV (``connectionTime_utc``, ``disconnectTime_utc``, kWh).

    Times are seconds from ``start`` (default: UTC midnight of the first arrival) and ``Fleet.epoch`` holds
    that instant. ACN-Data has no battery size or SoC, so each car gets ``capacity_kwh`` (or 1.25 x the
    energy it took, when larger), demands ``soc_target``, and arrives with the requested energy
    (``kWhRequested``, else ``kWhDelivered``) below it. Rows without both timestamps are skipped.
    """
    import pandas as pd

    path = Path(csv_path)
    try:
        df = pd.read_csv(path, usecols=["connectionTime_utc", "disconnectTime_utc", "kWhDelivered", "kWhRequested"])
    except FileNotFoundError:
        raise FleetDataError(f"{path}: session file not found") from None
    except ValueError as err:
        raise FleetDataError(f"{path}: not an ACN-Data session CSV: {err}") from None
    arr = pd.to_datetime(df["connectionTime_utc"], utc=True, errors="coerce")
    dep = pd.to_datetime(df["disconnectTime_utc"], utc=True, errors="coerce")
    ok = arr.notna() & dep.notna() & (dep > arr)
    if start is not None:
        ok &= dep >= pd.Timestamp(start)
    if end is not None:
        ok &= arr <= pd.Timestamp(end)
    df, arr, dep = df[ok], arr[ok], dep[ok]
    if df.empty:
        raise FleetDataError(f"{path}: no sessions with arrival and departure in the requested window")
    t0 = pd.Timestamp(start) if start is not None else arr.min().floor("D")
    if t0.tzinfo is None:
        t0 = t0.tz_localize("UTC")
    delivered = pd.to_numeric(df["kWhDelivered"], errors="coerce").fillna(0.0).to_numpy(float)
    requested = pd.to_numeric(df["kWhRequested"], errors="coerce").to_numpy(float)
    need = np.where(np.isfinite(requested) & (requested > 0), requested, delivered)
    n = len(df)
    cap = np.maximum(capacity_kwh, 1.25 * np.maximum(delivered, need))
    st = np.full(n, soc_target)
    s0 = np.maximum(st - need / cap, 0.05)
    return Fleet(
        arrival_s=(arr - t0).dt.total_seconds().to_numpy(float),
        departure_s=(dep - t0).dt.total_seconds().to_numpy(float),
        capacity_kwh=cap,
        p_charge_kw=np.full(n, p_charge_kw),
        p_discharge_kw=np.full(n, p_charge_kw),
        efficiency=np.full(n, efficiency),
        soc=s0,
        soc_target=st,
        mode=np.zeros(n, dtype=np.int8),
        epoch=t0.to_pydatetime(),
    )
