"""Replay recorded sessions through ``allocate`` against one aggregate cap, period by period.

Why a replay: a policy is only as good as what it does on real arrivals. ``evsite replay`` runs the same
``allocate`` the live loop runs, on ACN-Data sessions, under ACN-Sim's published conventions so the figures
compare with the ACN papers:

- periods of ``period_min`` minutes counted from local midnight of the first day; arrival and departure are
  floored to a period, a car is present for periods ``arrival <= t < departure``;
- every EVSE is continuous 0..32 A at 208 V (so the J1772 minimum is 0 A here unless asked otherwise);
- energy requested = ``kWhDelivered`` capped at what 32 A x 208 V gives over the floored stay;
- the algorithm sees the real departure (perfect information) unless an estimate is passed;
- a session is served when it ends short by less than ``SERVED_TOL_KWH``.

The cap is a single kW row of ``A @ x <= b``; a violation is a period whose drawn power exceeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from planning.allocation.model import Constraints, FloatArray, IntArray, Sessions, Snapshot
from planning.allocation.policies import allocate

#: ACN-Sim counts a session as served when it is short by less than this.
SERVED_TOL_KWH = 0.1
#: Caltech's DC fast charger: ACN-Sim's studies drop its sessions (30-70 kWh in under an hour).
DC_FAST_STATIONS = ("2-39-81-4550",)
#: Relative slack when counting a period over the cap (float noise, not a real overshoot).
_OVER_TOL = 1e-9


@dataclass(frozen=True)
class ReplaySessions:
    """Sessions on a period grid: what the replay, the optima and the uncontrolled baseline all read."""

    session_id: tuple[str, ...]
    arrival: IntArray  # first period present
    departure: IntArray  # first period gone (exclusive)
    seen_departure: IntArray  # the departure the algorithm is told (== departure with perfect information)
    requested_kwh: FloatArray
    period_s: float
    max_a: float
    kw_per_a: float
    start: pd.Timestamp  # local time of period 0

    def __len__(self) -> int:
        return len(self.session_id)

    @property
    def periods(self) -> int:
        return int(self.departure.max(initial=0))

    @property
    def period_h(self) -> float:
        return self.period_s / 3600.0

    @property
    def max_kw(self) -> float:
        return self.max_a * self.kw_per_a


def prepare(
    df: pd.DataFrame,
    *,
    tz: str,
    period_min: float = 5.0,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    max_a: float = 32.0,
    volts: float = 208.0,
    drop_stations: tuple[str, ...] = DC_FAST_STATIONS,
    estimated_departure: pd.Series | None = None,
) -> ReplaySessions:
    """Select sessions connected in ``[start, end)`` (local time) and put them on the period grid.

    ``estimated_departure`` (tz-aware, indexed like ``df``) replaces what the algorithm is told; the car still
    leaves at its real departure.
    """
    connected = df["connected"].dt.tz_convert(tz)
    keep = ~df["station_id"].isin(drop_stations)
    if start is not None:
        keep &= connected >= start
    if end is not None:
        keep &= connected < end
    sel = df[keep]
    if sel.empty:
        return _empty(period_min, max_a, volts, start)
    origin = start if start is not None else connected[keep].min().normalize()
    period_s = period_min * 60.0

    def to_period(times: pd.Series) -> IntArray:
        return np.floor((times - origin).dt.total_seconds().to_numpy() / period_s).astype(np.int64)

    arrival = to_period(connected[keep])
    departure = np.maximum(to_period(sel["disconnected"].dt.tz_convert(tz)), arrival)
    seen = departure
    if estimated_departure is not None:
        seen = np.maximum(to_period(estimated_departure[keep].dt.tz_convert(tz)), arrival + 1)
    kw_per_a = volts / 1000.0
    can_take = max_a * kw_per_a * (departure - arrival) * period_s / 3600.0
    requested = np.minimum(sel["kwh_delivered"].to_numpy(float), can_take)
    return ReplaySessions(
        session_id=tuple(sel["session_id"]),
        arrival=arrival,
        departure=departure,
        seen_departure=seen,
        requested_kwh=requested,
        period_s=period_s,
        max_a=max_a,
        kw_per_a=kw_per_a,
        start=origin,
    )


def _empty(period_min: float, max_a: float, volts: float, start: pd.Timestamp | None) -> ReplaySessions:
    none = np.zeros(0, np.int64)
    return ReplaySessions((), none, none, none, np.zeros(0), period_min * 60.0, max_a, volts / 1000.0, start)


@dataclass(frozen=True)
class ReplayRow:
    """One row of the replay table (the ``--json`` keys are the first five fields)."""

    policy: str
    energy_share: float
    sessions_served: int
    sessions: int
    violations: int
    energy_delivered_kwh: float
    energy_requested_kwh: float
    peak_kw: float
    note: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "energy_share": self.energy_share,
            "sessions_served": self.sessions_served,
            "sessions": self.sessions,
            "violations": self.violations,
        }


def score(
    rs: ReplaySessions, policy: str, delivered: FloatArray, power_kw: FloatArray, cap_kw: float, note: str = ""
) -> ReplayRow:
    """Energy share, sessions served and violations of one schedule's outcome."""
    requested = float(rs.requested_kwh.sum())
    total = float(delivered.sum())
    return ReplayRow(
        policy=policy,
        energy_share=total / requested if requested > 0 else 1.0,
        sessions_served=int((rs.requested_kwh - delivered < SERVED_TOL_KWH).sum()),
        sessions=len(rs),
        violations=int((power_kw > cap_kw * (1 + _OVER_TOL) + _OVER_TOL).sum()),
        energy_delivered_kwh=total,
        energy_requested_kwh=requested,
        peak_kw=float(power_kw.max(initial=0.0)),
        note=note,
    )


def uncontrolled(rs: ReplaySessions) -> tuple[FloatArray, FloatArray]:
    """Every car at 32 A from arrival until its request is met: (delivered per session, power per period)."""
    per_period = rs.max_kw * rs.period_h
    full = np.floor(rs.requested_kwh / per_period + 1e-9).astype(np.int64)
    rest = rs.requested_kwh - full * per_period
    diff = np.zeros(rs.periods + 2)
    np.add.at(diff, rs.arrival, rs.max_kw)
    np.add.at(diff, rs.arrival + full, -rs.max_kw)
    power = np.cumsum(diff)[: rs.periods]
    partial = rest > 1e-9
    np.add.at(power, (rs.arrival + full)[partial], rest[partial] / rs.period_h)
    return rs.requested_kwh.copy(), power


def uncontrolled_peak_kw(rs: ReplaySessions) -> float:
    """The peak aggregate power of uncontrolled charging: what ``--cap-fraction`` is relative to."""
    return float(uncontrolled(rs)[1].max(initial=0.0))


def simulate(rs: ReplaySessions, cap_kw: float, policy: str, min_a: float = 0.0) -> tuple[FloatArray, FloatArray]:
    """Run ``allocate(policy)`` every period on the cars present: (delivered per session, power per period).

    Each period is one snapshot: the cars plugged in (arrived, not gone, request not yet met), their
    remaining energy and the departure they are told; the cap is one kW row. A car draws its limit or what it
    still needs, whichever is less.
    """
    delivered = np.zeros(len(rs))
    power = np.zeros(rs.periods)
    row = np.array([cap_kw])
    for t in _busy_periods(rs):
        here = np.flatnonzero((rs.arrival <= t) & (rs.departure > t) & (rs.requested_kwh - delivered > 1e-9))
        if here.size == 0:
            continue
        n = here.size
        s = Sessions.empty(n, min_a=min_a, max_a=rs.max_a, kw_per_a=rs.kw_per_a)
        s.active[:] = True
        s.energy_requested_kwh[:] = rs.requested_kwh[here]
        s.energy_delivered_kwh[:] = delivered[here]
        s.arrival_s[:] = (rs.arrival[here] - t) * rs.period_s
        s.departure_s[:] = (rs.seen_departure[here] - t) * rs.period_s
        constraints = Constraints(
            A=np.full((1, n), rs.kw_per_a), b=row, names=("aggregate cap",), connectors=tuple(map(str, here))
        )
        alloc = allocate(Snapshot(constraints, s, period_s=rs.period_s), policy)
        energy = np.minimum(alloc.limit_a * rs.kw_per_a * rs.period_h, s.remaining_kwh)
        delivered[here] += energy
        power[t] = energy.sum() / rs.period_h
    return delivered, power


def _busy_periods(rs: ReplaySessions) -> IntArray:
    """Periods with at least one car present (nights and weekends without cars are skipped)."""
    diff = np.zeros(rs.periods + 1, np.int64)
    np.add.at(diff, rs.arrival, 1)
    np.add.at(diff, rs.departure, -1)
    return np.flatnonzero(np.cumsum(diff)[: rs.periods] > 0)
