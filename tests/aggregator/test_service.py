"""The live aggregator on a manual clock: bus events in, SetChargingProfile requests out (stand-in send)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from controller import events as ev
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher
from controller.aggregator.service import CAPACITY_TOPIC, LiveDefaults, LiveFleet, RegulationService
from controller.aggregator.signal_source import BUS_TOPIC, SignalSample
from evsite.bus import EventBus
from evsite.ev_fleet import CHARGING, DISCHARGING, IDLE, seed_fleet
from planning.ssm import StateSpaceModel
from planning.ssm_estimate import estimate_model

T = datetime(2026, 3, 2, 8, tzinfo=UTC)
REFS = [ConnectorRef("UNI", 1, 16, 230, 3), ConnectorRef("UNI", 2, 16, 230, 3),
        ConnectorRef("V2G", 1, 32, 230, 1, bidirectional=True)]  # fmt: skip


class Recorder:
    def __init__(self, fail_for: tuple[str, int] | None = None) -> None:
        self.calls: list[tuple[str, int, float, str | None]] = []
        self.fail_for = fail_for

    async def send(self, cp_id: str, request, reason: str | None = None):
        conn = request.connector_id
        limit = request.cs_charging_profiles["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        if (cp_id, conn) == self.fail_for:
            raise ConnectionError("gone")
        self.calls.append((cp_id, conn, limit, reason))

        class R:
            status = "Accepted"

        return R()


def _plug_in(bus: EventBus, soc_pct: float = 70.0) -> None:
    for i, r in enumerate(REFS):
        bus.publish(ev.TOPIC_TRANSACTION, ev.TransactionEvent(r.cp_id, r.connector_id, i + 1, "started", "TAG", 0, T))
        bus.publish(ev.TOPIC_METER, ev.MeterEvent(r.cp_id, r.connector_id, i + 1, T, soc_pct=soc_pct))


@pytest.fixture(scope="module")
def model():
    return estimate_model(seed_fleet(300, 1), duration_s=200)


def _service(bus, clock, model, send) -> RegulationService:
    live = LiveFleet(REFS, LiveDefaults(soc_target=0.5))
    return RegulationService(bus, clock, live, model, ProfileDispatcher(send, REFS), step_s=4.0)


async def test_live_fleet_follows_ocpp_events() -> None:
    live = LiveFleet(REFS)
    assert not live.fleet.online(0.0).any()
    assert live.on_event(ev.TransactionEvent("V2G", 1, 7, "started", "TAG", 0, T), 10.0)
    assert live.on_event(ev.MeterEvent("V2G", 1, 7, T, soc_pct=42.0), 11.0)
    assert not live.on_event(ev.MeterEvent("OTHER", 1, 7, T, soc_pct=42.0), 11.0)
    assert live.fleet.online(12.0).tolist() == [False, False, True] and live.fleet.soc[2] == 0.42
    assert live.fleet.p_charge_kw[0] == pytest.approx(16 * 230 * 3 / 1000)
    live.on_event(ev.ConnectionEvent("V2G", False, T, "closed"), 20.0)
    assert not live.fleet.online(20.0).any()


async def test_service_follows_the_signal_up_and_down(manual_clock, model) -> None:
    bus = EventBus()
    rec = Recorder()
    offers = bus.subscribe(CAPACITY_TOPIC)
    svc = _service(bus, manual_clock, model, rec.send)
    _plug_in(bus)
    bus.publish(BUS_TOPIC, SignalSample(T, 1.0))  # full regulation up
    task = asyncio.create_task(svc.run())
    try:
        for _ in range(20):  # let the first step and its dispatch run
            await asyncio.sleep(0)
        offer = offers.get_nowait()[1]
        assert offer.online == 3 and offer.capacity_kw > 0
        assert svc.ctrl.commanded.tolist() == [IDLE, IDLE, DISCHARGING]
        assert {(cp, c, lim) for cp, c, lim, _ in rec.calls} == {("UNI", 1, 0.0), ("UNI", 2, 0.0), ("V2G", 1, -32.0)}
        rec.calls.clear()
        bus.publish(BUS_TOPIC, SignalSample(T, -1.0))  # full regulation down
        await manual_clock.advance(4.0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert svc.ctrl.commanded.tolist() == [CHARGING, CHARGING, CHARGING]
        assert all(lim > 0 for _, _, lim, _ in rec.calls) and len(rec.calls) == 3
        assert {why for *_, why in rec.calls} <= {"regulation_down_stop_discharge", "regulation_down_charge"}
    finally:
        task.cancel()


async def test_stale_signal_holds_the_base_point(manual_clock, model) -> None:
    bus = EventBus()
    svc = _service(bus, manual_clock, model, Recorder().send)
    _plug_in(bus)
    bus.publish(BUS_TOPIC, SignalSample(T, 1.0))
    d = await svc.step_once()
    assert d.target_kw == pytest.approx(svc.offer.base_kw + svc.offer.capacity_kw)
    await manual_clock.advance(60.0)  # no sample for a minute
    d = await svc.step_once()
    assert d.target_kw == pytest.approx(svc.offer.base_kw)


async def test_failed_profile_keeps_the_previous_mode(manual_clock, model) -> None:
    bus = EventBus()
    svc = _service(bus, manual_clock, model, Recorder(fail_for=("V2G", 1)).send)
    _plug_in(bus)
    bus.publish(BUS_TOPIC, SignalSample(T, 1.0))
    await svc.step_once()
    assert svc.ctrl.commanded.tolist() == [IDLE, IDLE, CHARGING]  # V2G did not take the discharge profile


async def test_service_from_config(manual_clock) -> None:
    from controller.aggregator.service import service_from_config
    from evsite.config import parse_config

    cfg = parse_config({"chargers": [{"id": "A", "connectors": 2}, {"id": "B", "bidirectional": True}],
                        "regulation": {"soc_bins": 10, "step_s": 2, "slack_margin_s": 600}})  # fmt: skip
    svc = service_from_config(cfg, EventBus(), manual_clock, Recorder().send)
    assert svc.step_s == 2 and svc.tracker.model.ns == 10 and len(svc.live.connectors) == 3
    assert svc.tracker.can_discharge.tolist() == [False, False, True] and svc.tracker.s.slack_margin_s == 600
    with pytest.raises(ValueError, match="soc_bins is 10"):
        service_from_config(cfg, EventBus(), manual_clock, Recorder().send, model=StateSpaceModel(20))


async def test_live_market_acts_only_inside_the_load_management_envelope(manual_clock, model) -> None:
    """Nothing is commanded before load management grants limits; then every limit sent stays within the
    latest grant, discharge goes only to the bidirectional charger, and the signal moves the setpoints."""
    from types import MappingProxyType

    from controller.aggregator.limits import LimitGate
    from controller.aggregator.live_market import MarketService
    from controller.aggregator.tracker import TrackerSettings
    from evsite import topics

    bus = EventBus()
    rec = Recorder()
    gate = LimitGate(bus)
    live = LiveFleet(REFS, LiveDefaults(soc_target=0.6, dwell_h=8.0))
    svc = MarketService(bus, manual_clock, live, model, ProfileDispatcher(rec.send, REFS, gate=gate), gate,
                        settings=TrackerSettings(min_hold_s=0.0))  # fmt: skip
    _plug_in(bus, soc_pct=50.0)
    bus.publish(BUS_TOPIC, SignalSample(T, 0.0))
    await svc.step_once()
    assert rec.calls == []  # no grant yet
    grant = {("UNI", 1): 10.0, ("UNI", 2): 16.0, ("V2G", 1): 20.0}
    bus.publish(topics.LOADMGMT_LIMITS, MappingProxyType(grant))
    await manual_clock.advance(3600.0)  # next hour: a fresh offer inside the grant
    seen: dict[tuple[str, int], float] = {}
    for value in (1.0, -1.0, 0.5, -0.5):
        bus.publish(BUS_TOPIC, SignalSample(T, value))
        await manual_clock.advance(2.0)
        await svc.step_once()
        for cp, c, lim, _ in rec.calls:
            assert abs(lim) <= grant[(cp, c)] + 1e-9
            assert lim >= 0 or cp == "V2G"
            seen[(cp, c)] = lim
        rec.calls.clear()
    assert svc.offer is not None and svc.offer.capacity_kw > 0
    assert seen  # it did command the cars
    # a connector whose profile fails keeps its previous setpoint in the controller's view
    failing = Recorder(fail_for=("UNI", 1))
    attempts: list[tuple[str, int]] = []

    async def send(cp_id: str, request, reason: str | None = None):
        attempts.append((cp_id, request.connector_id))
        return await failing.send(cp_id, request, reason)

    svc.dispatcher.send = send
    kept = float(svc.tracker.sent_kw[0])
    for value in (1.0, -1.0, 1.0):
        bus.publish(BUS_TOPIC, SignalSample(T, value))
        await manual_clock.advance(2.0)
        await svc.step_once()
    assert ("UNI", 1) in attempts  # it was asked to move ...
    assert svc.tracker.sent_kw[0] == kept  # ... failed, and the view did not pretend otherwise
