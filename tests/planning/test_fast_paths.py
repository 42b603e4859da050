"""The fast paths of the planning stages give exactly what the straightforward code gives.

Each reference here is the plain version the stage used before it was sped up (pandas ``pivot_table`` for the
daily profiles, one shifted copy per day offset for the similar-day statistics, a HiGHS MILP for the
energy-bound charger count); the fast path must agree with it bit for bit (or, for the count, exactly).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evsite.cli import main
from planning.capacity import Service, alm_headroom
from planning.cleaning import clean_series, similar_day_stats
from planning.loadstudy import HOURS, _one_thread, daily_profiles
from planning.optimise import energy_bound_chargers, solve_evsite_milp
from planning.pipeline import static_ceiling
from planning.sizing import placed_sessions, size_by_simulation
from tests.planning.conftest import office_like
from tests.planning.reference import assign_chargers
from tests.planning.test_cost_and_sizing import _P, _pool


def _profiles_by_pivot(kw: pd.Series) -> tuple[pd.DataFrame, int]:
    """Hourly means pivoted with pandas, days with any missing hour dropped (the straightforward version)."""
    step = kw.index[1] - kw.index[0] if kw.size > 1 else pd.Timedelta(hours=1)
    per_hour = max(1, round(pd.Timedelta(hours=1) / step))
    grouped = kw.resample("h")
    hourly = grouped.mean()
    hourly[grouped.count() < per_hour] = np.nan
    day = hourly.index.normalize()
    frame = pd.DataFrame({"day": day, "hour": hourly.index.hour, "kw": hourly.to_numpy()})
    wide = frame.pivot_table(index="day", columns="hour", values="kw", aggfunc="mean", dropna=False)
    wide = wide.reindex(columns=range(HOURS)).reindex(pd.date_range(day.min(), day.max(), freq="D"))
    complete = wide.notna().all(axis=1)
    return wide[complete].astype(float), int((~complete).sum())


def _damaged(freq: str, start: str, drop_head: int, seed: int) -> pd.Series:
    s = office_like(days=40, freq=freq, seed=seed).iloc[drop_head:]
    s.index = s.index + (pd.Timestamp(start) - pd.Timestamp("2024-01-01"))
    v = s.to_numpy(copy=True)
    v[np.random.default_rng(seed).choice(v.size, 25, replace=False)] = np.nan  # scattered missing readings
    v[300:330] = np.nan  # a gap spanning a midnight
    return pd.Series(v, index=s.index)


@pytest.mark.parametrize(
    ("freq", "start", "drop_head"),
    [("h", "2024-03-01", 0), ("h", "2024-03-01", 7), ("15min", "2024-10-20", 0), ("15min", "2024-10-20", 13)],
)
def test_daily_profiles_equal_the_pandas_pivot(freq: str, start: str, drop_head: int) -> None:
    kw = _damaged(freq, start, drop_head, seed=drop_head)
    fast, dropped = daily_profiles(kw)
    ref, ref_dropped = _profiles_by_pivot(kw)
    assert dropped == ref_dropped > 0
    assert fast.index.equals(ref.index) and list(fast.columns) == list(ref.columns)
    assert np.array_equal(fast.to_numpy(), ref.to_numpy())


def test_daily_profiles_of_a_cleaned_real_meter_equal_the_pandas_pivot(cambridge_csv: Path) -> None:
    from planning.meter import read_meter

    meter = read_meter(cambridge_csv, site_tz="Europe/London", columns=["b3"])[0]
    series, _ = clean_series(meter.kw, site_tz=meter.site_tz)
    fast, dropped = daily_profiles(series)
    ref, ref_dropped = _profiles_by_pivot(series)
    assert dropped == ref_dropped and fast.shape == ref.shape and np.array_equal(fast.to_numpy(), ref.to_numpy())


def _similar_day_stats_by_offset(v: np.ndarray, grid: pd.DatetimeIndex, window_days: int = 21):
    """One shifted (days x slots) copy per day offset, stacked and NaN-sorted (the straightforward version)."""
    day = grid.normalize()
    days, day_idx = np.unique(day.to_numpy(), return_inverse=True)
    slot = ((grid - day) // (grid[1] - grid[0])).to_numpy().astype(int)
    m = np.full((days.size, int(slot.max()) + 1), np.nan)
    m[day_idx, slot] = v
    weekend = pd.DatetimeIndex(days).day_of_week.to_numpy() >= 5
    shifted = []
    for off in range(-window_days, window_days + 1):
        if off == 0 or abs(off) >= days.size:
            continue
        s = np.full_like(m, np.nan)
        src = slice(max(0, off), days.size + min(0, off))
        dst = slice(max(0, -off), days.size + min(0, -off))
        s[dst] = m[src]
        same = np.zeros(days.size, dtype=bool)
        same[dst] = weekend[src] == weekend[dst]
        s[~same] = np.nan
        shifted.append(s)
    stack = np.sort(np.stack(shifted), axis=0)
    count = np.isfinite(stack).sum(axis=0)
    lo = np.take_along_axis(stack, np.maximum(count - 1, 0)[None] // 2, axis=0)[0]
    hi = np.take_along_axis(stack, (count // 2)[None], axis=0)[0]
    med = np.where(count > 0, 0.5 * (lo + hi), np.nan)
    mx = np.where(count > 0, np.take_along_axis(stack, np.maximum(count - 1, 0)[None], axis=0)[0], np.nan)
    return med[day_idx, slot], mx[day_idx, slot]


@pytest.mark.parametrize(("freq", "days"), [("h", 120), ("15min", 30), ("h", 3)])
def test_similar_day_stats_equal_the_shifted_copies(freq: str, days: int) -> None:
    per_day = {"h": 24, "15min": 96}[freq]
    grid = pd.date_range("2023-12-20 00:00", periods=days * per_day, freq=freq)[5:]
    v = np.random.default_rng(days).gamma(4.0, 10.0, grid.size)
    v[::11] = np.nan
    for fast, ref in zip(similar_day_stats(v, grid), _similar_day_stats_by_offset(v, grid), strict=True):
        assert np.array_equal(fast, ref, equal_nan=True)


def _loads_by_groupby(series: pd.Series, service: Service, percentile: float) -> dict[str, np.ndarray]:
    """The hourly load per day type by pandas resample + groupby quantile (the straightforward version)."""
    hourly = series.resample("h").mean().dropna()
    weekend = hourly.index.day_of_week >= 5
    out = {}
    for label, mask in (("weekday", ~weekend), ("weekend", weekend)):
        h = hourly[mask] if mask.any() else hourly
        load = h.groupby(h.index.hour).quantile(percentile / 100.0).reindex(range(24)).to_numpy()
        out[label] = np.where(np.isfinite(load), load, float(h.max()))
    return out


@pytest.mark.parametrize("percentile", [100.0, 90.0])
@pytest.mark.parametrize("freq", ["h", "15min"])
def test_static_ceiling_loads_equal_the_pandas_groupby(freq: str, percentile: float) -> None:
    kw = _damaged(freq, "2024-03-01", 0, seed=3)
    svc = Service(rating_a=400, voltage_v=208, phases=3)
    ceilings, loads, _ = static_ceiling(kw, svc, percentile)
    for label, ref in _loads_by_groupby(kw, svc, percentile).items():
        assert np.array_equal(loads[label], ref)
        assert np.array_equal(ceilings[label], np.clip(alm_headroom(ref, svc), 0.0, None))


@pytest.mark.parametrize("seed", range(6))
def test_energy_bound_count_equals_the_highs_milp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(8):
        headroom = rng.uniform(0, 300, 24) * (rng.random(24) > 0.2)
        occupancy = rng.uniform(0, 1, 24) * (rng.random(24) > 0.3)
        if seed == 0:
            occupancy = np.ones(24)  # every hour plugged in: only the energy binds
        energy, evse = rng.uniform(1, 40), rng.choice([3.3, 6.656, 7.2, 11.0])
        milp = solve_evsite_milp(headroom, rng.uniform(5, 30, 24), energy, evse, occupancy)
        assert energy_bound_chargers(headroom, energy, evse, occupancy) == milp.chargers


def test_energy_bound_count_is_zero_without_headroom() -> None:
    assert energy_bound_chargers(np.zeros(24), 10.0, 7.2, np.ones(24)) == 0
    assert energy_bound_chargers(np.full(24, 50.0), 10.0, 7.2, np.zeros(24)) == 0  # nobody plugged in


def test_the_cached_thread_limit_limits_blas_and_lets_go() -> None:
    import sklearn.cluster  # noqa: F401  (loads the OpenMP runtime the k-means uses)
    from threadpoolctl import threadpool_info

    before = [pool["num_threads"] for pool in threadpool_info()]
    with _one_thread():
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert [pool["num_threads"] for pool in threadpool_info()] == before
    with _one_thread():  # the cached controller works again
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert [pool["num_threads"] for pool in threadpool_info()] == before


@pytest.mark.parametrize("seed", range(4))
def test_placed_sessions_equal_the_charger_assignment_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for trial in range(40):
        m = int(rng.integers(0, 300))
        arrival = np.sort(rng.uniform(0, 150, m))
        if trial % 3 == 0:
            arrival = np.round(arrival)  # simultaneous arrivals and departures
        departure = arrival + (np.round(rng.exponential(8, m)) if trial % 3 == 0 else rng.exponential(8, m))
        if trial % 7 == 0:
            departure[::9] = arrival[::9]  # zero-length stays: the loop path
        for n in (0, 1, 3, int(rng.integers(4, 40)), 1000):  # from always full to never full
            expected = assign_chargers(arrival, departure, n) >= 0
            assert np.array_equal(placed_sessions(arrival, departure, n), expected)


def test_sizing_says_when_it_stopped_at_the_search_limit() -> None:
    s = office_like(days=30)

    class Limited(_P):
        max_chargers = 2

    roomy = Service(rating_a=800, voltage_v=208, phases=3)
    assert size_by_simulation(s, roomy, _pool(), Limited())["at_search_limit"] is True
    tight = Service(rating_a=300, voltage_v=208, phases=3)
    out = size_by_simulation(s, tight, _pool(), _P())
    assert out["at_search_limit"] is False and out["chargers"] < out["searched_up_to"]


def test_plan_at_the_search_limit_reports_at_least(tmp_path: Path, doe_csv: Path, shared_data: Path, capsys) -> None:
    df = pd.read_csv(doe_csv, index_col=0)
    meter = tmp_path / "office.csv"
    s = df["SmallOffice"].iloc[: 24 * 40]
    meter.write_text("timestamp,kW\n" + "".join(f"{t},{v}\n" for t, v in s.items()))
    sessions = shared_data / "ev-sessions" / "acn_caltech_sessions.csv"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        "[service]\nrating_a = 400\nvoltage_v = 208\nphases = 3\n[planning]\nk_max = 6\n"
        f'site_timezone = "America/New_York"\nev_sessions_file = "{sessions}"\nmax_chargers = 3\n'
    )  # 144 kVA for an office peaking near 25 kW: 3 chargers are far from the limit
    out = tmp_path / "out"
    args = ["plan", "--meter", str(meter), "--config", str(cfg), "--out", str(out), "--no-plots"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert ">= 3 (search limit)" in printed
    [b] = json.loads((out / "plan.json").read_text())["buildings"]
    assert b["chargers_with_lm"] == 3 and b["chargers_with_lm_is_lower_bound"] is True
    assert b["sizing"]["at_search_limit"] is True
    assert any(w.startswith("chargers with LM: >= 3:") and "max_chargers" in w for w in b["warnings"])
    with (out / "buildings.csv").open() as f:
        [row] = list(csv.DictReader(f))
    assert row["chargers_with_lm"] == ">= 3"
