"""The live aggregator on a manual clock: bus events in, SetChargingProfile requests or load-management
setpoints out (a recording send), departures estimated from the store."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from controller import events as ev
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher
from controller.aggregator.limits import LimitGate
from controller.aggregator.live_market import MarketService
from controller.aggregator.service import LiveDefaults, LiveFleet
from controller.aggregator.signal_source import BUS_TOPIC, SignalSample
from controller.aggregator.tracker import TrackerSettings
from evsite import topics
from evsite.bus import EventBus
from evsite.ev_fleet import seed_fleet
from evsite.site_state import ConnectorEnvelope
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


def _market(clock, model, defaults: LiveDefaults) -> tuple[EventBus, Recorder, MarketService]:
    """A live market service on ``clock`` whose profiles go to a recorder, gated by load management's grants."""
    bus = EventBus()
    rec = Recorder()
    gate = LimitGate(bus)
    live = LiveFleet(REFS, defaults)
    svc = MarketService(bus, clock, live, model, ProfileDispatcher(rec.send, REFS, gate=gate), gate,
                        settings=TrackerSettings(min_hold_s=0.0))  # fmt: skip
    return bus, rec, svc


@pytest.fixture(scope="module")
def model():
    return estimate_model(seed_fleet(300, 1), duration_s=200)


async def test_live_fleet_follows_ocpp_events() -> None:
    live = LiveFleet(REFS, LiveDefaults(dwell_h=2.0))
    assert not live.fleet.online(0.0).any()
    assert live.on_event(ev.TransactionEvent("V2G", 1, 7, "started", "TAG", 0, T), 10.0)
    assert live.on_event(ev.MeterEvent("V2G", 1, 7, T, soc_pct=42.0), 11.0)
    assert not live.on_event(ev.MeterEvent("OTHER", 1, 7, T, soc_pct=42.0), 11.0)
    assert live.fleet.online(12.0).tolist() == [False, False, True] and live.fleet.soc[2] == 0.42
    assert live.fleet.p_charge_kw[0] == pytest.approx(16 * 230 * 3 / 1000)
    assert live.fleet.p_min_kw[2] == pytest.approx(6 * 230 / 1000)  # the minimum current, single phase
    assert live.departure_est_s[2] == 10.0 + 2 * 3600.0
    assert live.fleet.online(10.0 + 5 * 3600.0)[2]  # past its estimated departure it is still plugged in
    live.on_event(ev.ConnectionEvent("V2G", False, T, "closed"), 20.0)
    assert not live.fleet.online(20.0).any()


def test_departures_are_estimated_from_the_stores_history_per_id_tag(tmp_path) -> None:
    """A tag with three stays of 3 h gets 3 h; an unknown tag gets the site's median once the site has three
    stays; a fresh store gives ``[site] departure_default_h``."""
    from datetime import timedelta

    from controller.aggregator.service import departure_estimator
    from controller.store import Store
    from evsite.config import parse_config

    cfg = parse_config({"chargers": [{"id": "UNI", "connectors": 2}], "site": {"departure_default_h": 5.0}})
    store = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        fresh = departure_estimator(cfg, store)
        assert fresh("ALICE", T) == (5 * 3600.0, "site default stay")
        for day, hours in ((7, 3.0), (14, 3.0), (21, 3.0)):  # Mondays, like T
            start = T - timedelta(days=day)
            tx, _ = store.start_transaction("UNI", 1, "ALICE", 0, start, "Accepted")
            store.stop_transaction("UNI", tx, 1000, start + timedelta(hours=hours), "Local", "ALICE")
        est = departure_estimator(cfg, store)
        stay, basis = est("ALICE", T)
        assert stay == pytest.approx(3 * 3600.0) and basis.startswith("tag ALICE weekday median")
        assert est("BOB", T)[1].startswith("site weekday median")
        fresh.refresh()  # the live service re-reads the history every hour
        assert fresh("ALICE", T)[0] == pytest.approx(3 * 3600.0)
        live = LiveFleet(REFS, LiveDefaults(), est)
        live.on_event(ev.TransactionEvent("UNI", 2, 9, "started", "ALICE", 0, T), 100.0)
        assert live.departure_est_s[1] == pytest.approx(100.0 + 3 * 3600.0)
        assert live.departure_basis[1].startswith("tag ALICE")
    finally:
        store.close()


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
    bus, rec, svc = _market(manual_clock, model, LiveDefaults(soc_target=0.6, dwell_h=8.0))
    _plug_in(bus, soc_pct=50.0)
    bus.publish(BUS_TOPIC, SignalSample(T, 0.0))
    await svc.step_once()
    assert rec.calls == []  # no grant yet
    grant = {("UNI", 1): 10.0, ("UNI", 2): 16.0, ("V2G", 1): 20.0}
    bus.publish(topics.LOADMGMT_LIMITS, MappingProxyType({k: ConnectorEnvelope(a, a if k[0] == "V2G" else 0.0)
                                                          for k, a in grant.items()}))  # fmt: skip
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


async def test_live_market_discharges_only_within_the_discharge_bound(manual_clock, model) -> None:
    """The bidirectional car is never commanded to feed back while load management's envelope gives it no
    discharge bound; once it does, discharge stays within that bound (and only at the bidirectional one)."""
    bus, rec, svc = _market(manual_clock, model, LiveDefaults(soc_target=0.9, dwell_h=12.0))
    _plug_in(bus, soc_pct=30.0)

    def grant(discharge_a: float) -> None:
        env = {("UNI", 1): ConnectorEnvelope(16.0), ("UNI", 2): ConnectorEnvelope(16.0),
               ("V2G", 1): ConnectorEnvelope(32.0, discharge_a)}  # fmt: skip
        bus.publish(topics.LOADMGMT_LIMITS, MappingProxyType(env))

    async def follow(values: tuple[float, ...]) -> list[tuple[str, int, float, str | None]]:
        calls = []
        for value in values:
            bus.publish(BUS_TOPIC, SignalSample(T, value))
            await manual_clock.advance(2.0)
            await svc.step_once()
            calls += rec.calls
            rec.calls.clear()
        return calls

    grant(0.0)
    calls = await follow((1.0, -1.0) * 3)
    assert calls and all(lim >= 0 for _, _, lim, _ in calls)
    assert not svc.tracker.can_discharge.any()
    grant(12.0)
    await manual_clock.advance(3600.0)  # the next hour's plan may use the bound
    calls = await follow((1.0, -1.0) * 3)
    negative = [(cp, lim) for cp, _, lim, _ in calls if lim < 0]
    assert negative and all(cp == "V2G" and lim >= -12.0 for cp, lim in negative)
