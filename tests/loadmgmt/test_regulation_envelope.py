"""The regulation aggregator inside load management: one writer of live profiles per connector.

OCPP 1.6 keeps one TxDefaultProfile in force per connector (the highest stack level wins, it is not a
minimum), so an aggregator sending its own profiles could mask a limit load management lowers. With load
management running, the aggregator's setpoints go over the bus and load management sends
``min(its limit, setpoint)``; the grant it publishes stays its own limit, so regulation can go back up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller import events as ev
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher
from controller.aggregator.limits import LimitGate
from controller.loadmgmt.manager import LoadManager
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.site_state import ConnectorEnvelope, RegulationSetpoint
from tests.loadmgmt.helpers import load_manager, site_config

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _manager(tmp_path: Path) -> tuple[LoadManager, ManualClock]:
    clock = ManualClock(NOW)
    lm, _store = load_manager(site_config(tmp_path, "building_peak_kw = 25"), clock)
    lm.handle(topics.OCPP_CONNECTION, ev.ConnectionEvent("CP1", True, NOW))
    track = lm.tracks[("CP1", 1)]
    track.set_limit(20.0, NOW, NOW + timedelta(seconds=120), "equal share")
    return lm, clock


def test_a_setpoint_lowers_the_limit_but_never_raises_it(tmp_path: Path) -> None:
    lm, clock = _manager(tmp_path)
    t = lm.tracks[("CP1", 1)]
    lm.handle(topics.REGULATION_SETPOINTS, RegulationSetpoint("CP1", 1, 12.0, "follow signal", NOW))
    assert t.regulation_a == 12.0
    amps, why = lm._regulated(t, 20.0, "equal share", clock.now())
    assert amps == 12.0 and why.startswith("regulation setpoint 12.0 A within load management's 20.0 A")
    # Load management lowers its own limit below the setpoint: its limit wins.
    assert lm._regulated(t, 8.0, "equal share", clock.now()) == (8.0, "equal share")
    # Discharge is not carried by live profiles: applied as 0 A.
    lm.handle(topics.REGULATION_SETPOINTS, RegulationSetpoint("CP1", 1, -16.0, "discharge", NOW))
    assert lm._regulated(t, 20.0, "equal share", clock.now())[0] == 0.0


def test_a_stale_setpoint_is_ignored(tmp_path: Path) -> None:
    lm, _clock = _manager(tmp_path)
    t = lm.tracks[("CP1", 1)]
    lm.handle(topics.REGULATION_SETPOINTS, RegulationSetpoint("CP1", 1, 6.0, "follow signal", NOW))
    later = NOW + timedelta(seconds=lm.config.site.profile_validity_s + 1)
    assert lm._regulated(t, 20.0, "equal share", later) == (20.0, "equal share")


def test_the_published_grant_is_load_managements_own_limit(tmp_path: Path) -> None:
    lm, _clock = _manager(tmp_path)
    t = lm.tracks[("CP1", 1)]
    t.granted_a = 20.0
    lm.handle(topics.REGULATION_SETPOINTS, RegulationSetpoint("CP1", 1, 8.0, "follow signal", NOW))
    t.set_limit(8.0, NOW, NOW + timedelta(seconds=120), "regulation setpoint 8.0 A")
    assert lm._grant_a(t) == 20.0  # not 8 A: the aggregator may come back up to the grant
    t.unacked = True
    assert lm._grant_a(t) == 0.0  # nothing granted while a limit is unacknowledged


async def test_the_dispatcher_hands_setpoints_to_load_management_instead_of_sending() -> None:
    bus = EventBus()
    got = bus.subscribe(topics.REGULATION_SETPOINTS)
    sent: list[object] = []

    async def send(*args, **kwargs):
        sent.append(args)

    def publish(cp_id: str, connector_id: int, limit_a: float, reason: str) -> None:
        bus.publish(topics.REGULATION_SETPOINTS, RegulationSetpoint(cp_id, connector_id, limit_a, reason, NOW))

    gate = LimitGate(bus)
    refs = [ConnectorRef("CP1", 1, 32.0, 230.0, 3, False)]
    bus.publish(topics.LOADMGMT_LIMITS, {("CP1", 1): 16.0})
    dispatcher = ProfileDispatcher(send, refs, gate=gate, publish=publish)
    result = await dispatcher.apply_setpoints(np.array([0]), np.array([22.08]), ["regulation_switch"])
    assert sent == [] and result.accepted == 1
    _topic, setpoint = got.get_nowait()
    assert (setpoint.cp_id, setpoint.connector_id, setpoint.limit_a) == ("CP1", 1, 16.0)  # clamped to the grant


def _v2g_manager(tmp_path: Path, *, configured: bool, declared: bool, site: str = "") -> tuple[LoadManager, object]:
    """One connector with a car, limit acknowledged, building reading of 12 kW fresh."""
    from controller.csms import CentralSystem
    from controller.registry import KnownCharger
    from controller.store import Store
    from evsite.config import parse_config_text
    from evsite.meter_reading import MeterReading

    cfg = parse_config_text(f"""
[store]
url = "sqlite:///{tmp_path / "v2g.db"}"
[service]
rating_a = 100
voltage_v = 400
[site]
building_peak_kw = 25
{site}
[[chargers]]
id = "V2G"
connectors = 1
max_current_a = 32
bidirectional = {"true" if configured else "false"}
""")
    clock = ManualClock(NOW)
    bus = EventBus()
    store = Store.open(cfg.store.url)
    csms = CentralSystem(cfg, store, clock, bus)
    # what the boot-time probe (GetConfiguration) would have stored for the charger
    csms.registry.known["V2G"] = KnownCharger(None, False, capabilities={
        "BidirectionalCharging": "true" if declared else "false"})  # fmt: skip
    lm = LoadManager(cfg, csms, bus, clock)
    lm.handle(topics.OCPP_CONNECTION, ev.ConnectionEvent("V2G", True, NOW))
    lm.handle(topics.OCPP_TRANSACTION, ev.TransactionEvent("V2G", 1, 5, "started", "TAG", 0, NOW))
    lm.handle(topics.METER_SITE, MeterReading(NOW, 12.0))
    lm.tracks[("V2G", 1)].set_limit(16.0, NOW, NOW + timedelta(seconds=120), "equal share")
    lm.handle(topics.REGULATION_SETPOINTS, RegulationSetpoint("V2G", 1, -32.0, "regulation_switch", NOW))
    return lm, store


def test_discharge_only_where_declared_twice_and_within_what_the_building_absorbs(tmp_path: Path) -> None:
    """Configured and declared: a negative limit down to the building's load (12 kW less the 2 kW reserve =
    10 kW = 14.4 A at 230 V x 3); configured or declared only: 0 A, never negative."""
    for configured, declared, expected in ((True, True, -10000 / 690), (True, False, 0.0), (False, True, 0.0)):
        (tmp_path / f"{configured}{declared}").mkdir()
        lm, store = _v2g_manager(tmp_path / f"{configured}{declared}", configured=configured, declared=declared)
        try:
            lm.discharge_a = lm._discharge_bounds(NOW, stale=False)
            t = lm.tracks[("V2G", 1)]
            amps, why = lm._regulated(t, 16.0, "equal share", NOW)
            assert amps == pytest.approx(expected), (configured, declared)
            assert (amps < 0) == why.startswith("regulation discharge")
            env = {k: v for k, v in lm.discharge_a.items()}
            assert env.get(("V2G", 1), 0.0) == pytest.approx(-expected)
            assert lm._discharge_bounds(NOW, stale=True) == ({("V2G", 1): 0.0} if expected else {})  # no meter
        finally:
            store.close()


def test_export_allowance_adds_to_the_building_and_the_envelope_is_published(tmp_path: Path) -> None:
    lm, store = _v2g_manager(tmp_path, configured=True, declared=True, site="export_limit_kw = 20")
    got = lm.bus.subscribe(topics.LOADMGMT_LIMITS)
    try:
        lm.discharge_a = lm._discharge_bounds(NOW, stale=False)
        assert lm.discharge_a[("V2G", 1)] == pytest.approx(32.0)  # 10 + 20 kW > its 22 kW rating: the rating
        lm._publish_limits()
        env = got.get_nowait()[1][("V2G", 1)]
        assert env == ConnectorEnvelope(16.0, pytest.approx(32.0))
    finally:
        store.close()


def test_discharge_bounds_water_fill_and_profiles_carry_signed_limits() -> None:
    from controller.loadmgmt import profiles as prof
    from controller.loadmgmt.discharge import discharge_bounds_a, live_profile

    # 30 kW among a 3.68 kW (16 A single phase) and two 22 kW connectors: the small one is full, the rest split
    got = discharge_bounds_a([3.68, 22.08, 22.08], [0.23, 0.69, 0.69], 30.0)
    assert got * np.array([0.23, 0.69, 0.69]) == pytest.approx([3.68, 13.16, 13.16])
    assert discharge_bounds_a([22.08], [0.69], 0.0).tolist() == [0.0]
    # 10 kW over four 22 kW connectors would be 2.5 kW each, below their 4.14 kW (6 A) minimum: two get 5 kW
    got = discharge_bounds_a([22.08] * 4, [0.69] * 4, 10.0, [4.14] * 4)
    assert got * 0.69 == pytest.approx([5.0, 5.0, 0.0, 0.0])
    assert discharge_bounds_a([22.08], [0.69], 3.0, [4.14]).tolist() == [0.0]  # not even one minimum
    shape_w = prof.Shape("W", 2, 230.0, 3)
    p = live_profile(shape_w, 1, -10.06, NOW, 120.0, 2)
    assert p["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == -6941.0  # towards zero, whole watts
    assert live_profile(prof.Shape("A", 2, 230.0, 3), 1, -10.06, NOW, 120.0, 2)["chargingSchedule"][
        "chargingSchedulePeriod"][0]["limit"] == -10.0  # fmt: skip
    assert live_profile(shape_w, 1, 10.0, NOW, 120.0, 2) == prof.live_profile(shape_w, 1, 10.0, NOW, 120.0, 2)
