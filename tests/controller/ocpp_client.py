"""A test charge point built on the ``ocpp`` library: answers every central-system-initiated 1.6 action.

Why a stand-in and not a mock: the central system must be exercised over a real WebSocket by an independent
OCPP implementation, so these tests also catch disagreements with the library's view of the spec.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

CAPABILITIES = {
    "ChargeProfileMaxStackLevel": "3",
    "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
    "ChargingScheduleMaxPeriods": "24",
    "MaxChargingProfilesInstalled": "8",
    "NumberOfConnectors": "2",
}


class TestChargePoint(ChargePoint):
    """Records every request it receives in ``received`` as ``(action, kwargs)``."""

    __test__ = False  # not a pytest class

    def __init__(self, cp_id: str, connection: ClientConnection) -> None:
        super().__init__(cp_id, connection, response_timeout=5)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.configuration: dict[str, str] = dict(CAPABILITIES)
        self.got = asyncio.Event()

    def _note(self, action: str, kw: dict[str, Any]) -> None:
        self.received.append((action, kw))
        self.got.set()

    async def wait_for(self, action: str, count: int = 1, within_s: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within_s):
            while True:
                found = [kw for a, kw in self.received if a == action]
                if len(found) >= count:
                    return found
                self.got.clear()
                await self.got.wait()

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        self._note("GetConfiguration", {"key": key})
        keys = key or list(self.configuration)
        known = [{"key": k, "readonly": False, "value": self.configuration[k]} for k in keys if k in self.configuration]
        unknown = [k for k in keys if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> Any:
        self._note("ChangeConfiguration", {"key": key, "value": value})
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **kw: Any) -> Any:
        self._note("SetChargingProfile", kw)
        return call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self._note("ClearChargingProfile", kw)
        return call_result.ClearChargingProfile(status="Accepted")

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, connector_id: int, duration: int, **kw: Any) -> Any:
        self._note("GetCompositeSchedule", {"connector_id": connector_id, "duration": duration, **kw})
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start="2026-03-02T08:00:00Z",
            charging_schedule={
                "duration": duration,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
            },
        )

    @on("RemoteStartTransaction")
    def on_remote_start_transaction(self, id_tag: str, **kw: Any) -> Any:
        self._note("RemoteStartTransaction", {"id_tag": id_tag, **kw})
        return call_result.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, transaction_id: int) -> Any:
        self._note("RemoteStopTransaction", {"transaction_id": transaction_id})
        return call_result.RemoteStopTransaction(status="Accepted")

    @on("TriggerMessage")
    def on_trigger_message(self, requested_message: str, **kw: Any) -> Any:
        self._note("TriggerMessage", {"requested_message": requested_message, **kw})
        return call_result.TriggerMessage(status="Accepted")

    @on("Reset")
    def on_reset(self, type: str) -> Any:
        self._note("Reset", {"type": type})
        return call_result.Reset(status="Accepted")

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        self._note("ChangeAvailability", {"connector_id": connector_id, "type": type})
        return call_result.ChangeAvailability(status="Scheduled")

    @on("UnlockConnector")
    def on_unlock_connector(self, connector_id: int) -> Any:
        self._note("UnlockConnector", {"connector_id": connector_id})
        return call_result.UnlockConnector(status="Unlocked")

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        self._note("DataTransfer", {"vendor_id": vendor_id, **kw})
        return call_result.DataTransfer(status="Accepted", data="pong")


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def charge_point(
    url: str,
    cp_id: str,
    *,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: tuple[str, ...] = ("ocpp1.6",),
) -> AsyncIterator[TestChargePoint]:
    """Connect a ``TestChargePoint`` to ``url + cp_id`` and run its read loop for the block's duration."""
    headers = basic_auth(cp_id, password) if password is not None else None
    async with connect(
        url + cp_id, subprotocols=list(subprotocols), additional_headers=headers, ssl=ssl_context, open_timeout=5
    ) as ws:
        cp = TestChargePoint(cp_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
