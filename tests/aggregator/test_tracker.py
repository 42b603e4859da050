"""The hourly-market control law (``Tracker``) and its closed loop (``run_market``) on small fleets."""

from __future__ import annotations

import numpy as np
import pytest

from controller.aggregator.market import Conditions, departures, run_market
from controller.aggregator.tracker import Tracker, TrackerSettings
from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, CarPhysics, apply_setpoints, multi_day_fleet, seed_fleet
from planning.ssm import StateSpaceModel


def _tracker(n: int = 300, v2g: float = 0.5, **kw) -> tuple[Tracker, float]:
    f = seed_fleet(n, 3)
    t = 19 * 3600.0
    can = np.random.default_rng(0).random(n) < v2g
    tr = Tracker(f, StateSpaceModel(20), TrackerSettings(**kw), departure_est_s=f.departure_s, can_discharge=can)
    tr.observe_online(f.online(t))
    return tr, t


def test_offer_covers_the_energy_need_and_the_signal_moves_only_the_current() -> None:
    tr, t = _tracker()
    offer, _ = tr.offer(t)
    assert -offer.base_kw >= offer.required_kw > 0 and offer.capacity_kw > 0
    modes = tr.mode.copy()
    for sig in (-1.0, -0.3, 0.4, 1.0):  # inside the offer: modulation, no switch
        st = tr.decide(t + 10, offer.base_kw + sig * offer.capacity_kw)
        assert st.switched.size == 0 and abs(st.gap_kw) < 1e-6
        np.testing.assert_array_equal(tr.mode, modes)
    sp = tr.sent_kw
    assert np.all(sp[tr.mode == IDLE] == 0.0)
    assert np.all(sp[(tr.mode == CHARGING) & ~tr.forced] >= tr.fleet.p_min_kw[(tr.mode == CHARGING) & ~tr.forced])


def test_discharge_only_where_declared_and_hold_respected() -> None:
    tr, t = _tracker(v2g=0.3)
    offer, _ = tr.offer(t)
    st = tr.decide(t + 2, offer.base_kw + 10 * offer.capacity_kw)  # far beyond: switches are needed
    assert not np.any((tr.mode == DISCHARGING) & ~tr.can_discharge)
    assert np.all(tr.sent_kw[~tr.can_discharge] >= 0.0)
    # cars just switched are held: asking for the opposite at once switches none of them back
    before = tr.mode.copy()
    st2 = tr.decide(t + 4, offer.base_kw - 10 * offer.capacity_kw)
    assert not np.isin(st.switched, st2.switched[~tr.forced[st2.switched]]).any()
    assert np.all(tr.mode[st.switched] == before[st.switched]) or tr.forced[st.switched].any()


def test_no_setpoint_above_the_granted_limit() -> None:
    tr, t = _tracker()
    tr.limit_kw = np.where(np.arange(len(tr.fleet)) % 2 == 0, 2.0, 0.0)
    offer, _ = tr.offer(t)
    tr.decide(t + 2, offer.base_kw - offer.capacity_kw)
    assert np.all(tr.sent_kw <= tr.limit_kw + 1e-9)
    assert np.all(tr.sent_kw[1::2] <= 0.0)  # no grant: never charges


def test_car_physics_minimum_current_taper_and_ramp() -> None:
    f = seed_fleet(3, 0)
    f.soc[:] = [0.5, 0.9, 0.5]
    f.ramp_s[:] = [0.0, 0.0, 10.0]
    p = apply_setpoints(f, np.array([1.0, 7.0, 7.0]), np.zeros(3), 2.0, CarPhysics(soc_cv=0.8))
    assert p[0] == 0.0  # below the charger's minimum: no charge
    assert p[1] == pytest.approx(f.p_charge_kw[1] * 0.5)  # half-way through the taper
    assert p[2] == pytest.approx(f.p_charge_kw[2] * 2.0 / 10.0)  # ramp: a fifth of rated in 2 s


def test_departures_spread_around_the_estimate_with_early_leavers() -> None:
    f = seed_fleet(4000, 0)
    est, truth = departures(f, Conditions(departure_sd_s=600.0, early_share=0.2), np.random.default_rng(0))
    early = truth <= est - 1800.0
    assert 0.15 < early.mean() < 0.3 and np.all(truth >= f.arrival_s + 900.0)


def test_closed_loop_scores_switches_and_drivers_on_a_small_fleet(shared_data) -> None:
    import pandas as pd

    sig = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv")["regd"].to_numpy()
    fleet = multi_day_fleet(300, 1, 5)
    from planning.ssm_estimate import estimate_model

    model = estimate_model(fleet.take(np.arange(300)), duration_s=600.0, dt_s=4.0, seed=0)
    can = np.random.default_rng(1).random(len(fleet)) < 0.5
    r = run_market(fleet, sig[17 * 1800 : 19 * 1800], model, t0_s=17 * 3600.0, can_discharge=can, seed=2)
    assert len(r.hours) == 2 and all(h.offer.capacity_kw > 0 for h in r.hours)
    assert r.score.composite > 0.8
    st = r.switch_stats()
    assert st["median"] <= 6.0
    assert r.commands > 0 and r.car_hours > 0
    # the hour's base and capacity never move within the hour
    assert np.unique(r.base_kw[:1800]).size == 1 and np.unique(r.capacity_kw[1800:]).size == 1
