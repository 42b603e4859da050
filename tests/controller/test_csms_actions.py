"""Every OCPP 1.6 action in both directions, over real WebSockets on 127.0.0.1, against the central system."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.v16 import call, call_result

from controller import events as ev
from controller.csms import CentralSystem
from controller.errors import CallErrorReceived, CallTimeout, ChargePointNotConnected, InvalidRequest
from controller.store import REBOOT_CLOSED
from tests.controller.ocpp_client import TestChargePoint, charge_point

NOW_Z = "2026-03-02T08:00:00.000Z"  # the manual clock's time, as the central system must send it


async def boot(cp: TestChargePoint, firmware: str = "1.0") -> Any:
    res = await cp.call(
        call.BootNotification(charge_point_model="M1", charge_point_vendor="Acme", firmware_version=firmware)
    )
    await cp.wait_for("ChangeConfiguration", 2)
    return res


async def test_boot_answers_rfc3339_reads_capabilities_and_configures_sampling(csms: CentralSystem) -> None:
    boots = csms.bus.subscribe(ev.TOPIC_BOOT)
    caps_sub = csms.bus.subscribe(ev.TOPIC_CAPABILITIES)
    async with charge_point(csms.url, "CP1") as cp:
        res = await boot(cp)
        assert res == call_result.BootNotification(current_time=NOW_Z, interval=300, status="Accepted")
        asked = (await cp.wait_for("GetConfiguration"))[0]["key"]
        assert set(asked) == {
            "ChargeProfileMaxStackLevel",
            "ChargingScheduleAllowedChargingRateUnit",
            "ChargingScheduleMaxPeriods",
            "MaxChargingProfilesInstalled",
            "NumberOfConnectors",
            "BidirectionalCharging",  # the vendor key by which a charger declares discharge (evsite.discharge)
        }
        assert cp.configuration["MeterValueSampleInterval"] == "60"
        assert cp.configuration["MeterValuesSampledData"] == (
            "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC"
        )
        _, caps_event = await asyncio.wait_for(caps_sub.get(), 2)
    await csms.flush()
    row = csms.store.charge_point("CP1")
    assert (row.vendor, row.model, row.firmware_version) == ("Acme", "M1", "1.0")
    assert row.capabilities == {
        "ChargeProfileMaxStackLevel": 3,
        "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
        "ChargingScheduleMaxPeriods": 24,
        "MaxChargingProfilesInstalled": 8,
        "NumberOfConnectors": 2,
        "BidirectionalCharging": None,  # a charger without the vendor key: it never gets a discharge
    }
    assert caps_event.capabilities == row.capabilities == csms.capabilities("CP1")
    assert csms.capabilities("CP2") is None
    assert (await boots.get())[1].vendor == "Acme"
    assert row.last_boot is not None and row.last_boot.tzinfo is not None


async def test_capabilities_are_probed_again_only_when_firmware_changes(csms: CentralSystem) -> None:
    async with charge_point(csms.url, "CP1") as cp:
        await boot(cp, "1.0")
        await cp.call(
            call.BootNotification(charge_point_model="M1", charge_point_vendor="Acme", firmware_version="1.0")
        )
        await cp.call(call.Heartbeat())
        assert len([a for a, _ in cp.received if a == "GetConfiguration"]) == 1
        await cp.call(
            call.BootNotification(charge_point_model="M1", charge_point_vendor="Acme", firmware_version="2.0")
        )
        assert len(await cp.wait_for("GetConfiguration", 2)) == 2


@pytest.mark.parametrize(
    ("id_tag", "status"),
    [("TAG-OK", "Accepted"), ("TAG-BLOCKED", "Blocked"), ("TAG-OLD", "Expired"), ("NOBODY", "Invalid")],
)
async def test_authorize_and_start_transaction_answer_the_tag_status(
    csms: CentralSystem, id_tag: str, status: str
) -> None:
    async with charge_point(csms.url, "CP1") as cp:
        auth = await cp.call(call.Authorize(id_tag=id_tag))
        assert auth.id_tag_info["status"] == status
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=0, timestamp=NOW_Z))
        assert start.id_tag_info["status"] == status
        assert start.transaction_id >= 1
    await csms.flush()
    assert csms.store.transaction(start.transaction_id).auth_status == status


async def test_status_meter_values_and_heartbeat_are_persisted_and_published(csms: CentralSystem) -> None:
    status_sub = csms.bus.subscribe(ev.TOPIC_STATUS)
    meter_sub = csms.bus.subscribe(ev.TOPIC_METER)
    async with charge_point(csms.url, "CP1") as cp:
        hb = await cp.call(call.Heartbeat())
        assert hb.current_time == NOW_Z
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        await cp.call(
            call.StatusNotification(
                connector_id=1, error_code="GroundFailure", status="Faulted", info="GFCI", timestamp=NOW_Z
            )
        )
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=None,
                meter_value=[
                    {
                        "timestamp": "2026-03-02T07:59:00+00:00",
                        "sampledValue": [
                            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                            {"value": "10.5", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                            {"value": "11.0", "measurand": "Current.Import", "unit": "A", "phase": "L2"},
                            {"value": "1234"},
                            {"value": "55", "measurand": "SoC", "unit": "Percent"},
                        ],
                    }
                ],
            )
        )
    statuses = [(await status_sub.get())[1] for _ in range(2)]
    assert [(s.status, s.error_code) for s in statuses] == [("Preparing", "NoError"), ("Faulted", "GroundFailure")]
    _, meter = await meter_sub.get()
    assert (meter.power_w, meter.current_a, meter.energy_wh, meter.soc_pct) == (7200.0, 11.0, 1234.0, 55.0)
    assert meter.at.isoformat() == "2026-03-02T07:59:00+00:00"
    await csms.flush()
    (conn,) = csms.store.connectors("CP1")
    assert (conn.connector_id, conn.status, conn.error_code, conn.info) == (1, "Faulted", "GroundFailure", "GFCI")
    rows = csms.store.meter_values(cp_id="CP1")
    assert [r.measurand for r in rows] == [
        "Power.Active.Import",
        "Current.Import",
        "Current.Import",
        "Energy.Active.Import.Register",
        "SoC",
    ]
    assert rows[0].value == 7.2 and rows[0].unit == "kW"
    assert csms.store.charge_point("CP1").last_seen is not None


async def test_start_transaction_is_idempotent_and_stop_is_recorded(csms: CentralSystem) -> None:
    tx_sub = csms.bus.subscribe(ev.TOPIC_TRANSACTION)
    start = call.StartTransaction(connector_id=2, id_tag="TAG-OK", meter_start=1000, timestamp="2026-03-02T07:00:00Z")
    async with charge_point(csms.url, "CP1") as cp:
        first = await cp.call(start)
        repeat = await cp.call(start)  # the answer was "lost": the charger sends it again
        other = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=5, timestamp=NOW_Z))
        assert repeat.transaction_id == first.transaction_id != other.transaction_id
        assert csms.open_transactions("CP1") == {first.transaction_id: 2, other.transaction_id: 1}
        stop = await cp.call(
            call.StopTransaction(
                meter_stop=9000,
                timestamp=NOW_Z,
                transaction_id=first.transaction_id,
                reason="EVDisconnected",
                id_tag="TAG-OK",
                transaction_data=[
                    {"timestamp": NOW_Z, "sampledValue": [{"value": "9000", "context": "Transaction.End"}]}
                ],
            )
        )
        assert stop.id_tag_info == {"status": "Accepted"}
    await csms.flush()
    txs = csms.store.transactions(cp_id="CP1")
    assert len(txs) == 2
    done = csms.store.transaction(first.transaction_id)
    assert (done.meter_start, done.meter_stop, done.stop_reason, done.connector_id) == (1000, 9000, "EVDisconnected", 2)
    assert done.start_time.isoformat() == "2026-03-02T07:00:00+00:00"
    assert [r.value for r in csms.store.meter_values(transaction_id=first.transaction_id)] == [9000.0]
    kinds = [(await tx_sub.get())[1].kind for _ in range(3)]
    assert kinds == ["started", "started", "stopped"]


async def test_stop_for_an_unknown_transaction_is_still_recorded(csms: CentralSystem) -> None:
    async with charge_point(csms.url, "CP2") as cp:
        res = await cp.call(call.StopTransaction(meter_stop=42, timestamp=NOW_Z, transaction_id=777, reason="Local"))
        assert res.id_tag_info is None
        await cp.call(call.StopTransaction(meter_stop=42, timestamp=NOW_Z, transaction_id=777, reason="Local"))
    await csms.flush()
    (tx,) = csms.store.transactions(cp_id="CP2")
    assert (tx.unknown_start, tx.reported_id, tx.meter_stop, tx.stop_reason) == (True, 777, 42, "Local")


async def test_reboot_closes_open_transactions_and_the_chargers_own_stop_wins(csms: CentralSystem) -> None:
    async with charge_point(csms.url, "CP1") as cp:
        await boot(cp)
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="TAG-OK", meter_start=100, timestamp=NOW_Z))
        tx_id = start.transaction_id
        await cp.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=tx_id,
                meter_value=[{"timestamp": NOW_Z, "sampledValue": [{"value": "350"}]}],
            )
        )
        await cp.call(
            call.BootNotification(charge_point_model="M1", charge_point_vendor="Acme", firmware_version="1.0")
        )
        await csms.flush()
        closed = csms.store.transaction(tx_id)
        assert (closed.stop_reason, closed.meter_stop) == (REBOOT_CLOSED, 350)
        assert csms.store.transactions(cp_id="CP1", open_only=True) == []
        await cp.call(call.StopTransaction(meter_stop=400, timestamp=NOW_Z, transaction_id=tx_id, reason="Reboot"))
    await csms.flush()
    final = csms.store.transaction(tx_id)
    assert (final.stop_reason, final.meter_stop, final.unknown_start) == ("Reboot", 400, False)


async def test_data_transfer_firmware_and_diagnostics_notifications(csms: CentralSystem) -> None:
    csms.data_transfer_handlers["acme"] = lambda cp_id, message_id, data: ("Accepted", f"{cp_id}:{data}")
    async with charge_point(csms.url, "CP1") as cp:
        unknown = await cp.call(call.DataTransfer(vendor_id="other", message_id="x", data="1"))
        assert unknown.status == "UnknownVendorId"
        known = await cp.call(call.DataTransfer(vendor_id="acme", data="ping"))
        assert (known.status, known.data) == ("Accepted", "CP1:ping")
        assert (
            await cp.call(call.FirmwareStatusNotification(status="Installed"))
            == call_result.FirmwareStatusNotification()
        )
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
    await csms.flush()
    row = csms.store.charge_point("CP1")
    assert (row.firmware_status, row.diagnostics_status) == ("Installed", "Uploaded")
    assert [e.data["vendor_id"] for e in csms.store.events(cp_id="CP1", kind="data_transfer")] == ["other", "acme"]


PROFILE = {
    "chargingProfileId": 7,
    "stackLevel": 1,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.4}]},
}

CS_REQUESTS: list[tuple[Any, Any]] = [
    (call.SetChargingProfile(connector_id=1, cs_charging_profiles=PROFILE), call_result.SetChargingProfile("Accepted")),
    (call.ClearChargingProfile(id=7), call_result.ClearChargingProfile("Accepted")),
    (call.RemoteStartTransaction(id_tag="TAG-OK", connector_id=1), call_result.RemoteStartTransaction("Accepted")),
    (call.RemoteStopTransaction(transaction_id=3), call_result.RemoteStopTransaction("Accepted")),
    (call.ChangeConfiguration(key="HeartbeatInterval", value="60"), call_result.ChangeConfiguration("Accepted")),
    (
        call.TriggerMessage(requested_message="StatusNotification", connector_id=1),
        call_result.TriggerMessage("Accepted"),
    ),
    (call.Reset(type="Soft"), call_result.Reset("Accepted")),
    (call.ChangeAvailability(connector_id=0, type="Inoperative"), call_result.ChangeAvailability("Scheduled")),
    (call.UnlockConnector(connector_id=2), call_result.UnlockConnector("Unlocked")),
    (call.DataTransfer(vendor_id="acme", data="ping"), call_result.DataTransfer("Accepted", "pong")),
]


@pytest.mark.parametrize(("request_", "expected"), CS_REQUESTS, ids=[type(r).__name__ for r, _ in CS_REQUESTS])
async def test_send_every_central_system_request(csms: CentralSystem, request_: Any, expected: Any) -> None:
    async with charge_point(csms.url, "CP1") as cp:
        assert await csms.send("CP1", request_, reason="test") == expected
        assert cp.received[-1][0] == type(request_).__name__


async def test_get_configuration_and_composite_schedule_return_dataclasses(csms: CentralSystem) -> None:
    async with charge_point(csms.url, "CP1") as cp:
        conf = await csms.send("CP1", call.GetConfiguration(key=["NumberOfConnectors", "Nope"]))
        assert conf.configuration_key == [{"key": "NumberOfConnectors", "readonly": False, "value": "2"}]
        assert conf.unknown_key == ["Nope"]
        sched = await csms.send("CP1", call.GetCompositeSchedule(connector_id=1, duration=3600, charging_rate_unit="A"))
        assert sched.status == "Accepted"
        assert sched.charging_schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 16.0}]
        assert cp.received[-1] == (
            "GetCompositeSchedule",
            {"connector_id": 1, "duration": 3600, "charging_rate_unit": "A"},
        )


async def test_profiles_are_stored_with_reason_and_answer(csms: CentralSystem) -> None:
    profiles = csms.bus.subscribe(ev.TOPIC_PROFILE)
    async with charge_point(csms.url, "CP1"):
        await csms.send(
            "CP1", call.SetChargingProfile(connector_id=1, cs_charging_profiles=PROFILE), reason="site_headroom"
        )
    await csms.flush()
    (row,) = csms.store.charging_profiles("CP1")
    assert (row.action, row.connector_id, row.status, row.reason) == (
        "SetChargingProfile",
        1,
        "Accepted",
        "site_headroom",
    )
    assert row.profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.4
    _, event = await profiles.get()
    assert (event.cp_id, event.status, event.reason) == ("CP1", "Accepted", "site_headroom")


async def test_send_raises_instead_of_returning_none(csms: CentralSystem) -> None:
    with pytest.raises(ChargePointNotConnected):
        await csms.send("CP1", call.Reset(type="Hard"))
    async with charge_point(csms.url, "CP1") as cp:
        # The test charge point has no ClearCache handler: the library answers with a CALLERROR.
        with pytest.raises(CallErrorReceived) as err:
            await csms.send("CP1", call.ClearCache())
        assert err.value.code == "NotImplemented"
        bad = dict(
            PROFILE,
            chargingSchedule={"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.45}]},
        )
        with pytest.raises(InvalidRequest):
            await csms.send("CP1", call.SetChargingProfile(connector_id=1, cs_charging_profiles=bad))
        assert "SetChargingProfile" not in [a for a, _ in cp.received]


async def test_send_times_out_when_the_charger_is_silent(csms: CentralSystem) -> None:
    from websockets.asyncio.client import connect

    connections = csms.bus.subscribe(ev.TOPIC_CONNECTION)
    async with connect(csms.url + "CP2", subprotocols=["ocpp1.6"]) as ws:
        assert (await asyncio.wait_for(connections.get(), 2))[1].cp_id == "CP2"
        with pytest.raises(CallTimeout):
            await csms.send("CP2", call.Reset(type="Soft"), timeout=0.2)
        assert '"Reset"' in await ws.recv()


async def test_a_second_connection_replaces_the_first(csms: CentralSystem) -> None:
    conn_sub = csms.bus.subscribe(ev.TOPIC_CONNECTION)
    async with charge_point(csms.url, "CP1") as first:
        async with charge_point(csms.url, "CP1") as second:
            await asyncio.wait_for(first._connection.wait_closed(), 2)
            assert first._connection.close_code == 1000
            assert csms.connected == {"CP1"}
            await csms.send("CP1", call.UnlockConnector(connector_id=1))
            assert [a for a, _ in second.received] == ["UnlockConnector"]
            assert await second.call(call.Heartbeat())
    seen = [(await conn_sub.get())[1].connected for _ in range(4)]
    assert seen.count(True) == 2 and seen.count(False) == 2
    assert csms.connected == set()


async def test_a_call_interrupted_by_a_disconnect_raises_not_connected(csms: CentralSystem) -> None:
    from websockets.asyncio.client import connect

    connections = csms.bus.subscribe(ev.TOPIC_CONNECTION)
    async with connect(csms.url + "CP2", subprotocols=["ocpp1.6"]) as ws:
        await asyncio.wait_for(connections.get(), 2)
        pending = asyncio.create_task(csms.send("CP2", call.Reset(type="Hard"), timeout=5))
        assert '"Reset"' in await ws.recv()
    with pytest.raises(ChargePointNotConnected):
        await asyncio.wait_for(pending, 2)
    with pytest.raises(ChargePointNotConnected):
        await csms.send("CP2", call.Reset(type="Hard"))
