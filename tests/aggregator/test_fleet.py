"""The vectorised EV fleet: distributions, reproducibility, SoC physics and bounds, real-data builders."""

from __future__ import annotations

import numpy as np
import pytest

from evsite.ev_fleet import (
    CHARGING,
    DISCHARGING,
    IDLE,
    SOC_MAX,
    SOC_MIN,
    Fleet,
    FleetDataError,
    FleetStepper,
    behaviour_fleet,
    replay_sessions,
    seed_fleet,
    step,
    truncnorm,
)


def _one(soc: float, mode: int, p: float = 6.0, eff: float = 0.9, cap: float = 20.0) -> Fleet:
    return Fleet(
        arrival_s=np.array([0.0]),
        departure_s=np.array([1e6]),
        capacity_kwh=np.array([cap]),
        p_charge_kw=np.array([p]),
        p_discharge_kw=np.array([p]),
        efficiency=np.array([eff]),
        soc=np.array([soc]),
        soc_target=np.array([0.8]),
        mode=np.array([mode], dtype=np.int8),
    )


@pytest.mark.parametrize(
    ("mean", "sd", "lo", "hi"),
    [(0.3, 0.05, 0.2, 0.4), (-6.5, 3.4, 0.0, 5.5), (32.9, 3.4, 20.9, 24.0), (0.0, 1.0, 5.0, 6.0)],
)
def test_truncnorm_stays_in_bounds_and_matches_scipy_mean(mean: float, sd: float, lo: float, hi: float) -> None:
    from scipy.stats import truncnorm as sp

    x = truncnorm(np.random.default_rng(1), mean, sd, lo, hi, 200_000)
    assert x.min() >= lo and x.max() <= hi
    expected = sp.mean((lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
    assert x.mean() == pytest.approx(expected, abs=0.01 * (hi - lo))


def test_seed_fleet_follows_the_study_and_is_reproducible() -> None:
    a, b = seed_fleet(20_000, 7), seed_fleet(20_000, 7)
    np.testing.assert_array_equal(a.soc, b.soc)
    np.testing.assert_array_equal(a.arrival_s, b.arrival_s)
    assert not np.array_equal(a.soc, seed_fleet(20_000, 8).soc)
    assert 5.0 <= a.p_charge_kw.min() and a.p_charge_kw.max() <= 7.0
    assert a.p_charge_kw.mean() == pytest.approx(6.0, abs=0.02)
    assert 0.88 <= a.efficiency.min() and a.efficiency.max() <= 0.95
    assert 20 <= a.capacity_kwh.min() and a.capacity_kwh.max() <= 30
    assert 0.2 <= a.soc.min() and a.soc.max() <= 0.4
    assert 0.7 <= a.soc_target.min() and a.soc_target.max() <= 0.9
    assert np.all(a.arrival_s <= a.departure_s)
    assert np.all(a.mode == CHARGING)
    # Two equal groups: the second arrives in the evening (5.5 h .. 24 h).
    assert np.all(a.arrival_s[10_000:] >= 5.5 * 3600)
    assert np.all(a.arrival_s[:10_000] <= 5.5 * 3600)


@pytest.mark.parametrize(
    ("soc", "mode", "dt", "soc_after", "mode_after", "power"),
    [
        # charging: dSoC = dt/3600 * 6 kW * 0.9 / 20 kWh
        (0.5, CHARGING, 3600.0, 0.5 + 6 * 0.9 / 20, CHARGING, 6.0),
        (0.5, IDLE, 3600.0, 0.5, IDLE, 0.0),
        # discharging: the battery also supplies the losses: dSoC = 6 / (0.9 * 20)
        (0.5, DISCHARGING, 3600.0, 0.5 - 6 / (0.9 * 20), DISCHARGING, -6.0),
        # hits the top: only the energy to SOC_MAX is drawn, then idle
        (0.99, CHARGING, 3600.0, SOC_MAX, IDLE, (SOC_MAX - 0.99) * 20 / 0.9),
        (0.01, DISCHARGING, 3600.0, SOC_MIN, IDLE, -(0.01 - SOC_MIN) * 20 * 0.9),
        (SOC_MAX, CHARGING, 4.0, SOC_MAX, IDLE, 0.0),
    ],
)
def test_step_integrates_soc_with_efficiency_and_bounds(
    soc: float, mode: int, dt: float, soc_after: float, mode_after: int, power: float
) -> None:
    f = _one(soc, mode)
    r = step(f, 10.0, dt)
    assert f.soc[0] == pytest.approx(soc_after)
    assert f.mode[0] == mode_after
    assert r.power_kw[0] == pytest.approx(power)


def test_step_with_charger_power_is_clipped_to_the_car_and_offline_cars_are_frozen() -> None:
    f = seed_fleet(4, 0)
    f.arrival_s[:] = [0, 0, 0, 500]
    f.departure_s[:] = [1000, 1000, 1000, 1000]
    soc0 = f.soc.copy()
    r = FleetStepper(f).step(100.0, 4.0, np.array([100.0, -100.0, 2.0, 5.0]))
    np.testing.assert_allclose(r.power_kw[:3], [f.p_charge_kw[0], -f.p_discharge_kw[1], 2.0])
    assert r.power_kw[3] == 0.0 and f.soc[3] == soc0[3]
    assert list(r.online) == [True, True, True, False]
    assert f.soc[0] > soc0[0] and f.soc[1] < soc0[1]


def test_stepper_energy_balance_over_many_steps() -> None:
    f = seed_fleet(2_000, 3)
    f.arrival_s[:] = 0.0
    f.departure_s[:] = 1e9
    e0 = f.soc * f.capacity_kwh
    s = FleetStepper(f)
    grid_kwh = np.zeros(len(f))
    for k in range(900):  # one hour at 4 s
        grid_kwh += s.step(4.0 * k, 4.0).power_kw * 4.0 / 3600
    # Every car charges from ~0.3 for an hour at 5-7 kW: nobody is full yet, so each drew its rating.
    np.testing.assert_allclose(grid_kwh, f.p_charge_kw, rtol=1e-9)
    np.testing.assert_allclose(f.soc * f.capacity_kwh - e0, grid_kwh * f.efficiency, rtol=1e-9)


def test_energy_shortfall() -> None:
    f = _one(0.5, IDLE, cap=40.0)
    assert f.energy_shortfall_kwh()[0] == pytest.approx(0.3 * 40.0)
    f.soc[:] = 0.9
    assert f.energy_shortfall_kwh()[0] == 0.0


def test_take_copies_a_subset() -> None:
    f = seed_fleet(10, 0)
    sub = f.take(np.array([2, 5]))
    assert len(sub) == 2 and sub.soc[1] == f.soc[5]
    sub.soc[0] = 0.0
    assert f.soc[2] != 0.0


def test_fleet_rejects_mismatched_arrays() -> None:
    f = seed_fleet(3, 0)
    with pytest.raises(ValueError, match="soc has shape"):
        Fleet(**{**{k: getattr(f, k) for k in ("arrival_s", "departure_s", "capacity_kwh", "p_charge_kw")},
                 "p_discharge_kw": f.p_discharge_kw, "efficiency": f.efficiency, "soc": f.soc[:2],
                 "soc_target": f.soc_target, "mode": f.mode})  # fmt: skip


def test_behaviour_fleet_samples_workplace_distributions(shared_data) -> None:
    f = behaviour_fleet(20_000, 5, shared_data / "ev-behaviour")
    g = behaviour_fleet(20_000, 5, shared_data / "ev-behaviour")
    np.testing.assert_array_equal(f.arrival_s, g.arrival_s)
    arr_h = f.arrival_s / 3600
    # Workplace arrivals cluster in the morning.
    assert 0.5 < np.mean((arr_h >= 6) & (arr_h < 11))
    stay_h = (f.departure_s - f.arrival_s) / 3600
    assert 3 < np.median(stay_h) < 10
    assert np.all(f.soc < f.soc_target) and np.all(f.soc >= 0.05)
    assert f.p_charge_kw.max() <= 11.0 and f.capacity_kwh.min() > 10


def test_behaviour_fleet_unknown_column_is_a_clear_error(shared_data) -> None:
    with pytest.raises(FleetDataError, match="no column 'harbour'"):
        behaviour_fleet(10, 0, shared_data / "ev-behaviour", location="harbour")


def test_replay_sessions_builds_one_ev_per_real_session(shared_data) -> None:
    from datetime import UTC, datetime

    path = shared_data / "ev-sessions" / "acn_caltech_sessions.csv"
    start = datetime(2021, 3, 1, tzinfo=UTC)
    f = replay_sessions(path, start=start, end=datetime(2021, 3, 8, tzinfo=UTC))
    assert 20 < len(f) < 1000
    assert f.epoch == start
    assert np.all(f.departure_s > f.arrival_s) and np.all(f.departure_s >= 0)
    assert np.all(f.soc < f.soc_target)


def test_replay_sessions_missing_file(tmp_path) -> None:
    with pytest.raises(FleetDataError, match="not found"):
        replay_sessions(tmp_path / "nope.csv")
