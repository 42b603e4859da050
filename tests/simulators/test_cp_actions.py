"""The rest of OCPP 1.6's charge-point side, simulated charger against our central system over real WebSockets:
reservations, the local list and cache used offline, firmware and diagnostics sequences, unlock, data transfer,
triggered meter values inside a transaction, and StopTransaction's transactionData."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from ocpp.v16 import call

from controller.csms import CentralSystem
from controller.errors import CallErrorReceived, InvalidRequest
from evsite.clock import ManualClock
from simulators.chargepoint import SimChargePoint
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import advance, small_fleet
from tests.waiting import eventually

CP = "SIM0001"


@pytest.fixture
async def site(central: CentralSystem, manual_clock: ManualClock) -> AsyncIterator[SimulatedSite]:
    """One charger with two connectors; its cars never arrive by themselves (the tests plug them in)."""
    s = SimulatedSite(
        central.url,
        manual_clock,
        charger_specs(1, 2),
        small_fleet(2, arrival_s=1e7, departure_s=2e7),
        backoff_base_s=300.0,
    )
    await s.start()
    assert await s.wait_online(10.0) == 1
    await eventually(lambda: central.capabilities(CP) is not None, what="capability probe")
    try:
        yield s
    finally:
        await s.stop()


def plug(site: SimulatedSite, conn: int, id_tag: str) -> SimChargePoint:
    cp = site.chargers[0]
    site.arrays.ev_id[cp.idx(conn)] = conn - 1
    cp.ev_arrived(conn, id_tag)
    return cp


def status(central: CentralSystem, conn: int) -> str:
    event = central.connector_status.get((CP, conn))
    return event.status if event else "?"


async def drained(site: SimulatedSite) -> None:
    await eventually(lambda: not site.chargers[0].pending, what="outbox to drain")


async def test_reservation_holds_the_connector_for_its_tag_until_it_expires(
    central: CentralSystem, site: SimulatedSite, manual_clock: ManualClock
) -> None:
    expiry = manual_clock.now() + timedelta(minutes=10)
    reserve = call.ReserveNow(connector_id=1, expiry_date=expiry.isoformat(), id_tag="SIM-TAG", reservation_id=7)
    assert (await central.send(CP, reserve)).status == "Accepted"
    await eventually(lambda: status(central, 1) == "Reserved", what="Reserved status")
    other = call.ReserveNow(connector_id=1, expiry_date=expiry.isoformat(), id_tag="X", reservation_id=8)
    assert (await central.send(CP, other)).status == "Occupied"
    zero = call.ReserveNow(connector_id=0, expiry_date=expiry.isoformat(), id_tag="X", reservation_id=9)
    assert (await central.send(CP, zero)).status == "Rejected"  # ReserveConnectorZeroSupported is false

    cp = plug(site, 1, "SOMEONE-ELSE")
    await advance(site, manual_clock, 20)
    assert 1 not in cp.tx and status(central, 1) == "Reserved"
    cp.ev_departed(1)
    plug(site, 1, "SIM-TAG")
    await advance(site, manual_clock, 20)
    await drained(site)
    await central.flush()
    (tx,) = central.store.transactions(cp_id=CP)
    assert (tx.connector_id, tx.reservation_id, tx.id_tag) == (1, 7, "SIM-TAG")
    assert not cp.reservations

    short = call.ReserveNow(
        connector_id=2,
        expiry_date=(manual_clock.now() + timedelta(seconds=300)).isoformat(),
        id_tag="T",
        reservation_id=10,
    )
    assert (await central.send(CP, short)).status == "Accepted"
    await advance(site, manual_clock, 310)
    await eventually(lambda: status(central, 2) == "Available", what="expired reservation released")
    assert (await central.send(CP, call.CancelReservation(reservation_id=10))).status == "Rejected"
    again = call.ReserveNow(
        connector_id=2, expiry_date=(manual_clock.now() + timedelta(hours=1)).isoformat(), id_tag="T", reservation_id=11
    )
    assert (await central.send(CP, again)).status == "Accepted"
    assert (await central.send(CP, call.CancelReservation(reservation_id=11))).status == "Accepted"
    await eventually(lambda: status(central, 2) == "Available", what="cancelled reservation released")


async def test_offline_authorisation_follows_the_local_list_the_cache_and_the_config_keys(
    central: CentralSystem, site: SimulatedSite, manual_clock: ManualClock
) -> None:
    cp = site.chargers[0]
    res = await central.send(CP, call.ChangeConfiguration(key="AllowOfflineTxForUnknownId", value="false"))
    assert res.status == "Accepted"
    assert (await central.send(CP, call.ChangeConfiguration(key="LocalAuthListEnabled", value="maybe"))).status == (
        "Rejected"
    )
    full = call.SendLocalList(
        list_version=3,
        update_type="Full",
        local_authorization_list=[
            {"id_tag": "LIST-TAG", "id_tag_info": {"status": "Accepted"}},
            {"id_tag": "LIST-BLOCKED", "id_tag_info": {"status": "Blocked"}},
        ],
    )
    assert (await central.send(CP, full)).status == "Accepted"
    assert (await central.send(CP, call.GetLocalListVersion())).list_version == 3
    stale = call.SendLocalList(list_version=3, update_type="Differential", local_authorization_list=[])
    assert (await central.send(CP, stale)).status == "VersionMismatch"
    conf = await central.send(CP, call.GetConfiguration(key=["AllowOfflineTxForUnknownId", "LocalAuthListMaxLength"]))
    assert {k["key"]: k["value"] for k in conf.configuration_key} == {
        "AllowOfflineTxForUnknownId": "false",
        "LocalAuthListMaxLength": "1000",
    }

    # Online: SIM-TAG is authorised by the central system, which puts it in the cache.
    plug(site, 2, "SIM-TAG")
    await advance(site, manual_clock, 20)
    assert 2 in cp.tx and cp.local_auth.cache["SIM-TAG"].status == "Accepted"
    cp.ev_departed(2)
    await drained(site)

    await cp.drop_connection()
    await eventually(lambda: not cp.online.is_set(), what="offline")
    decisions = {}
    for tag in ("LIST-TAG", "LIST-BLOCKED", "SIM-TAG", "NEVER-SEEN"):
        decisions[tag] = cp.offline_authorized(tag)
    assert decisions == {
        "LIST-TAG": (True, "local_list:Accepted"),
        "LIST-BLOCKED": (False, "local_list:Blocked"),
        "SIM-TAG": (True, "cache:Accepted"),
        "NEVER-SEEN": (False, "unknown_tag"),
    }
    plug(site, 1, "LIST-TAG")
    plug(site, 2, "NEVER-SEEN")
    await advance(site, manual_clock, 20)
    assert 1 in cp.tx and 2 not in cp.tx

    # Back online, the queued transaction reaches the store; ClearCache empties the cache.
    await advance(site, manual_clock, 300)
    assert await site.wait_online(10.0) == 1
    await drained(site)
    await central.flush()
    assert [t.id_tag for t in central.store.transactions(cp_id=CP)] == ["SIM-TAG", "LIST-TAG"]
    assert (await central.send(CP, call.ClearCache())).status == "Accepted"
    assert cp.offline_authorized("SIM-TAG") == (False, "unknown_tag")


async def test_firmware_update_and_diagnostics_report_their_progress(
    central: CentralSystem, site: SimulatedSite, manual_clock: ManualClock
) -> None:
    when = manual_clock.now() + timedelta(seconds=30)
    req = call.UpdateFirmware(location="https://fw.example/evsite-sim-2.bin", retrieve_date=when.isoformat())
    await central.send(CP, req)
    await advance(site, manual_clock, 150)  # 30 s to the retrieve date, 60 s download, 30 s install
    await advance(site, manual_clock, 300)  # the reboot's reconnect back-off
    assert await site.wait_online(10.0) == 1
    await drained(site)
    await central.flush()
    seq = [e.data["status"] for e in central.store.events(cp_id=CP, kind="firmware_status")]
    assert seq == ["Downloading", "Downloaded", "Installing", "Installed"]
    row = central.store.charge_point(CP)
    assert (row.firmware_version, row.firmware_status) == ("evsite-sim-2.bin", "Installed")

    await central.send(
        CP, call.UpdateFirmware(location="file:///tmp/fw.bin", retrieve_date=manual_clock.now().isoformat())
    )
    res = await central.send(CP, call.GetDiagnostics(location="ftp://diag.example/upload"))
    assert res.file_name.startswith(f"{CP}-")
    await advance(site, manual_clock, 70)
    await drained(site)
    await central.flush()
    assert [e.data["status"] for e in central.store.events(cp_id=CP, kind="firmware_status")][-2:] == [
        "Downloading",
        "DownloadFailed",
    ]
    assert [e.data["status"] for e in central.store.events(cp_id=CP, kind="diagnostics_status")] == [
        "Uploading",
        "Uploaded",
    ]


async def test_unlock_data_transfer_trigger_and_transaction_data(
    central: CentralSystem, site: SimulatedSite, manual_clock: ManualClock
) -> None:
    cp = plug(site, 1, "SIM-TAG")
    await advance(site, manual_clock, 20)
    await drained(site)
    tx_id = cp.tx[1].transaction_id
    assert (await central.send(CP, call.TriggerMessage(requested_message="MeterValues", connector_id=1))).status == (
        "Accepted"
    )
    await drained(site)
    echo = await central.send(CP, call.DataTransfer(vendor_id="evsite", message_id="echo", data="ping"))
    assert (echo.status, echo.data) == ("Accepted", "ping")
    assert (await central.send(CP, call.DataTransfer(vendor_id="acme"))).status == "UnknownVendorId"
    assert (await central.send(CP, call.UnlockConnector(connector_id=5))).status == "UnlockFailed"
    assert (await central.send(CP, call.UnlockConnector(connector_id=1))).status == "Unlocked"
    await advance(site, manual_clock, 10)
    await drained(site)
    await central.flush()
    (tx,) = central.store.transactions(cp_id=CP)
    assert (tx.id, tx.stop_reason) == (tx_id, "UnlockCommand")
    by_context = {}
    for mv in central.store.meter_values(cp_id=CP, measurand="Energy.Active.Import.Register"):
        by_context.setdefault(mv.context, set()).add(mv.transaction_id)
    assert by_context["Trigger"] == {tx_id}, "a triggered MeterValues in a transaction carries its id"
    assert by_context["Transaction.Begin"] == by_context["Transaction.End"] == {tx_id}


async def test_multiple_of_is_checked_the_same_way_by_both_sides(central: CentralSystem, site: SimulatedSite) -> None:
    def profile(limit: float) -> call.SetChargingProfile:
        schedule = {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": limit}]}
        body = {
            "charging_profile_id": 1,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": schedule,
        }
        return call.SetChargingProfile(connector_id=0, cs_charging_profiles=body)

    assert (await central.send(CP, profile(21.4))).status == "Accepted"
    with pytest.raises(InvalidRequest, match=r"multiple of 0\.1"):
        await central.send(CP, profile(21.45))
    with pytest.raises(CallErrorReceived) as err:
        await central.session(CP).call(profile(21.45), skip_schema_validation=True)
    assert err.value.code == "PropertyConstraintViolation"


async def test_change_availability_applies_now_or_after_the_transaction(
    central: CentralSystem, site: SimulatedSite, manual_clock: ManualClock
) -> None:
    cp = plug(site, 1, "SIM-TAG")
    await advance(site, manual_clock, 20)
    await drained(site)
    assert 1 in cp.tx
    inoperative = call.ChangeAvailability(connector_id=2, type="Inoperative")
    assert (await central.send(CP, inoperative)).status == "Accepted"
    await eventually(lambda: status(central, 2) == "Unavailable", what="connector 2 Unavailable")
    plug(site, 2, "SIM-TAG")
    await advance(site, manual_clock, 20)
    assert 2 not in cp.tx, "an Unavailable connector starts no transaction"
    expiry = (manual_clock.now() + timedelta(hours=1)).isoformat()
    reserve = call.ReserveNow(connector_id=2, expiry_date=expiry, id_tag="SIM-TAG", reservation_id=1)
    assert (await central.send(CP, reserve)).status == "Unavailable"

    whole = call.ChangeAvailability(connector_id=0, type="Inoperative")
    assert (await central.send(CP, whole)).status == "Scheduled"  # connector 1 is charging
    assert status(central, 1) != "Unavailable"
    tx_id = cp.tx[1].transaction_id
    assert (await central.send(CP, call.RemoteStopTransaction(transaction_id=tx_id))).status == "Accepted"
    await eventually(lambda: status(central, 1) == "Unavailable", what="connector 1 Unavailable after its transaction")

    assert (await central.send(CP, call.ChangeAvailability(connector_id=0, type="Operative"))).status == "Accepted"
    # Connector 1's car is still plugged in; connector 2 turned its car away while Unavailable.
    back = ("Available", "Preparing", "Available")
    await eventually(lambda: tuple(status(central, c) for c in (0, 1, 2)) == back, what="operative again")
    assert (await central.send(CP, call.ChangeAvailability(connector_id=3, type="Operative"))).status == "Rejected"
