"""Malformed frames, schema violations and oversized frames get the OCPP-J answer, and nothing else breaks."""

from __future__ import annotations

import asyncio
import json

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from controller.csms import CentralSystem
from tests.controller.ocpp_client import charge_point

HEARTBEAT = '[2,"hb-1","Heartbeat",{}]'

# Framing defects and NotImplemented/NotSupported are in tests/simulators/test_ocppj_both_sides.py (both sides);
# here: the central system's own actions, and the ocpp_violation event it stores.
CASES = [
    ('[2, "m1", "Heartbeat"]', "m1", "ProtocolError"),
    ('[7, "m2", "Heartbeat", {}]', "m2", "ProtocolError"),
    ('[2, "m5", "Heartbeat", []]', "m5", "FormationViolation"),
    ('[2, "m6", "Heartbeat", {"extra": 1}]', "m6", "FormationViolation"),
    ('[2, "m7", "BootNotification", {"chargePointVendor": "V"}]', "m7", "OccurenceConstraintViolation"),
    ('[2, "m8", "BootNotification", {"chargePointVendor": 1, "chargePointModel": "M"}]', "m8",
     "TypeConstraintViolation"),
    ('[2, "m9", "BootNotification", {"chargePointVendor": "' + "V" * 21 + '", "chargePointModel": "M"}]', "m9",
     "PropertyConstraintViolation"),
    ('[2, "m10", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Bogus"}]', "m10",
     "PropertyConstraintViolation"),
    ('[2, "m11", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "yesterday"}]',
     "m11", "PropertyConstraintViolation"),
    ('[2, "m12", "MeterValues", {"connectorId": 1, "meterValue": []}]', "m12", "OccurenceConstraintViolation"),
]  # fmt: skip


@pytest.mark.parametrize(("frame", "unique_id", "code"), CASES)
async def test_bad_frame_gets_the_spec_callerror_and_the_connection_keeps_working(
    csms: CentralSystem, frame: str, unique_id: str, code: str
) -> None:
    async with connect(csms.url + "CP1", subprotocols=["ocpp1.6"]) as ws:
        await ws.send(frame)
        answer = json.loads(await asyncio.wait_for(ws.recv(), 2))
        assert answer[:3] == [4, unique_id, code]
        assert isinstance(answer[3], str) and answer[3]
        await ws.send(HEARTBEAT)
        assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "hb-1"]
    await csms.flush()
    assert [e.data["code"] for e in csms.store.events(cp_id="CP1", kind="ocpp_violation")] == [code]


async def test_stray_results_are_ignored_without_an_answer(csms: CentralSystem) -> None:
    async with connect(csms.url + "CP1", subprotocols=["ocpp1.6"]) as ws:
        await ws.send('[3, "nobody-asked", {}]')
        await ws.send('[4, "nobody-asked", "GenericError", "x", {}]')
        await ws.send('[3, "broken"]')
        await ws.send(HEARTBEAT)
        # The first answer is the heartbeat's: nothing was sent back for the stray results.
        assert json.loads(await asyncio.wait_for(ws.recv(), 2))[:2] == [3, "hb-1"]


async def test_oversized_frame_is_refused_without_harming_other_charge_points(make_csms) -> None:
    csms: CentralSystem = await make_csms(max_frame_bytes=2048)
    async with charge_point(csms.url, "CP2") as bystander:
        async with connect(csms.url + "CP1", subprotocols=["ocpp1.6"]) as ws:
            big = json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 4096}])
            await ws.send(big)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.close_code == 1009
        assert await bystander.call(call.Heartbeat())
        assert csms.connected == {"CP2"}
    await csms.flush()
    (ev,) = csms.store.events(cp_id="CP1", kind="disconnected")
    assert ev.data["reason"] == "frame_too_large"
