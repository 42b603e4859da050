"""A restarted controller reads back what it last told each charger; the site state reaches MQTT."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt

from controller import events as ev
from controller.csms import CentralSystem
from controller.loadmgmt import profiles as prof
from controller.loadmgmt.manager import LoadManager
from controller.loadmgmt.restore import last_accepted
from controller.loadmgmt.state_publisher import publish_site_state
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import ManualClock, RealClock
from evsite.meter_reading import MeterReading
from tests.loadmgmt.helpers import site_config

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_restart_restores_accepted_limits_and_the_fail_safe(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, "building_peak_kw = 10")
    store = Store.open(cfg.store.url)
    shape_a = prof.Shape("A", 2, 230.0, 3)
    shape_w = prof.Shape("W", 2, 230.0, 3)
    add = store.add_profile
    add("CP1", "SetChargingProfile", 0, prof.fail_safe_profile(shape_a, 8.0, NOW), "Accepted",
        "load management: fail-safe 8.0 A", NOW)  # fmt: skip
    add("CP1", "SetChargingProfile", 1, prof.live_profile(shape_a, 1, 20.0, NOW, 120, 2), "Accepted",
        "load management: equal share", NOW)  # fmt: skip
    add(
        "CP1",
        "SetChargingProfile",
        1,
        prof.live_profile(shape_a, 1, 25.0, NOW, 120, 2),
        "Rejected",
        "load management: equal share",
        NOW,
    )  # fmt: skip  (refused: the 20 A stays in force)
    add("CP1", "SetChargingProfile", 2, prof.live_profile(shape_w, 2, 10.0, NOW, 120, 2), "Accepted",
        "load management: equal share", NOW)  # fmt: skip
    live, safe = last_accepted(store)
    assert {(s.connector_id, s.limit, s.unit) for s in live} == {(1, 20.0, "A"), (2, 6900.0, "W")}
    assert [s.limit for s in safe] == [8.0]

    clock = ManualClock(NOW + timedelta(seconds=30))
    bus = EventBus()
    # The central system as a restarted controller has it before any charger reconnects (not listening yet).
    manager = LoadManager(cfg, CentralSystem(cfg, store, clock, bus), bus, clock)
    manager.seed_from_csms()
    t1, t2 = manager.tracks[("CP1", 1)], manager.tracks[("CP1", 2)]
    assert t1.assumed_a == 20.0 and abs(t2.assumed_a - 10.0) < 1e-9
    assert manager.chargers["CP1"].fail_safe_a == 8.0
    # Offline: each keeps its live limit until validTo, then the fail-safe (or the higher of both) governs.
    fs = manager.fail_safe_a
    assert t1.may_draw_a(NOW + timedelta(seconds=60), fs) == 20.0
    assert t2.may_draw_a(NOW + timedelta(seconds=200), fs) == max(10.0, fs)
    store.close()


async def test_site_state_is_published_on_mqtt(tmp_path: Path, mqtt_broker) -> None:
    host, port = mqtt_broker
    topic = f"evsite-test/{uuid.uuid4().hex[:8]}/state"
    cfg = site_config(tmp_path, f'building_peak_kw = 10\nstate_topic = "{topic}"')
    cfg.mqtt.host, cfg.mqtt.port = host, port
    store = Store.open(cfg.store.url)
    clock = RealClock()
    bus = EventBus()
    manager = LoadManager(cfg, CentralSystem(cfg, store, clock, bus), bus, clock)
    manager.handle("meter/site", MeterReading(clock.now(), 42.5))
    switched_at = clock.now()
    manager.switch_tier(switched_at)  # the default [tariff]: the seed study's business prices, site time UTC
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic)
        task = asyncio.create_task(publish_site_state(manager, cfg.mqtt, cfg.site, clock))
        try:
            async with asyncio.timeout(10):
                message = await anext(client.messages)
        finally:
            task.cancel()
    doc = json.loads(message.payload)
    assert doc["building_kw"] == 42.5 and doc["meter_stale"] is False
    assert doc["tariff_tier"] == ("off-peak 1.38 c/kWh" if switched_at.hour < 8 else "peak 18.62 c/kWh")
    assert doc["limit_kw"] == round(100 * 400 * 3**0.5 / 1000 * 0.8, 3)
    assert {(c["cp_id"], c["connector_id"]) for c in doc["connectors"]} == {("CP1", 1), ("CP1", 2)}
    store.close()


async def test_a_car_that_did_not_resume_is_remembered_across_a_restart(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, "building_peak_kw = 25")
    clock = ManualClock(NOW)
    store = Store.open(cfg.store.url)
    tx_id, _ = store.start_transaction("CP1", 1, "TAG", 0, NOW, "Accepted", None)
    bus = EventBus()
    before = LoadManager(cfg, CentralSystem(cfg, store, clock, bus), bus, clock)
    before.handle("ocpp/connection", ev.ConnectionEvent("CP1", True, NOW))
    before.handle("ocpp/status", ev.StatusEvent("CP1", 1, "Charging", "NoError", NOW))
    before.handle("ocpp/transaction", ev.TransactionEvent("CP1", 1, tx_id, "started", "TAG", 0, NOW))
    t = before.tracks[("CP1", 1)]
    before._note_pause(t, 0.0, 16.0)  # paused while charging ...
    before._note_pause(t, 16.0, 0.0)  # ... given current again ...
    before.handle("ocpp/status", ev.StatusEvent("CP1", 1, "SuspendedEV", "NoError", NOW))  # ... and takes nothing
    assert before.no_resume_tags == {"TAG"}
    await before.csms.flush()
    assert [(r.id_tag, r.cp_id, r.connector_id) for r in store.no_resume_tags()] == [("TAG", "CP1", 1)]

    # A restarted controller: the transaction is still open; its car gets the minimum instead of a pause.
    after_csms = CentralSystem(cfg, store, clock, EventBus())
    after_csms.effects.open_tx = {"CP1": {tx_id: 1}}
    after = LoadManager(cfg, after_csms, after_csms.bus, clock)
    after.seed_from_csms()
    assert after.no_resume_tags == {"TAG"}
    assert after.tracks[("CP1", 1)].id_tag == "TAG"
    snap, _, _ = after.snapshot(clock.now())
    assert snap.sessions.no_pause.tolist() == [True, False]
    store.close()


def test_a_restart_reads_the_expiry_in_our_clock_not_the_chargers_valid_to(tmp_path: Path) -> None:
    from controller.clock_skew import ClockEstimate

    cfg = site_config(tmp_path, "building_peak_kw = 10")
    store = Store.open(cfg.store.url)
    behind = ClockEstimate(NOW, -600.0, 0.0, 1.0, 0.0, 10, False)  # the charger's clock is 10 minutes slow
    shape = prof.Shape("A", 2, 230.0, 3)
    profile = prof.live_profile(shape, 1, 20.0, NOW, 120, 2, behind)
    assert profile["validTo"] == "2026-03-02T07:51:59Z"  # 08:02:00 ours, in its clock, 1 s early
    store.add_profile("CP1", "SetChargingProfile", 1, profile, "Accepted", "load management: equal share",
                      NOW, NOW + timedelta(seconds=120))  # fmt: skip
    ((sent,), _) = last_accepted(store)
    assert sent.valid_to == NOW + timedelta(seconds=120)
    store.close()
