"""The charge point simulator against a recording OCPP 1.6J server over real WebSockets on 127.0.0.1.

Every frame the simulator sends (its calls and its answers) is validated against the OCPP 1.6 JSON schemas
by the server (``recording_csms``); each test ends by asserting there were no schema errors.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call

from evsite.clock import ManualClock
from simulators.chargepoint import ChargerSpec, backoff_delay
from simulators.site import SimulatedSite, charger_specs
from simulators.smart_charging import Capabilities
from tests.simulators.helpers import advance, settle, small_fleet
from tests.simulators.recording_csms import RecordingCSMS
from tests.waiting import eventually


@pytest.fixture
async def csms() -> AsyncIterator[RecordingCSMS]:
    async with RecordingCSMS(interval_s=120) as server:
        yield server
        assert server.rec.errors == [], "frames that fail the OCPP 1.6 schemas"


async def started_site(
    csms: RecordingCSMS, clock: ManualClock, specs: list[ChargerSpec], n_ev: int, **kw: Any
) -> SimulatedSite:
    site = SimulatedSite(csms.url, clock, specs, small_fleet(n_ev, **kw), backoff_base_s=2.0, response_timeout_s=5.0)
    await site.start()
    assert await site.wait_online(5.0) == len(specs)
    return site


def tx_profile(pid: int, limit: float, unit: str = "A", stack: int = 1, purpose: str = "TxProfile") -> dict[str, Any]:
    return {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]},
    }


def sampled(frame: Any, measurand: str) -> list[str]:
    return [
        sv["value"]
        for mv in frame.payload["meterValue"]
        for sv in mv["sampledValue"]
        if sv.get("measurand") == measurand
    ]


async def test_session_lifecycle_messages_follow_the_spec(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(2, 2), 4, arrival_s=30, departure_s=1800)
    try:
        await advance(site, manual_clock, 2400)
        assert len(csms.rec.calls("BootNotification")) == 2
        assert len(csms.rec.calls("Authorize")) == 4
        assert len(csms.transactions) == 4
        stops = csms.rec.calls("StopTransaction")
        assert len(stops) == 4 and {f.payload["reason"] for f in stops} == {"EVDisconnected"}
        assert all(t["meter_stop"] > t["meter_start"] for t in csms.transactions.values())
        seq = [s for cp, c, s in csms.statuses if cp == "SIM0001" and c == 1]
        assert seq == ["Available", "Preparing", "Charging", "Finishing", "Available"]
        # MeterValues every 60 s with all four measurands, per phase current
        mv = csms.rec.calls("MeterValues", "SIM0001")
        assert len(mv) >= 2 * 25
        first = mv[0]
        assert float(sampled(first, "Power.Active.Import")[0]) == pytest.approx(11000.0)
        assert len(sampled(first, "Current.Import")) == 3
        assert sampled(first, "SoC") and sampled(first, "Energy.Active.Import.Register")
        # Heartbeat at the interval the server gave (120 s) over 2400 s: 20 beats, give or take one
        assert 19 <= len(csms.rec.calls("Heartbeat", "SIM0001")) <= 21
    finally:
        await site.stop()


async def test_profile_from_central_system_changes_power_drawn(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(1, 2, voltage_v=230.0, phases=3), 2)
    try:
        await advance(site, manual_clock, 60)
        assert site.arrays.power_w.tolist() == pytest.approx([11000.0, 11000.0])
        res = await csms.send(
            "SIM0001", call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_profile(7, 8.0))
        )
        assert res.status == "Accepted"
        await advance(site, manual_clock, 60)
        assert site.arrays.power_w.tolist() == pytest.approx([8 * 230 * 3, 11000.0])
        last_mv = csms.rec.calls("MeterValues", "SIM0001")[-2:]
        powers = sorted(float(sampled(f, "Power.Active.Import")[0]) for f in last_mv)
        assert powers == pytest.approx([5520.0, 11000.0])
        comp = await csms.send(
            "SIM0001", call.GetCompositeSchedule(connector_id=1, duration=600, charging_rate_unit="A")
        )
        assert comp.status == "Accepted"
        assert [float(p["limit"]) for p in comp.charging_schedule["charging_schedule_period"]] == [8.0]
        # A limit below the EV minimum (6 A) pauses charging: SuspendedEVSE
        res = await csms.send(
            "SIM0001", call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_profile(7, 0.0))
        )
        await advance(site, manual_clock, 20)
        assert site.arrays.power_w[0] == 0.0
        assert ("SIM0001", 1, "SuspendedEVSE") in csms.statuses
        # Clearing the profile resumes at full power
        res = await csms.send("SIM0001", call.ClearChargingProfile(id=7))
        assert res.status == "Accepted"
        await advance(site, manual_clock, 20)
        assert site.arrays.power_w[0] == pytest.approx(11000.0)
    finally:
        await site.stop()


async def test_charge_point_max_profile_is_shared_by_connectors(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(1, 2), 2)
    try:
        await advance(site, manual_clock, 60)
        res = await csms.send(
            "SIM0001",
            call.SetChargingProfile(
                connector_id=0,
                cs_charging_profiles=tx_profile(9, 13800.0, unit="W", stack=0, purpose="ChargePointMaxProfile")
                | {
                    "chargingProfileKind": "Absolute",
                    "chargingSchedule": {
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 13800.0}],
                        "startSchedule": manual_clock.now().isoformat(),
                    },
                },
            ),
        )
        assert res.status == "Accepted"
        await advance(site, manual_clock, 20)
        assert site.arrays.power_w.sum() == pytest.approx(13800.0)
    finally:
        await site.stop()


async def test_boot_pending_then_rejected_then_accepted(manual_clock: ManualClock) -> None:
    async with RecordingCSMS(interval_s=30) as csms:
        csms.boot_answers = ["Pending", "Rejected"]
        site = SimulatedSite(csms.url, manual_clock, charger_specs(1, 1), small_fleet(1, arrival_s=1e6))
        await site.start()
        try:
            await eventually(lambda: len(csms.rec.calls("BootNotification")) == 1, what="first boot")
            await settle()
            assert not site.chargers[0].online.is_set()
            assert csms.rec.calls("StatusNotification") == []  # nothing but BootNotification before Accepted
            await eventually(lambda: manual_clock.pending == 1, what="charger waiting the Pending interval")
            await manual_clock.advance(30)
            await eventually(lambda: len(csms.rec.calls("BootNotification")) == 2, what="retry after Pending")
            await eventually(lambda: manual_clock.pending == 1, what="charger waiting the Rejected interval")
            await manual_clock.advance(30)
            await site.wait_online(5.0)
            assert site.chargers[0].online.is_set()
            assert len(csms.rec.calls("BootNotification")) == 3
            await eventually(lambda: len(csms.rec.calls("StatusNotification")) == 2, what="status after boot")
        finally:
            await site.stop()
        assert csms.rec.errors == []


QUIRKS = [
    ("max stack level", Capabilities(max_stack_level=1), tx_profile(1, 10, stack=2), "Rejected"),
    ("only stack 0", Capabilities(only_stack_level_0=True), tx_profile(1, 10, stack=1), "Rejected"),
    ("amps only", Capabilities(allowed_units=("A",)), tx_profile(1, 5000, unit="W"), "Rejected"),
    ("watts ok", Capabilities(allowed_units=("W",)), tx_profile(1, 5000, unit="W"), "Accepted"),
    (
        "rejects cp max",
        Capabilities(reject_charge_point_max=True),
        tx_profile(1, 10, stack=0, purpose="ChargePointMaxProfile") | {"chargingProfileKind": "Relative"},
        "Rejected",
    ),
]


@pytest.mark.parametrize(("name", "caps", "profile", "expected"), QUIRKS, ids=[q[0] for q in QUIRKS])
async def test_capabilities_and_quirks(
    csms: RecordingCSMS, manual_clock: ManualClock, name, caps, profile, expected
) -> None:
    site = await started_site(csms, manual_clock, [ChargerSpec("Q1", connectors=1, capabilities=caps)], 1)
    try:
        await advance(site, manual_clock, 40)
        conn = 0 if profile["chargingProfilePurpose"] == "ChargePointMaxProfile" else 1
        res = await csms.send("Q1", call.SetChargingProfile(connector_id=conn, cs_charging_profiles=profile))
        assert res.status == expected
        conf = await csms.send(
            "Q1", call.GetConfiguration(key=["ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit"])
        )
        values = {k["key"]: k["value"] for k in conf.configuration_key}
        assert values["ChargeProfileMaxStackLevel"] == str(0 if caps.only_stack_level_0 else caps.max_stack_level)
    finally:
        await site.stop()


async def test_smart_charging_not_supported_answers_callerror(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(
        csms, manual_clock, [ChargerSpec("NS1", connectors=1, capabilities=Capabilities(smart_charging=False))], 1
    )
    try:
        await advance(site, manual_clock, 40)
        with pytest.raises(NotSupportedError):
            await csms.send("NS1", call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_profile(1, 10)))
        with pytest.raises(NotSupportedError):
            await csms.send("NS1", call.GetCompositeSchedule(connector_id=1, duration=60))
    finally:
        await site.stop()


async def test_fault_injection(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(1, 1), 1)
    cp = site.chargers[0]
    try:
        await advance(site, manual_clock, 40)
        cp.faults.reject_profiles = True
        res = await csms.send(
            "SIM0001", call.SetChargingProfile(connector_id=1, cs_charging_profiles=tx_profile(1, 10))
        )
        assert res.status == "Rejected"
        cp.faults.reject_profiles = False

        cp.faults.corrupt_meter_values = 1
        await advance(site, manual_clock, 60)
        assert sampled(csms.rec.calls("MeterValues")[-1], "Energy.Active.Import.Register") == ["ERR"]

        csms.connected["SIM0001"]._response_timeout = 0.2
        cp.faults.drop_answers = 1
        with pytest.raises(TimeoutError):
            await csms.send("SIM0001", call.GetConfiguration())
        assert (await csms.send("SIM0001", call.GetConfiguration())).configuration_key

        csms.connected["SIM0001"]._response_timeout = 5.0
        cp.faults.answer_delay_s = 30
        pending = asyncio.ensure_future(csms.send("SIM0001", call.GetConfiguration(key=["HeartbeatInterval"])))
        await settle()
        assert not pending.done()
        await manual_clock.advance(30)
        assert (await pending).configuration_key[0]["value"] == "120"
        cp.faults.answer_delay_s = 0

        await cp.reboot()
        await eventually(lambda: "SIM0001" not in csms.connected, what="server sees the reboot")
        await manual_clock.advance(5)
        await site.wait_online(5.0)
        assert len(csms.rec.calls("BootNotification")) == 2
        # The StopTransaction queued at the reboot is delivered once the charger is back
        await eventually(lambda: len(csms.rec.calls("StopTransaction")) == 1, what="queued StopTransaction")
        assert csms.rec.calls("StopTransaction")[0].payload["reason"] == "Reboot"
        cp.fault_connector(1)
        await settle()
        assert csms.statuses[-1] == ("SIM0001", 1, "Faulted")
    finally:
        await site.stop()


async def test_soc_integrates_power_drawn_and_full_ev_is_suspended_ev(
    csms: RecordingCSMS, manual_clock: ManualClock
) -> None:
    """A 10 kWh car at 80 % wanting 90 %: 1 kWh into the battery = 1/0.9 kWh from the grid, then SuspendedEV."""
    site = await started_site(csms, manual_clock, charger_specs(1, 1), 1, soc=0.8, soc_target=0.9, capacity_kwh=10.0)
    try:
        await advance(site, manual_clock, 600)
        soc = site.fleet.soc[0]
        metered_kwh = site.arrays.energy_wh[0] / 1000.0
        assert soc == pytest.approx(0.8 + metered_kwh * 0.9 / 10.0)
        assert soc == pytest.approx(0.9, abs=0.01)
        assert site.arrays.power_w[0] == 0.0
        seq = [s for _, c, s in csms.statuses if c == 1]
        assert seq[-2:] == ["Charging", "SuspendedEV"]
    finally:
        await site.stop()


async def test_meter_values_sampled_data_is_configurable(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(1, 1), 1)
    try:
        bad = await csms.send("SIM0001", call.ChangeConfiguration(key="MeterValuesSampledData", value="Voltage"))
        assert bad.status == "Rejected"
        ok = await csms.send(
            "SIM0001",
            call.ChangeConfiguration(key="MeterValuesSampledData", value="Energy.Active.Import.Register,SoC"),
        )
        assert ok.status == "Accepted"
        ok = await csms.send("SIM0001", call.ChangeConfiguration(key="MeterValueSampleInterval", value="30"))
        assert ok.status == "Accepted"
        await advance(site, manual_clock, 130)
        frames = csms.rec.calls("MeterValues")
        assert len(frames) == 3  # every 30 s from the transaction start (t = 30..40 s)
        measurands = {sv["measurand"] for f in frames for mv in f.payload["meterValue"] for sv in mv["sampledValue"]}
        assert measurands == {"Energy.Active.Import.Register", "SoC"}
    finally:
        await site.stop()


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 1.0, 2.0), (2, 2.0, 4.0), (3, 4.0, 8.0), (6, 32.0, 64.0), (8, 50.0, 100.0), (30, 50.0, 100.0)],
)
def test_backoff_is_exponential_capped_and_jittered(attempt: int, low: float, high: float) -> None:
    rng = random.Random(attempt)
    delays = [backoff_delay(attempt, 2.0, 100.0, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len({round(d, 6) for d in delays}) > 150, "jitter: chargers must not retry in lockstep"


async def test_remote_and_trigger_answers_follow_the_spec(csms: RecordingCSMS, manual_clock: ManualClock) -> None:
    site = await started_site(csms, manual_clock, charger_specs(1, 2), 1)
    cp = site.chargers[0]
    try:
        await advance(site, manual_clock, 60)
        (tx_id,) = csms.transactions
        assert (await csms.send("SIM0001", call.RemoteStopTransaction(transaction_id=999))).status == "Rejected"
        assert (await csms.send("SIM0001", call.RemoteStopTransaction(transaction_id=tx_id))).status == "Accepted"
        await advance(site, manual_clock, 10)
        assert csms.rec.calls("StopTransaction")[-1].payload["reason"] == "Remote"
        # The car is still plugged in: a remote start on its connector begins a new transaction.
        conn = next(c for c in (1, 2) if site.arrays.ev_present[cp.idx(c)])
        res = await csms.send("SIM0001", call.RemoteStartTransaction(id_tag="REMOTE", connector_id=conn))
        assert res.status == "Accepted"
        empty = 3 - conn
        res = await csms.send("SIM0001", call.RemoteStartTransaction(id_tag="REMOTE", connector_id=empty))
        assert res.status == "Rejected"  # no car on that connector
        await advance(site, manual_clock, 10)
        assert len(csms.transactions) == 2
        for what in ("StatusNotification", "MeterValues", "Heartbeat"):
            before = len(csms.rec.calls(what))
            assert (await csms.send("SIM0001", call.TriggerMessage(requested_message=what))).status == "Accepted"
            await eventually(lambda w=what, b=before: len(csms.rec.calls(w)) > b, what=f"triggered {what}")
        res = await csms.send("SIM0001", call.TriggerMessage(requested_message="BootNotification"))
        assert res.status == "NotImplemented"
        res = await csms.send("SIM0001", call.ChangeAvailability(connector_id=0, type="Inoperative"))
        assert res.status == "Scheduled"  # a transaction runs
        assert (await csms.send("SIM0001", call.Reset(type="Soft"))).status == "Accepted"
        await eventually(lambda: not cp.online.is_set(), what="reset")
        await manual_clock.advance(5)
        assert await site.wait_online(5.0) == 1
        assert len(csms.rec.calls("BootNotification")) == 2
        await eventually(lambda: csms.rec.calls("StopTransaction")[-1].payload["reason"] == "SoftReset", what="stop")
    finally:
        await site.stop()
