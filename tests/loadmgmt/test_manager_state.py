"""The load manager's bookkeeping, fed bus events directly: stale meter, non-compliance, offline chargers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller import events as ev
from controller.loadmgmt.manager import LoadManager
from evsite.clock import ManualClock
from evsite.meter_reading import MeterReading
from evsite.site_state import SiteLimitOverride
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def manager(tmp_path: Path):
    cfg = site_config(tmp_path, "building_peak_kw = 25\nreserve_kw = 0\nresponse_s = 5", "stale_after_s = 30")
    clock = ManualClock(NOW)
    lm, store = load_manager(cfg, clock)
    yield lm, clock
    store.close()


async def test_a_stale_meter_counts_as_the_highest_known_building_load(manager) -> None:
    lm, clock = manager
    lm.handle("meter/site", MeterReading(NOW, 12.0))
    assert lm.building_kw(clock.now()) == (12.0, False)
    await clock.advance(31)
    assert lm.building_kw(clock.now()) == (25.0, True)  # building_peak_kw beats the last reading
    lm.handle("meter/site", MeterReading(clock.now(), 40.0))
    assert lm.building_kw(clock.now()) == (40.0, False)


def _connect_and_start(lm: LoadManager, at: datetime) -> None:
    lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", True, at))
    for c in (1, 2):
        lm.handle("ocpp/status", ev.StatusEvent("CP1", c, "Charging", "NoError", at))
        lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", c, c, "started", "TAG", 0, at))
        lm.tracks[("CP1", c)].set_limit(10.0, at, at + timedelta(seconds=120), "test")


async def test_a_charger_over_its_limit_longer_than_the_response_time_is_flagged_and_reserved(manager) -> None:
    lm, clock = manager
    _connect_and_start(lm, NOW)
    lm.handle("meter/site", MeterReading(NOW, 5.0))
    t = clock.now()
    lm.handle("ocpp/meter", ev.MeterEvent("CP1", 1, 1, t, current_a=20.0, power_w=13800.0))
    assert not lm.tracks[("CP1", 1)].noncompliant  # once is not yet longer than the response time
    lm.handle("ocpp/meter", ev.MeterEvent("CP1", 1, 1, t + timedelta(seconds=6), current_a=20.0, power_w=13800.0))
    track = lm.tracks[("CP1", 1)]
    assert track.noncompliant
    snap, _, _ = lm.snapshot(clock.now())
    assert snap.sessions.fixed_a[0] == 20.0  # its measured draw, not its 10 A limit, is reserved
    assert np.isnan(snap.sessions.fixed_a[1])  # the compliant connector stays under control
    # Within the tolerance (2 A) a draw is compliant.
    lm.handle("ocpp/meter", ev.MeterEvent("CP1", 2, 2, t, current_a=10.5, power_w=7000.0))
    assert not lm.tracks[("CP1", 2)].noncompliant


async def test_offline_charger_is_fixed_at_its_last_limit_then_its_fail_safe(manager) -> None:
    lm, clock = manager
    _connect_and_start(lm, NOW)
    lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", False, NOW, "network"))
    snap, _, _ = lm.snapshot(clock.now())
    assert list(snap.sessions.fixed_a) == [10.0, 10.0]
    await clock.advance(121)  # the live profiles have expired on the charger
    snap, _, _ = lm.snapshot(clock.now())
    assert list(snap.sessions.fixed_a) == [max(10.0, lm.fail_safe_a)] * 2


def test_an_operator_limit_is_clamped_to_the_continuous_rating(manager) -> None:
    lm, clock = manager
    continuous = 100 * 400 * 3**0.5 / 1000 * 0.8
    lm.handle("loadmgmt/site_limit", SiteLimitOverride(10_000.0, NOW + timedelta(hours=1), "api user"))
    assert lm.limit_kw() == pytest.approx(continuous)
    lm.handle("loadmgmt/site_limit", SiteLimitOverride(20.0, NOW + timedelta(hours=1), "api user"))
    assert lm.limit_kw() == 20.0
    snap, _, _ = lm.snapshot(clock.now())
    assert "operator site limit kW" in snap.constraints.names


def test_a_departure_set_on_the_bus_replaces_the_default_estimate(manager) -> None:
    from evsite.departure_update import DepartureUpdate

    lm, clock = manager
    _connect_and_start(lm, NOW)
    snap, _, _ = lm.snapshot(clock.now())
    assert snap.sessions.departure_s[0] == pytest.approx(lm.config.site.departure_default_h * 3600)
    lm.handle("loadmgmt/departure", DepartureUpdate("CP1", 1, NOW + timedelta(hours=2), 12.0, "driver app"))
    snap, _, _ = lm.snapshot(clock.now())
    assert snap.sessions.departure_s[0] == pytest.approx(7200.0)
    assert snap.sessions.energy_requested_kwh[0] == 12.0
    assert np.isnan(snap.sessions.energy_requested_kwh[1])  # the other session keeps the estimate


def test_a_charger_silent_past_its_heartbeat_timeout_is_offline(manager) -> None:
    lm, clock = manager
    _connect_and_start(lm, NOW)
    lm.handle("ocpp/online", ev.ChargerOnlineEvent("CP1", False, NOW, "heartbeat_timeout"))
    snap, _, _ = lm.snapshot(clock.now())
    assert list(snap.sessions.fixed_a) == [10.0, 10.0]
    lm.handle("ocpp/online", ev.ChargerOnlineEvent("CP1", True, NOW, "message"))
    snap, _, _ = lm.snapshot(clock.now())
    assert np.isnan(snap.sessions.fixed_a).all()


def test_a_profile_sent_outside_load_management_is_counted_until_it_is_gone(manager) -> None:
    lm, clock = manager
    _connect_and_start(lm, NOW)
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 24}]}
    tx_default = {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 5, "chargingSchedule": schedule}
    lm.handle("ocpp/profile", ev.ProfileEvent("CP1", "SetChargingProfile", 1, tx_default, "Accepted", "operator", NOW))
    snap, _, _ = lm.snapshot(clock.now())
    assert snap.sessions.fixed_a[0] == 24.0 and np.isnan(snap.sessions.fixed_a[1])
    # Load management's own profiles and refused ones change nothing.
    lm.handle("ocpp/profile", ev.ProfileEvent("CP1", "SetChargingProfile", 2, tx_default, "Accepted",
                                              "load management: equal share", NOW))  # fmt: skip
    lm.handle("ocpp/profile", ev.ProfileEvent("CP1", "SetChargingProfile", 2, tx_default, "Rejected", "x", NOW))
    assert lm.tracks[("CP1", 2)].foreign_a is None
    lm.handle("ocpp/profile", ev.ProfileEvent("CP1", "ClearChargingProfile", 1, None, "Accepted", "operator", NOW))
    snap, _, _ = lm.snapshot(clock.now())
    assert np.isnan(snap.sessions.fixed_a[0])
    tx_profile = {**tx_default, "chargingProfilePurpose": "TxProfile"}
    lm.handle("ocpp/profile", ev.ProfileEvent("CP1", "SetChargingProfile", 2, tx_profile, "Accepted", "op", NOW))
    assert lm.tracks[("CP1", 2)].foreign_a == 24.0
    lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", 2, 2, "stopped", "TAG", 100, NOW))
    assert lm.tracks[("CP1", 2)].foreign_a is None  # a TxProfile ends with its transaction


def test_the_plans_ceiling_bounds_the_evs(tmp_path: Path) -> None:
    import json

    plan = tmp_path / "plan.json"
    ceiling = [50.0] * 24
    ceiling[8] = 4.0  # 08:00-09:00 local: only 4 kW for the EVs
    plan.write_text(json.dumps({"buildings": [{"name": "b", "schedule_kw": ceiling, "site_timezone": "UTC"}]}))
    cfg = site_config(tmp_path, f'plan = "{plan}"\nbuilding_peak_kw = 5')
    clock = ManualClock(NOW)
    lm, store = load_manager(cfg, clock)
    assert lm.plan.schedule is not None and lm.plan.schedule.period(NOW) == "weekday 08:00"
    _connect_and_start(lm, NOW)
    lm.handle("meter/site", MeterReading(NOW, 5.0))
    for t in lm.tracks.values():
        t.assumed_a, t.unacked = 0.0, False
    snap, _, _ = lm.snapshot(clock.now())
    from planning.allocation.policies import allocate

    alloc = allocate(snap, "equal")
    assert float(alloc.limit_a @ snap.sessions.kw_per_a) <= 4.0 + 1e-9
    assert "plan EV ceiling kW" in " ".join(alloc.reasons)
    store.close()


def test_departure_is_estimated_from_the_tags_past_stays_in_the_store(manager) -> None:
    lm, clock = manager
    store = lm.csms.store
    for day in range(3):  # three weekday stays of 3 h for TAG, earlier the same month
        start = NOW - timedelta(days=7 * (day + 1))
        tx_id, _ = store.start_transaction("CP1", 1, "TAG", 0, start, "Accepted", None)
        store.stop_transaction("CP1", tx_id, 1000, start + timedelta(hours=3), "EVDisconnected", "TAG")
    lm.load_departure_history()
    _connect_and_start(lm, NOW)
    snap, _, _ = lm.snapshot(clock.now())
    assert snap.sessions.departure_s[0] == pytest.approx(3 * 3600)
    assert "tag TAG weekday median of 3 stays" in lm.tracks[("CP1", 1)].departure_basis


def test_a_storm_of_new_chargers_rebuilds_the_site_model_once(manager, monkeypatch) -> None:
    lm, clock = manager
    builds: list[int] = []
    original = lm.rebuild

    def counting() -> None:
        builds.append(len(lm.tracks))
        original()

    monkeypatch.setattr(lm, "rebuild", counting)
    for i in range(200):
        lm.handle("ocpp/status", ev.StatusEvent(f"NEW{i:03d}", 1, "Available", "NoError", NOW))
    assert builds == []  # not once per connector (that was quadratic in a reconnect storm)
    snap, _, _ = lm.snapshot(clock.now())
    assert builds == [202] and snap.constraints.n_connectors == 202
    lm.snapshot(clock.now())
    assert len(builds) == 1


async def test_without_any_meter_the_configured_peak_is_assumed_and_does_not_block_increases(manager) -> None:
    lm, clock = manager  # no [mqtt] meter and no reading ever heard: building_peak_kw (25) is all there is
    assert lm.building_kw(clock.now()) == (25.0, False)
    lm.handle("meter/site", MeterReading(NOW, 12.0))  # a meter exists after all ...
    await clock.advance(31)
    assert lm.building_kw(clock.now()) == (25.0, True)  # ... and once it goes silent it is stale
