"""The hourly-market control law (``Tracker``) and its closed loop (``run_market``) on small fleets."""

from __future__ import annotations

import numpy as np
import pytest

from controller.aggregator.market import Conditions, MarketRun, departures, run_market
from controller.aggregator.tracker import Tracker, TrackerSettings, share_base
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


def _closed_loop(shared_data, n: int, from_h: int, to_h: int) -> MarketRun:
    """``run_market`` for ``n`` seed-study EVs (fleet seed 5, half bidirectional) on RegD from ``from_h``."""
    import pandas as pd

    from planning.ssm_estimate import estimate_model

    sig = pd.read_csv(shared_data / "regulation" / "pjm_regd_2s_2020-07-16_17.csv")["regd"].to_numpy()
    fleet = multi_day_fleet(n, 1, 5)
    model = estimate_model(fleet.take(np.arange(n)), duration_s=600.0, dt_s=4.0, seed=0)
    can = np.random.default_rng(1).random(len(fleet)) < 0.5
    return run_market(fleet, sig[from_h * 1800 : to_h * 1800], model, t0_s=from_h * 3600.0, can_discharge=can,
                      seed=2)  # fmt: skip


def test_closed_loop_scores_switches_and_drivers_on_a_small_fleet(shared_data) -> None:
    r = _closed_loop(shared_data, 300, 17, 19)
    assert len(r.hours) == 2 and all(h.offer.capacity_kw > 0 for h in r.hours)
    assert r.score.composite > 0.8
    st = r.switch_stats()
    assert st["median"] <= 6.0
    assert r.commands > 0 and r.car_hours > 0
    # the hour's base and capacity never move within the hour
    assert np.unique(r.base_kw[:1800]).size == 1 and np.unique(r.capacity_kw[1800:]).size == 1


def test_a_day_from_midnight_keeps_the_evening_offering(shared_data) -> None:
    # 300 EVs a day from midnight (about 13 s): the evening group arrives 17:30 +- 3.4 h and most leave
    # 22:00-24:00. Before each car had its own share of the base and its energy was due before the hour it
    # leaves in, they were all still charging at 22:00 and the hour offered nothing.
    r = _closed_loop(shared_data, 300, 0, 24)
    evening = r.hours[22]
    assert evening.offer.capacity_kw > 0.0 and evening.score.composite > 0.8
    assert r.score.composite >= 0.9
    assert sum(h.offer.capacity_kw > h.deliverable_kw + 1e-6 for h in r.hours) <= 1
    assert r.drivers.early_met_share >= 0.8 and r.switch_stats()["median"] <= 6.0


def _four_cars() -> tuple[Tracker, float]:
    """Four cars at 10:00, departing (by estimate) 12:00, slack margin 45 min: one done, one with half an hour
    of slack, one below the force-charge SoC, one behind a bidirectional charger with hours of slack."""
    f = seed_fleet(4, 0)
    t = 10 * 3600.0
    f.arrival_s[:] = t - 600.0
    f.p_charge_kw[:] = f.p_discharge_kw[:] = 6.0
    f.efficiency[:] = 1.0
    f.capacity_kwh[:] = 20.0
    f.soc_target[:] = 0.8
    # need 0 kWh; 6 kWh (1 h at 6 kW: slack 1.25 h - 1 h = 15 min); forced (SoC 0.1); need 0 kWh
    f.soc[:] = [0.85, 0.5, 0.1, 0.8]
    f.departure_s[:] = [t + 2 * 3600.0, t + 2 * 3600.0, t + 2 * 3600.0, t + 6 * 3600.0]
    can = np.array([False, False, False, True])
    tr = Tracker(f, StateSpaceModel(20), TrackerSettings(), departure_est_s=f.departure_s, can_discharge=can)
    tr.observe_online(f.online(t))
    return tr, t


def test_floor_counts_what_cars_must_draw_and_not_the_cars_that_are_done() -> None:
    tr, t = _four_cars()
    forced = tr._update_forced(t)
    assert forced.tolist() == [False, False, True, False]
    ceil = tr.ceiling_kw()
    floor = tr._floor_kw(t, tr.online, ceil, forced, 3600.0)
    # done car: nothing, though its slack (1.25 h less the hour) is short; 15 min slack in the hour: 3/4 of
    # its ceiling; forced: its ceiling; bidirectional with hours of slack: minus its discharge power
    assert floor == pytest.approx([0.0, 0.75 * ceil[1], ceil[2], -6.0])
    # at the instant only the forced car must draw
    assert tr._floor_kw(t, tr.online, ceil, forced, 0.0) == pytest.approx([0.0, 0.0, ceil[2], -6.0])


def test_up_forecast_counts_yesterdays_forced_arrivals() -> None:
    tr, t = _four_cars()
    up_alone = tr.offer(t)[0].up_kw
    tr2, _ = _four_cars()
    # yesterday, in this clock hour, cars drawing 8 kW arrived with no slack: the floor at the hour's end
    tr2.arrivals_floor_kw[int(t // 3600.0) - 24] = 8.0
    offer = tr2.offer(t)[0]
    assert offer.up_kw < up_alone
    ceil = tr2.ceiling_kw()
    now = tr2._floor_kw(t, tr2.online, ceil, tr2.forced, 3600.0).sum()
    end = (tr2._floor_kw(t, tr2.online, ceil, tr2.forced, 0.0) * tr2.stay_probability(t + 3600.0)).sum() + 8.0
    assert end > now  # the arrivals make the hour's end the tighter bound
    assert 0.0 < offer.up_kw == pytest.approx(-offer.base_kw - end)


def test_arrivals_are_remembered_with_what_they_must_draw() -> None:
    tr, t = _four_cars()
    f = tr.fleet
    f.arrival_s[:] = t + 100.0  # nobody yet
    tr.observe_online(f.online(t), t)
    assert tr.arrivals_kw == {} and tr.arrivals_floor_kw == {}
    tr.observe_online(f.online(t + 200.0), t + 200.0)  # all four arrive within the 10:00 hour
    assert tr.arrivals_kw[10] == pytest.approx(24.0)
    # only the car below the force-charge SoC must draw on arrival; the bidirectional one can discharge
    assert tr.arrivals_floor_kw[10] == pytest.approx(tr.ceiling_kw()[2] - 6.0)


def test_deliverable_does_not_ask_cars_that_are_done_to_draw() -> None:
    # car 0 needs 36 kWh (6 h at 6 kW) with 2.5 h of slack; car 1 is done and leaves (by estimate) 40 min
    # after the hour, so its slack is under the hour
    f = seed_fleet(2, 0)
    f.arrival_s[:] = 2 * 3600.0 - 60.0
    f.departure_s[:] = [12 * 3600.0, 2 * 3600.0 + 2400.0]
    f.p_charge_kw[:] = f.p_discharge_kw[:] = 6.0
    f.capacity_kwh[:] = 60.0
    f.efficiency[:] = 1.0
    f.soc_target[:] = 0.8
    f.soc[:] = f.soc_initial[:] = [0.2, 0.85]
    sig = np.zeros(1800)
    cond = Conditions(departure_sd_s=0.0, early_share=0.0, command_loss_share=0.0)
    r = run_market(f, sig, StateSpaceModel(20), t0_s=2 * 3600.0, conditions=cond, seed=0)
    h = r.hours[0]
    base = -h.offer.base_kw
    assert base > 0.0
    # nothing has to be drawn all hour (car 0 has slack, car 1 needs nothing): the fleet could go to zero
    assert h.deliverable_up_kw == pytest.approx(base)


def test_base_shares_follow_each_cars_energy_rate_within_its_range() -> None:
    lo = np.array([1.4, 1.4, 0.0, -6.0])
    hi = np.array([6.0, 6.0, 0.0, -1.4])
    rate = np.array([2.0, 5.0, 0.0, -3.0])
    # the base the rates add up to: each car exactly its rate
    np.testing.assert_allclose(share_base(4.0, rate, lo, hi), rate)
    # a higher base: each moves up by the same share of its room (4 kW more out of 4 + 1 + 0 + 1.6 kW of room)
    up = share_base(8.0, rate, lo, hi)
    np.testing.assert_allclose(up, rate + 4.0 / 6.6 * np.array([4.0, 1.0, 0.0, 1.6]))
    assert up.sum() == pytest.approx(8.0)
    # a lower base than the ranges allow: every car at its bottom, none below
    np.testing.assert_allclose(share_base(-20.0, rate, lo, hi), lo)
    # rates outside the range are clipped into it (a rate under the minimum current charges at the minimum)
    np.testing.assert_allclose(share_base(6.0, np.array([0.5, 9.0, 0.0, -1.4]), lo, hi), [1.4, 6.0, 0.0, -1.4])
    # cars that may not move keep their rate; the others take the whole gap
    fixed = np.array([True, False, True, True])
    np.testing.assert_allclose(share_base(4.5, rate, lo, hi, movable=~fixed), [2.0, 5.5, 0.0, -3.0])


def test_a_needy_car_gets_its_share_and_a_car_that_is_done_none() -> None:
    tr, t = _tracker()
    offer, _ = tr.offer(t)
    base = -offer.base_kw
    tr.decide(t + 2, offer.base_kw)  # the signal at 0: every car at its share
    assert tr.sent_kw.sum() == pytest.approx(base)
    np.testing.assert_allclose(tr.sent_kw, tr.base_kw, atol=0.1)  # the command deadband
    ch = np.flatnonzero((tr.mode == CHARGING) & ~tr.forced & tr.online)
    rate = tr.base_kw[ch]
    # the shares differ with the cars' needs (one common position in every range would not)
    need, big = tr.need_kwh()[ch], np.argsort(tr.need_kwh()[ch])
    assert rate[big[-10:]].mean() > rate[big[:10]].mean() and need[big[-1]] > need[big[0]]
    # the neediest charging car reaches its demand: at the same target it drops to its minimum current and
    # the others take its share
    k = ch[big[-1]]
    tr.soc[k] = tr.fleet.soc_target[k]
    st = tr.decide(t + 4, offer.base_kw)
    assert tr.sent_kw[k] == pytest.approx(min(tr.fleet.p_min_kw[k], tr.ceiling_kw()[k]))
    assert abs(st.gap_kw) < 1e-6 and tr.base_kw.sum() == pytest.approx(base)  # (small moves wait: deadband)


def test_energy_is_due_before_the_hour_the_car_leaves_in() -> None:
    tr, t = _four_cars()  # car 1: 6 kWh to go, leaves 12:00 by estimate, 45 min margin: 11:15
    on_time = Tracker(tr.fleet, tr.model, TrackerSettings(due_by_last_hour=False), departure_est_s=tr.departure_est_s,
                      can_discharge=tr.can_discharge)  # fmt: skip
    on_time.observe_online(tr.online)
    early = tr.offer(t)[0]
    late = on_time.offer(t)[0]
    # due at 11:00 rather than 11:15: 6 kWh in 1 h rather than 1.25 h (the forced car counts the same in both)
    assert early.required_kw - late.required_kw == pytest.approx(6.0 - 6.0 / 1.25)


@pytest.mark.parametrize("hour", [2, 9, 14, 19, 21, 22, 23])
def test_the_offer_never_exceeds_the_forecast_of_what_the_fleet_can_hold(hour: int) -> None:
    f = seed_fleet(400, 7)
    t = hour * 3600.0
    tr = Tracker(f, StateSpaceModel(20), TrackerSettings(), departure_est_s=f.departure_s,
                 can_discharge=np.random.default_rng(0).random(400) < 0.5)  # fmt: skip
    tr.observe_online(f.online(t))
    offer, _ = tr.offer(t)
    assert offer.capacity_kw <= min(offer.up_kw, offer.down_kw) * (1.0 - tr.s.safety_margin) + 1e-9


def test_ssm_end_ceiling_stops_at_the_demand_plus_an_hour_at_the_minimum_current() -> None:
    tr, _ = _four_cars()
    ns = tr.model.ns
    # an A that sends every charging car to the top SoC bin within a step (the fleet-wide chain alone would
    # taper every charging car to nothing)
    a = np.eye(3 * ns)
    a[:, :ns] = 0.0
    a[ns - 1, :ns] = 1.0
    tr.model.A_ = a
    tr.mode[:] = CHARGING
    f = tr.fleet
    end = tr.ceiling_end_kw(3600.0)
    past = f.p_min_kw * f.efficiency / f.capacity_kwh  # an hour at the minimum current, in SoC
    soc_end = np.maximum(f.soc_target, tr.soc) + past
    expected = f.p_charge_kw * np.clip((1.0 - soc_end) / (1.0 - tr.s.soc_cv), 0.0, 1.0)
    np.testing.assert_allclose(end, expected)
    assert np.all(end > 0.0)
    # idle cars stay where they are (identity block): the taper at their own SoC bin's middle
    tr.mode[:] = IDLE
    mid = (np.floor(tr.soc * ns) + 0.5) / ns
    np.testing.assert_allclose(tr.ceiling_end_kw(3600.0),
                               f.p_charge_kw * np.clip((1.0 - np.minimum(mid, soc_end)) / 0.2, 0.0, 1.0))  # fmt: skip


def test_a_done_car_leaving_within_the_hour_is_flexible_and_nothing_offered_means_energy_only() -> None:
    tr, t = _four_cars()  # at 10:00; cars 0-2 leave 12:00 by estimate (11:15 less the margin), car 3 at 16:00
    t2 = t + 1800.0  # 10:30: cars 0-2 leave within the hour
    offer, _ = tr.offer(t2)
    # car 0 is done: flexible while it stays; car 1 needs energy and leaves: a fixed load; car 2 is forced
    assert offer.flexible == 2  # cars 0 and 3
    # the same cars at 11:30, all gone by the hour's end (car 3 too) and two of them done: no offer is
    # possible; then the cars that are done stay idle and the base is what the energy needs
    tr2, _ = _four_cars()
    tr2.departure_est_s[3] = tr2.departure_est_s[0]
    tr2.fleet.departure_s[3] = tr2.fleet.departure_s[0]
    offer2, _ = tr2.offer(t + 5400.0)
    assert offer2.capacity_kw == 0.0
    assert tr2.mode[0] == IDLE and tr2.mode[3] == IDLE
    # (cars 1 and 2 are forced by then: their ceilings are the whole need, and the most the modes allow)
    assert -offer2.base_kw == pytest.approx(offer2.forced_kw) == pytest.approx(offer2.required_kw)


def test_switching_at_the_range_edge_adds_to_the_offer_within_the_forecast() -> None:
    f = seed_fleet(400, 7)
    can = np.random.default_rng(0).random(400) < 0.5
    more = 0
    for hour in (2, 9, 14, 19, 21, 22):
        caps = []
        for room in (0.0, 1.0):
            t = hour * 3600.0
            tr = Tracker(f, StateSpaceModel(20), TrackerSettings(switch_room=room), departure_est_s=f.departure_s,
                         can_discharge=can)  # fmt: skip
            tr.observe_online(f.online(t))
            offer, _ = tr.offer(t)
            assert offer.capacity_kw <= min(offer.up_kw, offer.down_kw) * (1.0 - tr.s.safety_margin) + 1e-9
            caps.append(offer.capacity_kw)
        assert caps[1] >= caps[0] - 1e-9
        more += caps[1] > caps[0] + 1.0
    assert more >= 1  # in some hour the switching room is what lets the fleet offer more
