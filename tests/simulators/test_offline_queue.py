"""Offline behaviour: transaction messages queue while the network is down and arrive in order, once each."""

from __future__ import annotations

import itertools
import math
from datetime import datetime

import pytest
from ocpp.v16 import call

from evsite.clock import ManualClock
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import advance, small_fleet
from tests.simulators.recording_csms import RecordingCSMS
from tests.waiting import eventually

TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")


def tx_frames(csms: RecordingCSMS) -> list:
    return [f for f in csms.rec.frames if f.direction == "in" and f.kind == 2 and f.action in TX_ACTIONS]


@pytest.mark.parametrize(
    ("arrival_s", "cut_at_s"),
    [(30.0, 200.0), (300.0, 100.0)],  # cut mid-transaction; cut before the EV arrives (offline start)
    ids=["cut-mid-transaction", "transaction-starts-offline"],
)
async def test_offline_queue_delivers_in_order_without_loss_or_duplicates(
    manual_clock: ManualClock, arrival_s: float, cut_at_s: float
) -> None:
    async with RecordingCSMS(interval_s=600) as csms:
        site = SimulatedSite(
            csms.url,
            manual_clock,
            charger_specs(1, 1),
            small_fleet(1, arrival_s=arrival_s, departure_s=900.0),
            backoff_base_s=20.0,
        )
        cp = site.chargers[0]
        await site.start()
        try:
            assert await site.wait_online(5.0) == 1
            await advance(site, manual_clock, cut_at_s)
            csms.refuse = True
            await csms.disconnect("SIM0001")
            await eventually(lambda: not cp.online.is_set(), what="charger notices the cut")
            await advance(site, manual_clock, 1000.0 - cut_at_s)  # the EV leaves (t=900) while offline
            queued = [m.action for m in cp.pending]
            assert queued[-1] == "StopTransaction" and "MeterValues" in queued
            assert cp.counters.reconnects >= 2  # backoff kept trying
            csms.refuse = False
            await advance(site, manual_clock, 700.0)  # longer than the backoff cap reached so far
            await eventually(lambda: not cp.pending, what="the outbox to drain")
        finally:
            await site.stop()

        assert len(csms.rec.calls("BootNotification")) == 1, "a reconnect is not a reboot"
        assert csms.connections >= 2
        frames = tx_frames(csms)
        actions = [f.action for f in frames]
        assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
        assert set(actions[1:-1]) == {"MeterValues"}
        assert len({f.unique_id for f in frames}) == len(frames), "a message was delivered twice"
        # Nothing lost: one sample every 60 s from the transaction start to the departure, in order.
        stamps = [datetime.fromisoformat(f.payload["meterValue"][0]["timestamp"]) for f in frames[1:-1]]
        gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(stamps)}
        assert gaps == {60.0}
        start = datetime.fromisoformat(frames[0].payload["timestamp"])
        stop = datetime.fromisoformat(frames[-1].payload["timestamp"])
        assert len(stamps) == math.ceil((stop - start).total_seconds() / 60) - 1  # samples strictly inside
        # Every message of the transaction carries the id the central system assigned.
        (tx_id,) = csms.transactions
        assert {f.payload["transactionId"] for f in frames[1:]} == {tx_id}
        registers = [float(f.payload["meterValue"][0]["sampledValue"][0]["value"]) for f in frames[1:-1]]
        assert registers == sorted(registers)
        assert csms.transactions[tx_id]["meter_stop"] >= registers[-1]
        assert csms.rec.errors == []


async def test_profiles_keep_applying_while_offline(manual_clock: ManualClock) -> None:
    """3.13.6: an Absolute profile that steps down at +300 s takes effect even though the charger is offline."""
    async with RecordingCSMS(interval_s=600) as csms:
        site = SimulatedSite(
            csms.url, manual_clock, charger_specs(1, 1), small_fleet(1, arrival_s=0.0), backoff_base_s=1000.0
        )
        cp = site.chargers[0]
        await site.start()
        try:
            assert await site.wait_online(5.0) == 1
            await advance(site, manual_clock, 20.0)
            profile = {
                "chargingProfileId": 3,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "startSchedule": manual_clock.now().isoformat(),
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 12.0}, {"startPeriod": 300, "limit": 8.0}],
                },
            }
            res = await csms.send("SIM0001", call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile))
            assert res.status == "Accepted"
            await advance(site, manual_clock, 20.0)
            assert site.arrays.power_w[0] == pytest.approx(12 * 230 * 3)
            csms.refuse = True
            await csms.disconnect("SIM0001")
            await eventually(lambda: not cp.online.is_set(), what="offline")
            await advance(site, manual_clock, 300.0)
            assert not cp.online.is_set()
            assert site.arrays.power_w[0] == pytest.approx(8 * 230 * 3)
        finally:
            await site.stop()


def test_a_connection_lost_with_an_authorize_queued_starts_the_transaction_offline(manual_clock: ManualClock) -> None:
    site = SimulatedSite("ws://127.0.0.1:9", manual_clock, charger_specs(1, 1), small_fleet(1))
    cp = site.chargers[0]
    cp.online.set()
    cp.ev_arrived(1, "SIM-TAG")  # StatusNotification (Preparing) and Authorize queued
    assert [m.action for m in cp.pending] == ["StatusNotification", "Authorize"]
    cp.online.clear()
    cp._purge_offline()  # the unanswered Authorize is decided locally: the transaction starts offline
    assert [m.action for m in cp.pending] == ["StartTransaction"]
    assert 1 in cp.tx
