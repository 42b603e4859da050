"""The shared OCPP-J router over real WebSockets: the central system and the simulated charge point answer the
same malformed frame with the same OCPP-J 1.6 §4.2.3 code, and each connection keeps working afterwards.

DataTransfer is the one action both sides handle, so schema defects are shown on it; ``{unhandled}`` is an
action OCPP 1.6 defines that the side receiving it does not handle (Reset at a central system, Heartbeat at
a charge point): NotSupported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from controller.csms import CentralSystem
from evsite.clock import ManualClock
from simulators.site import SimulatedSite, charger_specs
from tests.simulators.helpers import small_fleet

FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('{"a": 1}', "-1", "FormationViolation"),
    ("[2]", "-1", "ProtocolError"),
    ('[2, 5, "DataTransfer", {}]', "-1", "FormationViolation"),
    ('[2, "m1", "DataTransfer"]', "m1", "ProtocolError"),
    ('[7, "m2", "DataTransfer", {"vendorId": "x"}]', "m2", "ProtocolError"),
    ('[2, "m3", "FooBar", {}]', "m3", "NotImplemented"),
    ('[2, "m4", "{unhandled}", {}]', "m4", "NotSupported"),
    ('[2, "m5", "SecurityEventNotification", {}]', "m5", "NotSupported"),
    ('[2, "m6", "DataTransfer", []]', "m6", "FormationViolation"),
    ('[2, "m7", "DataTransfer", {"vendorId": "x", "extra": 1}]', "m7", "FormationViolation"),
    ('[2, "m8", "DataTransfer", {"messageId": "x"}]', "m8", "OccurenceConstraintViolation"),
    ('[2, "m9", "DataTransfer", {"vendorId": 7}]', "m9", "TypeConstraintViolation"),
    ('[2, "m10", "DataTransfer", {"vendorId": "' + "v" * 256 + '"}]', "m10", "PropertyConstraintViolation"),
]
UNHANDLED = {"central system": "Reset", "charge point": "Heartbeat"}
PROBE = '[2,"probe","DataTransfer",{"vendorId":"evsite","messageId":"echo","data":"still here"}]'

Exchange = Callable[[str], Awaitable[list[Any]]]


def _canned(action: str) -> dict[str, Any]:
    """The smallest valid answer to a charger's call (the raw central system below is not under test)."""
    now = datetime.now(UTC).isoformat()
    return {
        "BootNotification": {"currentTime": now, "interval": 300, "status": "Accepted"},
        "Heartbeat": {"currentTime": now},
        "Authorize": {"idTagInfo": {"status": "Accepted"}},
    }.get(action, {})


@contextlib.asynccontextmanager
async def to_central(central: CentralSystem) -> AsyncIterator[Exchange]:
    """Send one raw frame to our central system as charger RAW1; return the next frame it sends back."""
    async with connect(central.url + "RAW1", subprotocols=["ocpp1.6"]) as ws:

        async def exchange(frame: str) -> list[Any]:
            await ws.send(frame)
            return json.loads(await asyncio.wait_for(ws.recv(), 2))

        yield exchange


@contextlib.asynccontextmanager
async def to_charge_point(manual_clock: ManualClock) -> AsyncIterator[Exchange]:
    """Send one raw frame to a simulated charge point from a raw WebSocket server; return its answer.

    The charger's own calls (boot, status) are answered along the way; the first non-CALL frame is returned.
    """
    socket: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        socket.set_result(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:
        port = server.sockets[0].getsockname()[1]
        site = SimulatedSite(f"ws://127.0.0.1:{port}/ocpp", manual_clock, charger_specs(1, 1), small_fleet(1, 1e7))
        await site.start()
        ws = await asyncio.wait_for(socket, 5)

        async def exchange(frame: str) -> list[Any]:
            await ws.send(frame)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 2))
                if msg[0] != 2:
                    return msg
                await ws.send(json.dumps([3, msg[1], _canned(msg[2])]))

        try:
            yield exchange
        finally:
            await site.stop()


@pytest.mark.parametrize("side", list(UNHANDLED))
@pytest.mark.parametrize(("frame", "unique_id", "code"), FRAMES)
async def test_both_sides_answer_a_defect_with_the_same_code(
    central: CentralSystem, manual_clock: ManualClock, side: str, frame: str, unique_id: str, code: str
) -> None:
    peer = to_central(central) if side == "central system" else to_charge_point(manual_clock)
    async with peer as exchange:
        await _check(exchange, side, frame, unique_id, code)


async def _check(exchange: Exchange, side: str, frame: str, unique_id: str, code: str) -> None:
    answer = await exchange(frame.replace("{unhandled}", UNHANDLED[side]))
    assert answer[:3] == [4, unique_id, code]
    assert isinstance(answer[3], str) and answer[3], "a CALLERROR says what was wrong"
    ok = await exchange(PROBE)
    assert ok[:2] == [3, "probe"] and "status" in ok[2], "the connection keeps working"
