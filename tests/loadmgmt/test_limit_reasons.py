"""Every connector's reason describes the current decision, also when its limit is kept and not re-sent
(a connector idle at 0 A must not keep saying "controller (re)start" long after). Load management against
the real central system and an independent OCPP test charge point over a real WebSocket."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from controller import events as ev
from controller.csms import CentralSystem
from controller.loadmgmt.manager import LoadManager
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import ManualClock
from evsite.config import parse_config_text
from tests.controller.ocpp_client import charge_point

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _reasons(lm: LoadManager) -> dict[int, str]:
    return {c.connector_id: c.reason for c in lm.site_state().connectors}


async def test_a_kept_limit_says_why_it_is_kept_now(tmp_path: Path) -> None:
    cfg = parse_config_text(f"""
[server]
host = "127.0.0.1"
port = 0
allow_unknown_chargers = true
[store]
url = "sqlite:///{tmp_path / "reasons.db"}"
[service]
rating_a = 100
voltage_v = 400
[site]
building_peak_kw = 25
profile_validity_s = 600
readback = false
[[chargers]]
id = "CP1"
connectors = 2
max_current_a = 32
""")
    clock = ManualClock(NOW)
    store = Store.open(cfg.store.url)
    bus = EventBus()
    csms = CentralSystem(cfg, store, clock, bus)
    await csms.start()
    lm = LoadManager(cfg, csms, bus, clock)
    try:
        async with charge_point(csms.url, "CP1") as cp:
            lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", True, NOW))
            for c in (1, 2):
                lm.handle("ocpp/status", ev.StatusEvent("CP1", c, "Available", "NoError", NOW))
            await lm.rebalance()
            # Paused at the (re)start until acknowledged, then kept at 0 A because no car is there: said so.
            sent = [kw["cs_charging_profiles"] for kw in await cp.wait_for("SetChargingProfile", 3)]
            assert any(p["charging_schedule"]["charging_schedule_period"][0]["limit"] == 0.0 for p in sent)
            assert _reasons(lm) == {1: "no car: 0 A", 2: "no car: 0 A"}

            await clock.advance(60)
            lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", 1, 7, "started", "TAG", 0, clock.now()))
            lm.handle("ocpp/status", ev.StatusEvent("CP1", 1, "Charging", "NoError", clock.now()))
            await lm.rebalance()
            reasons = _reasons(lm)
            assert reasons[1].startswith("equal") and "A" in reasons[1], reasons
            assert reasons[2] == "no car: 0 A"
            limit = lm.tracks[("CP1", 1)].assumed_a
            assert limit is not None and limit > 6.0

            # The car leaves: the connector goes back to 0 A and says so.
            await clock.advance(60)
            lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", 1, 7, "stopped", "TAG", 5000, clock.now()))
            await lm.rebalance()
            assert _reasons(lm)[1] == "no car: 0 A"

            # A car again, then the charger goes offline: its kept limit is explained by that, with its expiry.
            await clock.advance(60)
            lm.handle("ocpp/transaction", ev.TransactionEvent("CP1", 1, 8, "started", "TAG", 5000, clock.now()))
            await lm.rebalance()
        lm.handle("ocpp/connection", ev.ConnectionEvent("CP1", False, clock.now()))
        await clock.advance(60)
        await lm.rebalance()
        t1 = lm.tracks[("CP1", 1)]
        assert t1.valid_until is not None
        assert _reasons(lm)[1] == (
            f"charger offline: its last limit {t1.assumed_a:.1f} A holds until {t1.valid_until:%H:%M:%S} UTC, "
            "then its fail-safe"
        )
        await clock.advance(600)
        await lm.rebalance()
        assert _reasons(lm)[1].startswith("charger offline: live limit expired")
    finally:
        await csms.stop()
        store.close()
