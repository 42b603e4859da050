"""The aggregator's decision step and the closed loop against the Monte Carlo fleet and real RegD data."""

from __future__ import annotations

import numpy as np
import pytest

from controller.aggregator.core import (
    R_FORCED,
    REASONS,
    RegulationController,
    laxity_s,
    round_shares,
    select_per_bin,
)
from controller.aggregator.simulate import open_loop_errors, run_regulation
from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, Fleet, charge_until, seed_fleet
from planning.ssm_estimate import estimate_model


def test_select_per_bin_takes_the_lowest_priority_first_in_each_bin() -> None:
    bins = np.array([0, 0, 0, 1, 1, 2, 2])
    cand = np.array([True, True, True, True, False, True, True])
    prio = np.array([3.0, 1.0, 2.0, 0.0, -5.0, 9.0, 8.0])
    got = select_per_bin(cand, bins, np.array([2, 5, 1]), prio, 3)
    assert sorted(got.tolist()) == [1, 2, 3, 6]


@pytest.mark.parametrize(
    ("share", "ne", "expected"),
    [([0.25, 0.25, 0.5], 4, [1, 1, 2]), ([0.1, 0.1, 0.1], 10, [1, 1, 1]), ([0.15, 0.15, 0.0], 10, [2, 1, 0])],
)
def test_round_shares_keeps_the_total(share: list[float], ne: int, expected: list[int]) -> None:
    got = round_shares(np.array(share), ne)
    assert got.tolist() == expected and got.sum() == round(sum(share) * ne)


def _parked(n: int, soc: float | np.ndarray, seed: int = 0) -> Fleet:
    f = seed_fleet(n, seed)
    f.arrival_s[:] = 0.0
    f.departure_s[:] = 10 * 3600.0
    f.soc[:] = soc
    f.soc_target[:] = 0.5
    return f


def test_regulation_up_stops_charging_from_the_highest_soc_then_discharges() -> None:
    f = _parked(100, np.linspace(0.3, 0.9, 100))
    model = estimate_model(f, ns=20, duration_s=200)
    ctrl = RegulationController(f, model)
    p_now, up, down = ctrl.capacity(0.0, 300.0, 4.0)
    assert p_now < 0 and down == pytest.approx(0.0) and up > -p_now
    d = ctrl.decide(0.0, target_kw=p_now + 0.5 * (-p_now))  # stop about half the charging
    stopped = d.changed[d.new_mode == IDLE]
    assert 40 <= stopped.size <= 60
    assert f.soc[stopped].min() >= np.median(f.soc)  # highest SoC first
    d2 = ctrl.decide(4.0, target_kw=p_now + up)  # everything up: all idle, then discharge
    assert np.all(ctrl.commanded[f.soc > 0.16] != CHARGING)
    assert (ctrl.commanded == DISCHARGING).sum() > 50
    assert {REASONS[r] for r in d2.reason} <= {"regulation_up_stop_charge", "regulation_up_discharge"}


def test_never_discharges_cars_without_a_bidirectional_charger() -> None:
    f = _parked(200, 0.7)
    can = np.zeros(200, dtype=bool)
    can[:50] = True
    ctrl = RegulationController(f, estimate_model(f, ns=20, duration_s=200), can_discharge=can)
    ctrl.decide(0.0, target_kw=1e9)
    assert np.all(ctrl.commanded[50:] != DISCHARGING)
    assert np.all(ctrl.commanded[:50] == DISCHARGING)


@pytest.mark.parametrize(
    ("soc", "departure_h", "boundary", "forced"),
    [
        (0.10, 10.0, True, True),  # low SoC: forced to charge
        (0.40, 10.0, True, False),  # plenty of time: free
        (0.40, 0.5, True, True),  # needs its remaining time to reach the demanded SoC
        (0.10, 10.0, False, False),  # the plain model knows nothing of it
    ],
)
def test_forced_charging_respects_driver_demand(soc: float, departure_h: float, boundary: bool, forced: bool) -> None:
    f = _parked(1, soc)
    f.soc_target[:] = 0.8
    f.departure_s[:] = departure_h * 3600
    f.mode[:] = IDLE
    ctrl = RegulationController(f, estimate_model(_parked(50, 0.5), ns=20, duration_s=100), boundary=boundary)
    d = ctrl.decide(0.0, target_kw=1e9)  # regulation up wants everything off
    assert (ctrl.commanded[0] == CHARGING) == forced
    if forced:
        assert REASONS[d.reason[0]] == "forced_charge_driver_demand" and d.reason[0] == R_FORCED


def test_laxity() -> None:
    f = _parked(1, 0.5)
    f.soc_target[:] = 0.8
    need_s = 0.3 * f.capacity_kwh[0] / f.efficiency[0] / f.p_charge_kw[0] * 3600
    assert laxity_s(f, 100.0)[0] == pytest.approx(10 * 3600 - 100 - need_s)


@pytest.fixture(scope="module")
def regd_hour(shared_data) -> np.ndarray:
    import pandas as pd

    s = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv", nrows=43200)["regd"].to_numpy()
    return s[8 * 1800 : 9 * 1800 : 2]  # 08:00-09:00 on 4 s steps


def test_closed_loop_passes_pjm_and_meets_driver_demand(regd_hour: np.ndarray) -> None:
    f = seed_fleet(3000, 4)
    model = estimate_model(f.take(np.arange(1000)), duration_s=900, seed=1)
    t0 = 8 * 3600.0  # the morning group is leaving: driver demand matters
    charge_until(f, t0)
    run = run_regulation(f, regd_hour, model, t0_s=t0)
    assert run.mean_capacity_kw > 1000
    assert run.score.composite >= 0.75 and run.score.passed
    assert run.drivers.departed > 0 and run.drivers.met_share > 0.8
    assert run.prediction_error()["mae_per_capacity"] < 0.1
    # the fleet stays within what it declared
    assert np.all(np.abs(run.target_kw - run.base_kw) <= run.capacity_kw + 1e-6)


def test_boundary_handling_reduces_prediction_error() -> None:
    f = seed_fleet(3000, 5)
    t0 = 8 * 3600.0  # the morning cars are full by now
    charge_until(f, t0)
    errs = {}
    for boundary in (True, False):
        model = estimate_model(seed_fleet(1000, 6), duration_s=900, seed=2, boundary=boundary)
        errs[boundary] = open_loop_errors(f, model, t0_s=t0, duration_s=600, boundary=boundary)
    assert errs[True]["next_step_rel"] < 0.2 < errs[False]["next_step_rel"]
    assert errs[True]["ahead_rel"] < 0.2 < errs[False]["ahead_rel"]


def test_command_latency_shows_in_delay_and_precision(regd_hour: np.ndarray) -> None:
    scores = {}
    for latency in (0.0, 30.0):
        f = seed_fleet(2000, 7)
        model = estimate_model(f.take(np.arange(500)), duration_s=600, seed=1)
        charge_until(f, 8 * 3600.0)
        scores[latency] = run_regulation(f, regd_hour, model, t0_s=8 * 3600.0, latency_s=latency).score
    assert scores[0.0].delay_s == 0.0 and scores[30.0].delay_s == 30.0
    assert scores[30.0].delay == pytest.approx(0.9)
    assert scores[30.0].precision < scores[0.0].precision - 0.1
