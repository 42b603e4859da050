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

from controller import events as ev
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher
from controller.aggregator.limits import LimitGate
from controller.loadmgmt.manager import LoadManager
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.ev_fleet import CHARGING
from evsite.site_state import RegulationSetpoint
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
    result = await dispatcher.apply(np.array([0]), np.array([CHARGING]), np.array([0]))
    assert sent == [] and result.accepted == 1
    _topic, setpoint = got.get_nowait()
    assert (setpoint.cp_id, setpoint.connector_id, setpoint.limit_a) == ("CP1", 1, 16.0)  # clamped to the grant
