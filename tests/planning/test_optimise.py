"""The evsite model (GEKKO/APOPT) against scipy's HiGHS milp, and the fixed seed model's structure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planning.capacity import Service, alm_headroom
from planning.cleaning import clean_series
from planning.ev_demand import EvDemand, demand_from_sessions
from planning.loadstudy import LoadStudy, daily_profiles
from planning.meter import read_meter
from planning.optimise import solve_evsite_gekko, solve_evsite_milp
from planning.seed_method import seed_bounds, solve_seed
from planning.tariff import seed_tariff

SUMMER = seed_tariff("business").hourly_prices(pd.DatetimeIndex(["2019-07-03"]))[0]
WORKPLACE = np.where((np.arange(24) >= 7) & (np.arange(24) < 19), 0.9, 0.1)


def _office_headroom(peak: float = 120.0, rating_kw: float = 200.0) -> np.ndarray:
    hours = np.arange(24)
    load = 30 + (peak - 30) * ((hours >= 8) & (hours < 18))
    return 0.8 * rating_kw - load


CASES = [
    # (headroom, prices, energy kWh per charger-day, evse kW, occupancy)
    (_office_headroom(), SUMMER, 12.0, 6.656, np.ones(24)),
    (_office_headroom(), SUMMER, 12.0, 6.656, WORKPLACE),
    (_office_headroom(150.0, 190.0), SUMMER, 20.0, 11.0, WORKPLACE),
    (np.r_[np.full(8, 5.0), np.zeros(16)], SUMMER, 7.0, 6.6, np.ones(24)),  # headroom only at night
    (np.linspace(1, 40, 24), np.linspace(30, 5, 24), 3.1, 6.6, WORKPLACE),
]


@pytest.mark.parametrize(("headroom", "prices", "energy", "evse", "occ"), CASES)
def test_gekko_matches_highs_milp(headroom, prices, energy, evse, occ) -> None:
    g = solve_evsite_gekko(headroom, prices, energy, evse, occ)
    r = solve_evsite_milp(headroom, prices, energy, evse, occ)
    assert g.chargers == r.chargers and isinstance(g.chargers, int)
    assert g.objective == pytest.approx(r.objective, rel=1e-6, abs=1e-4)
    assert g.cost_per_day == pytest.approx(r.cost_per_day, rel=1e-5, abs=1e-3)
    # The schedule is one an operator can apply: within headroom, within plugged-in power, energy served.
    h = np.clip(headroom, 0, None)
    assert np.all(g.power_kw <= h + 1e-6)
    assert np.all(g.power_kw <= evse * occ * g.chargers + 1e-6)
    assert g.power_kw.sum() == pytest.approx(energy * g.chargers, rel=1e-6)
    # Maximal: one more charger cannot be served by the headroom.
    assert energy * (g.chargers + 1) > np.minimum(h, evse * occ * (g.chargers + 1)).sum() - 1e-6


def test_cheap_hours_are_used_first() -> None:
    h = np.full(24, 50.0)
    g = solve_evsite_gekko(h, SUMMER, 10.0, 6.6, np.ones(24))
    night, day = g.power_kw[:8].sum(), g.power_kw[8:].sum()
    assert night == pytest.approx(min(8 * 50.0, 8 * 6.6 * g.chargers), rel=1e-6)
    assert day > 0  # more chargers than the night alone can serve, so day energy is bought too


def test_no_headroom_gives_zero_chargers() -> None:
    g = solve_evsite_gekko(np.full(24, -5.0), SUMMER, 10.0, 6.6, np.ones(24))
    assert g.chargers == 0 and g.power_kw.sum() == 0


def test_real_building_gekko_vs_milp(doe_csv: Path, shared_data: Path) -> None:
    [m] = read_meter(doe_csv, columns=["MediumOffice"])
    s, _ = clean_series(m.kw)
    prof, _ = daily_profiles(s)
    study = LoadStudy(k_max=8).fit(prof)
    svc = Service(rating_a=800, voltage_v=208, phases=3)
    head = alm_headroom(study.baseload(), svc)
    prices = seed_tariff("business").mean_prices(study.worst_days())
    ev = demand_from_sessions(shared_data / "ev-sessions" / "acn_caltech_sessions.csv")
    assert 1 < ev.energy_kwh_per_charger_day < 30 and ev.occupancy[3] < ev.occupancy[12]
    g = solve_evsite_gekko(head, prices, ev.energy_kwh_per_charger_day, svc.evse_kw, ev.occupancy)
    r = solve_evsite_milp(head, prices, ev.energy_kwh_per_charger_day, svc.evse_kw, ev.occupancy)
    assert g.chargers == r.chargers > 0
    assert g.objective == pytest.approx(r.objective, rel=1e-6)


def test_ev_demand_validation() -> None:
    with pytest.raises(Exception, match="> 0 kWh"):
        EvDemand(0.0)


# --- seed method -------------------------------------------------------------------------------------


def test_seed_bounds_as_published() -> None:
    base = np.r_[np.full(8, 100.0), np.full(16, 240.0)]
    dm, low, up = seed_bounds(base)
    assert dm == 300.0  # 240 rounded up to the next 100 kW
    assert low[0] == 200.0 and low[-1] == 60.0  # demand_max - baseload
    assert up == 240.0  # max(cap_low)=200 < 0.9*300 -> 0.8 * demand_max


@pytest.mark.parametrize("curtailment", [True, False])
def test_seed_structure_and_the_fixed_defects(curtailment: bool) -> None:
    hours = np.arange(24)
    base = 150 + 80 * np.sin((hours - 8) / 24 * 2 * np.pi)
    s = solve_seed(base, SUMMER, curtailment=curtailment)
    counts = s.active_chargers
    # The seed's outputs: max n (charger count), min n, cost per day = sum TOU n x / 100.
    assert s.chargers == counts.max() and s.extra["min_chargers"] == counts.min() >= 1
    assert s.cost_per_day == pytest.approx(float(SUMMER @ (counts * s.setpoint_kw)) / 100, rel=1e-6)
    # Integer counts that are truly integer (the seed's default solver gave 38.78).
    assert counts.dtype.kind == "i"
    # Setpoints within the curtailment band (or fixed at 6.6 kW).
    on = counts > 0
    if curtailment:
        assert np.all((s.setpoint_kw[on] >= 3 - 1e-6) & (s.setpoint_kw[on] <= 6.6 + 1e-6))
    else:
        assert np.allclose(s.setpoint_kw[on], 6.6)
    # The site never exceeds its capacity (the seed's run reached 323 kW against 300 kW).
    assert s.extra["max_site_load_kw"] <= s.extra["demand_max_kw"] + 1e-6
    # And the headroom is used: EV power within one charger of the bound in every hour.
    upper = np.asarray(s.extra["capacity_upper_kw"])
    assert np.all(1.1 * s.power_kw >= upper - 1.1 * 6.6 - 1e-3)  # solver tolerance


def test_seed_with_no_headroom_is_a_clear_error() -> None:
    from planning.errors import PlanningError

    with pytest.raises(PlanningError, match="no hour has headroom"):
        solve_seed(np.full(24, 99.9), SUMMER)  # demand_max 100: 0.1 kW spare
