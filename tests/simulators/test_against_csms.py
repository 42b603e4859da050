"""The simulated fleet against our own central system (``controller.csms``) over real WebSockets.

Transactions must land in the store, a profile the controller sends must change the power the simulated EV
draws (and what the store records), and a connection cut mid-transaction must lose and duplicate nothing.
"""

from __future__ import annotations

import itertools

import pytest
from ocpp.v16 import call

from controller.csms import CentralSystem
from evsite.clock import ManualClock
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import advance, small_fleet
from tests.waiting import eventually


def site_for(csms: CentralSystem, clock: ManualClock, n: int, connectors: int, **fleet_kw: float) -> SimulatedSite:
    return SimulatedSite(
        csms.url, clock, charger_specs(n, connectors), small_fleet(n * connectors, **fleet_kw), backoff_base_s=300.0
    )


async def test_transactions_appear_in_the_store(central: CentralSystem, manual_clock: ManualClock) -> None:
    site = site_for(central, manual_clock, 3, 2, arrival_s=30.0, departure_s=1800.0)
    await site.start()
    try:
        assert await site.wait_online(10.0) == 3
        await advance(site, manual_clock, 2000.0)
        await eventually(lambda: not any(cp.pending for cp in site.chargers), what="outboxes to drain")
    finally:
        await site.stop()
    await central.flush()
    txs = central.store.transactions()
    assert len(txs) == 6
    assert all(t.stop_time is not None and t.stop_reason == "EVDisconnected" for t in txs)
    by_cp = {(t.cp_id, t.connector_id): t.meter_stop - t.meter_start for t in txs}
    # The store's energy per transaction is what the simulator metered.
    for cp in site.chargers:
        for conn in (1, 2):
            assert by_cp[(cp.id, conn)] == pytest.approx(site.arrays.energy_wh[cp.idx(conn)], abs=1.0)
    assert central.store.meter_values(measurand="SoC")


async def test_profile_sent_by_the_controller_changes_power_drawn(
    central: CentralSystem, manual_clock: ManualClock
) -> None:
    site = site_for(central, manual_clock, 1, 2)
    await site.start()
    try:
        assert await site.wait_online(10.0) == 1
        await advance(site, manual_clock, 120.0)
        assert site.arrays.power_w.tolist() == pytest.approx([11000.0, 11000.0])
        profile = {
            "chargingProfileId": 42,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
            },
        }
        res = await central.send(
            "SIM0001", call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile), reason="test_headroom"
        )
        assert res.status == "Accepted"
        await advance(site, manual_clock, 120.0)
        assert site.arrays.power_w.tolist() == pytest.approx([6900.0, 6900.0])  # 10 A x 230 V x 3 phases
        comp = await central.send(
            "SIM0001", call.GetCompositeSchedule(connector_id=0, duration=300, charging_rate_unit="W")
        )
        assert float(comp.charging_schedule["charging_schedule_period"][0]["limit"]) == pytest.approx(13800.0)
    finally:
        await site.stop()
    await central.flush()
    powers = [mv.value for mv in central.store.meter_values(cp_id="SIM0001", measurand="Power.Active.Import")]
    assert powers[0] == pytest.approx(11000.0) and powers[-1] == pytest.approx(6900.0)
    (row,) = [p for p in central.store.charging_profiles("SIM0001")]
    assert row.status == "Accepted" and row.reason == "test_headroom"


async def test_connection_cut_mid_transaction_loses_and_duplicates_nothing(
    central: CentralSystem, manual_clock: ManualClock
) -> None:
    site = site_for(central, manual_clock, 1, 1, arrival_s=30.0, departure_s=1500.0)
    cp = site.chargers[0]
    await site.start()
    try:
        assert await site.wait_online(10.0) == 1
        await advance(site, manual_clock, 300.0)
        await cp.drop_connection()
        await eventually(lambda: not cp.online.is_set(), what="charger offline")
        await advance(site, manual_clock, 140.0)  # backoff is 150-300 s: still offline, samples queue up
        assert not cp.online.is_set() and [m.action for m in cp.pending].count("MeterValues") >= 2
        await advance(site, manual_clock, 1400.0)  # reconnects, drains, EV leaves at 1500 s
        await eventually(lambda: not cp.pending, what="outbox to drain")
    finally:
        await site.stop()
    await central.flush()
    (tx,) = central.store.transactions()
    assert tx.stop_reason == "EVDisconnected"
    rows = central.store.meter_values(transaction_id=tx.id, measurand="Energy.Active.Import.Register")
    stamps = [r.timestamp for r in rows if r.context == "Sample.Periodic"]
    assert len(stamps) == len(set(stamps)), "a sample was stored twice"
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(stamps)} == {60.0}, "a sample was lost"
    assert [r.value for r in rows] == sorted(r.value for r in rows)
