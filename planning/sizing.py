"""Chargers with load management, by simulation: a year of the building's load with real sessions.

Why a simulation: "spare energy / kWh per charger" assumes every charger is plugged in all day. Here each
candidate charger count ``n`` replays the measured year hour by hour: sessions are drawn from the real pool
(``planning.sessions``) at its rate per charger-day and day type, take a free charger (a session finding all
``n`` busy is counted apart as ``not_placed``: a question of charger count, not of the service), and every
hour the live site limit ``cf x rating - building_t / pf`` is shared by ``planning.allocation.allocate``
(policy ``equal``) - the same pure function load management runs live. A session is served when it gets
``service_level_energy`` of its energy; ``n`` holds when at least ``service_level_sessions`` of the sessions
are served and no hour has EV power above the limit. Hours where every car's request fits need no sharing;
``allocate`` replays every stay connected to an hour where they do not fit (see ``simulate_year``).

The answer is the largest ``n`` that holds (searched on a growing grid, then by bisection), with the curve
(chargers vs share of sessions served). Draws use one fixed seed per count (common random numbers), so the
curve does not jitter between runs. Assumptions, stated in the report: hourly steps (a car present part of an
hour charges for that part), energy = the session's delivered kWh capped by nameplate x stay, EVSE at the
service's EVSE rating (single-phase at ``evse_voltage_v``).
"""

from __future__ import annotations

import heapq

import numpy as np
import pandas as pd

from planning.allocation import J1772_MIN_A, Constraints, Sessions, Snapshot, allocate
from planning.capacity import Service
from planning.sessions import SessionPool


def hourly_load(series: pd.Series) -> pd.Series:
    """Hourly kW over the measured period; unmeasured hours take that hour's highest load (conservative)."""
    hourly = series.resample("h").mean()
    key = hourly.index.hour + 24 * (hourly.index.day_of_week >= 5)
    worst = hourly.groupby(key).transform("max")
    return hourly.fillna(worst).fillna(float(hourly.max()))


def draw_sessions(pool: SessionPool, n: int, days: pd.DatetimeIndex, seed: int) -> tuple[np.ndarray, ...]:
    """Sessions for ``n`` chargers over ``days``: (arrival_h, departure_h, energy_kwh) from the day's start."""
    rng = np.random.default_rng(seed)
    weekend_day = days.day_of_week >= 5
    arr, dep, kwh = [], [], []
    for label, mask in (("weekday", ~weekend_day), ("weekend", weekend_day)):
        idx_pool = np.flatnonzero(pool.weekend == (label == "weekend"))
        if idx_pool.size == 0 or not mask.any():
            continue
        day_idx = np.flatnonzero(mask)
        counts = rng.poisson(pool.rate_per_charger_day[label] * n, size=day_idx.size)
        which = rng.choice(idx_pool, size=int(counts.sum()))
        start = np.repeat(day_idx * 24.0, counts)
        a = start + pool.arrival_h[which]
        arr.append(a)
        dep.append(a + pool.duration_h[which])
        kwh.append(pool.energy_kwh[which])
    if not arr:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    a, d, e = np.concatenate(arr), np.concatenate(dep), np.concatenate(kwh)
    order = np.argsort(a, kind="stable")
    return a[order], d[order], e[order]


def placed_sessions(arrival: np.ndarray, departure: np.ndarray, n: int) -> np.ndarray:
    """Whether each session (sorted by arrival) finds one of ``n`` chargers free (first free charger, in arrival
    order; tested equal to the plain heap loop over every session, ``tests/planning/reference.py``).

    Why not the heap loop alone: with low utilisation a large ``n`` is never full, and a Python loop over every
    session of a simulated year (about 100,000 at 500 chargers) was a tenth of the sizing search. If every
    earlier session was placed, ``#{j < i: departure_j > arrival_i}`` chargers are busy when session i arrives;
    sorted arrivals make that ``i - #{departure <= arrival_i}`` (one searchsorted). Up to the first session that
    finds all ``n`` busy every session is placed; from there the loop runs as before, on departures only (which
    charger a session takes does not change who is placed).
    """
    m = arrival.size
    placed = np.ones(m, dtype=bool)
    if m == 0 or n <= 0:
        return placed & (n > 0)
    start = 0
    if bool(np.all(departure > arrival)):  # (a zero-length stay would count as busy in the formula)
        busy_at = np.arange(m) - np.searchsorted(np.sort(departure), arrival, side="right")
        full = np.flatnonzero(busy_at >= n)
        if full.size == 0:
            return placed
        start = int(full[0])
    arr, dep = arrival.tolist(), departure.tolist()
    busy = [d for d in dep[:start] if d > arr[start]]
    heapq.heapify(busy)
    for i in range(start, m):
        a = arr[i]
        while busy and busy[0] <= a:
            heapq.heappop(busy)
        if len(busy) < n:
            heapq.heappush(busy, dep[i])
        else:
            placed[i] = False
    return placed


def _session_hours(arrival: np.ndarray, departure: np.ndarray, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (session, hour) pair a session is present in, sorted by hour (vectorised with np.repeat)."""
    first = np.floor(arrival).astype(np.int64)
    last = np.minimum(np.ceil(departure).astype(np.int64), hours)
    count = np.maximum(last - first, 0)
    sess = np.repeat(np.arange(arrival.size), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    hour = np.repeat(first, count) + offset
    order = np.argsort(hour, kind="stable")
    return sess[order], hour[order]


def simulate_year(
    load_kw: np.ndarray, service: Service, pool: SessionPool, n: int, days: pd.DatetimeIndex, seed: int = 0
) -> dict:
    """One charger count over the measured year; returns sessions, served share, violations, energy.

    Speed without changing the answer: first every session is charged as if alone (each hour: the lower of
    the nameplate and what it still needs, J1772 minimum included, exactly what ``upper_bound_a`` asks for).
    Hours where those requests fit under the live limit need no sharing. Sessions present in an hour where
    they do not fit are replayed: ``allocate`` in every hour that needs sharing (those hours, and any later
    hour where their worst case - the nameplate for the rest of the stay - does not fit), and in between each
    takes what it asks, since there is room for it.
    """
    arrival, departure, want = draw_sessions(pool, n, days, seed)
    found = placed_sessions(arrival, departure, n)
    hours = load_kw.size
    departure = np.minimum(departure, float(hours))  # the measured period ends: so does the last stay
    placed = found & (departure > arrival)
    evse_kw = service.evse_kw
    want = np.minimum(want, evse_kw * (departure - arrival))
    got = np.where(placed, want, 0.0)  # uncongested sessions get all of it; congested ones are replayed
    limit_kw = service.continuous_load_factor * service.rating_kw
    kw_per_a = service.evse_voltage_v / 1000.0  # single-phase EVSE at evse_voltage_v
    max_a = evse_kw / kw_per_a
    room = limit_kw - load_kw / service.pf
    a_idx = np.flatnonzero(placed)
    a_arr, a_dep, a_want = arrival[a_idx], departure[a_idx], want[a_idx]
    sess, hour = _session_hours(a_arr, a_dep, hours)
    frac = np.clip(np.minimum(a_dep[sess], hour + 1) - np.maximum(a_arr[sess], hour), 0.0, 1.0)
    rem = a_want[sess] - np.minimum(a_want[sess], evse_kw * np.maximum(0.0, hour - a_arr[sess]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ask = np.minimum(evse_kw, np.maximum(rem / frac, J1772_MIN_A * kw_per_a))
    ask = np.where((rem > 1e-6) & (frac > 0), ask, 0.0)
    demand = np.bincount(hour, weights=ask, minlength=hours)
    congested = demand > room + 1e-9
    marked = congested.copy()
    # Sharing hours: start from the congested hours. A session present in one may be short afterwards and ask
    # up to its nameplate for the rest of its stay; any later hour where that worst case no longer fits needs
    # sharing too. Repeat until no new hour appears (each pass only adds hours, so this ends).
    big = np.iinfo(np.int64).max
    while True:
        first_shared = np.full(a_idx.size, big)
        on = marked[hour]
        np.minimum.at(first_shared, sess[on], hour[on])
        worst = np.where(hour >= first_shared[sess], np.where(frac > 0, evse_kw, 0.0), ask)
        new = (np.bincount(hour, weights=worst, minlength=hours) > room + 1e-9) & ~marked
        if not new.any():
            break
        marked |= new
    affected = first_shared < big
    violations = 0
    got[a_idx[affected]] = 0.0
    # Affected sessions: between sharing hours each takes what it asks (there is room for the worst case),
    # a block of free hours at a time; in each sharing hour ``allocate`` decides.
    f_ids = np.flatnonzero(affected)
    f_glob, f_arr, f_dep = a_idx[f_ids], a_arr[f_ids], a_dep[f_ids]

    def advance(start: float, end: float) -> None:
        if end <= start:
            return
        overlap = np.clip(np.minimum(f_dep, end) - np.maximum(f_arr, start), 0.0, None)
        got[f_glob] += np.minimum(evse_kw * overlap, want[f_glob] - got[f_glob])

    keep = affected[sess]
    c_sess, c_hour = sess[keep], hour[keep]
    bounds = np.searchsorted(c_hour, np.arange(hours + 1))
    done_until = 0.0
    for h in np.flatnonzero(marked):
        advance(done_until, float(h))
        done_until = float(h + 1)
        ids = c_sess[bounds[h] : bounds[h + 1]]
        if ids.size == 0:
            continue
        glob = a_idx[ids]
        fr = np.clip(np.minimum(a_dep[ids], h + 1) - np.maximum(a_arr[ids], h), 0.0, 1.0)
        remaining = want[glob] - got[glob]
        with np.errstate(divide="ignore", invalid="ignore"):
            asks = np.minimum(evse_kw, np.maximum(remaining / fr, J1772_MIN_A * kw_per_a))
        asks = np.where((remaining > 1e-6) & (fr > 0), asks, 0.0)
        if asks.sum() <= room[h] + 1e-9:  # every request fits after all: what allocate would grant
            got[glob] += np.minimum(asks * fr, remaining)
            continue
        m = ids.size
        s = Sessions.empty(m, max_a=max_a, kw_per_a=kw_per_a)
        s.active[:] = (remaining > 1e-6) & (fr > 0)
        s.energy_requested_kwh = want[glob] / np.maximum(fr, 1e-9)  # the allocator spreads over a full period
        s.energy_delivered_kwh = got[glob] / np.maximum(fr, 1e-9)
        s.arrival_s = (a_arr[ids] - h) * 3600.0  # admission order: first come, first served
        s.departure_s = (a_dep[ids] - h) * 3600.0
        c = Constraints(A=np.full((1, m), kw_per_a), b=np.array([limit_kw]), names=("service",), connectors=("",) * m)
        snap = Snapshot(constraints=c, sessions=s, uncontrolled=np.array([load_kw[h] / service.pf]), period_s=3600.0)
        power = allocate(snap, "equal", resolution_a=0.0).limit_a * kw_per_a
        got[glob] += np.maximum(np.minimum(power * fr, remaining), 0.0)
        total = float(power.sum())
        if total > 1e-6 and total > room[h] + 1e-6:
            violations += 1
    advance(done_until, float(hours))
    return {
        "chargers": n,
        "sessions": int(arrival.size),
        "not_placed": int((~placed).sum()),
        "placed": placed,
        "got": got,
        "want": want,
        "violations": violations,
        "energy_kwh": float(got.sum()),
        "congested_hours": int(congested.sum()),
        "sharing_hours": int(marked.sum()),
    }


def service_level(result: dict, energy_share: float) -> float:
    """Share of the placed sessions that got at least ``energy_share`` of their energy (1.0 when none).

    A session that found every charger busy is a question of how many chargers, not of the service's
    capacity: it is counted apart (``not_placed``) rather than as a service failure.
    """
    placed = result["placed"]
    want, got = result["want"][placed], result["got"][placed]
    if want.size == 0:
        return 1.0
    return float((got >= energy_share * want - 1e-9).mean())


def size_by_simulation(series: pd.Series, service: Service, pool: SessionPool, p, max_n: int = 500) -> dict:
    """The largest charger count whose simulated year meets the service level with zero violations."""
    load = hourly_load(series)
    days = pd.date_range(load.index[0].normalize(), load.index[-1].normalize(), freq="D")
    load_kw = load.reindex(pd.date_range(days[0], periods=len(days) * 24, freq="h")).ffill().bfill().to_numpy()
    max_n = min(max_n, p.max_chargers)
    curve: dict[int, dict] = {}

    def run(n: int) -> bool:
        r = simulate_year(load_kw, service, pool, n, days, seed=p.random_state + n)
        lvl = service_level(r, p.service_level_energy)
        curve[n] = {
            "chargers": n,
            "sessions": r["sessions"],
            "not_placed": r["not_placed"],
            "service_level": round(lvl, 4),
            "violations": r["violations"],
            "energy_kwh_per_day": round(r["energy_kwh"] / len(days), 3),
        }
        return lvl >= p.service_level_sessions and r["violations"] == 0

    good, bad = 0, None
    n = 1
    while n <= max_n:
        if run(n):
            good = n
            n = max(n + 1, int(n * 1.6))
        else:
            bad = n
            break
    if bad is None and good < max_n:
        if run(max_n):
            good = max_n
        else:
            bad = max_n
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if run(mid):
            good = mid
        else:
            bad = mid
    table = [curve[k] for k in sorted(curve)]
    best = curve.get(good)
    return {
        "chargers": good,
        "energy_kwh_per_day": best["energy_kwh_per_day"] if best else 0.0,
        "service_level_rule": (
            f"{p.service_level_sessions:.0%} of sessions get {p.service_level_energy:.0%} of their energy, "
            f"zero hours over the continuous limit"
        ),
        "curve": table,
        "policy": "planning.allocation.allocate, policy 'equal', hourly, live limit cf x rating - building / pf",
        "sessions_source": pool.source,
        "assumes": (
            "sessions drawn from the pool at its rate per charger-day by day type; energy = delivered kWh capped "
            f"by {service.evse_kw:.2f} kW x stay; a session finding every charger busy is counted apart "
            "(not_placed), not as a service failure"
        ),
        "searched_up_to": max_n,
        # Met at the largest count searched: the building hosts AT LEAST this many, possibly more.
        "at_search_limit": good >= max_n,
    }
