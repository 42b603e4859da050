"""The heartbeat timeout and the offline sweep: a silent or disconnected charger is marked offline (store,
``ocpp/online`` event, log), its connectors' last status becomes stale, and it is back when it speaks."""

from __future__ import annotations

from ocpp.v16 import call

from controller import events as ev
from controller.csms import CentralSystem
from evsite import topics
from evsite.clock import ManualClock
from tests.controller.ocpp_client import charge_point
from tests.waiting import eventually


def _drain(queue) -> list[ev.ChargerOnlineEvent]:
    out = []
    while (item := queue.get_nowait()) is not None:
        out.append(item[1])
    return out


async def test_silence_past_the_timeout_marks_offline_and_speaking_brings_it_back(
    make_csms, manual_clock: ManualClock
) -> None:
    csms: CentralSystem = await make_csms(heartbeat_interval_s=60, heartbeat_timeout_factor=2)
    online = csms.bus.subscribe(topics.OCPP_ONLINE)
    async with charge_point(csms.url, "CP1") as cp:
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        assert [(e.cp_id, e.online, e.reason) for e in _drain(online)] == [("CP1", True, "connected")]
        assert csms.online("CP1")

        assert csms.liveness.sweep(manual_clock.now()) == []
        await manual_clock.advance(119)  # within 2 x 60 s: still online
        assert csms.liveness.sweep(manual_clock.now()) == []
        await manual_clock.advance(2)
        assert csms.liveness.sweep(manual_clock.now()) == ["CP1"]
        (off,) = _drain(online)
        assert (off.online, off.reason, off.at) == (False, "heartbeat_timeout", manual_clock.now())
        assert isinstance(off, ev.ChargerOnlineEvent)
        assert csms.connector_status[("CP1", 1)].stale and csms.connector_status[("CP1", 1)].status == "Charging"
        await csms.flush()
        assert csms.store.charge_point("CP1").online is False
        assert csms.store.connectors("CP1")[0].stale is True

        await cp.call(call.Heartbeat())
        assert [(e.online, e.reason) for e in _drain(online)] == [(True, "message")]
        await csms.flush()
        assert csms.store.charge_point("CP1").online is True
        assert csms.store.connectors("CP1")[0].stale is True  # still unknown until it reports again
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="SuspendedEV"))
        await csms.flush()
        assert csms.store.connectors("CP1")[0].stale is False
        assert not csms.connector_status[("CP1", 1)].stale
    await eventually(lambda: not csms.online("CP1"), what="offline after the socket closed")
    assert [(e.online, e.reason) for e in _drain(online)] == [(False, "disconnected")]
    await csms.flush()
    assert csms.store.charge_point("CP1").online is False
    kinds = [e.kind for e in csms.store.events(cp_id="CP1") if e.kind in ("online", "offline")]
    assert kinds == ["online", "offline", "online", "offline"]


async def test_the_sweep_runs_on_the_clock(make_csms, manual_clock: ManualClock) -> None:
    csms: CentralSystem = await make_csms(heartbeat_interval_s=10, heartbeat_timeout_factor=3)
    async with charge_point(csms.url, "CP2") as cp:
        await cp.call(call.Heartbeat())
        await manual_clock.advance(29)
        assert csms.online("CP2")
        await manual_clock.advance(10)  # past 30 s, and the sweep (every 7.5 s) has run since
        assert not csms.online("CP2")
        await cp.call(call.Heartbeat())
        assert csms.online("CP2")


async def test_restart_starts_everyone_offline(make_csms, manual_clock: ManualClock) -> None:
    csms: CentralSystem = await make_csms()
    async with charge_point(csms.url, "CP1") as cp:
        await cp.call(call.Heartbeat())
        await csms.flush()
        assert csms.store.charge_point("CP1").online is True
        await csms.stop()  # as if killed while connected: the row still says online
        csms.store.engine.dispose()
    again: CentralSystem = await make_csms()
    assert again.store.charge_point("CP1").online is False
