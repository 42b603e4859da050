"""A minimal OCPP 1.6J central system for simulator tests: records and schema-validates every frame.

Why not our own central system: the simulator must interoperate with *any* conformant central system, and its
frames must be checked independently of the code under test. This server validates every frame the charger
sends (its calls, and its answers to our calls) with ``jsonschema`` against the OCPP 1.6 JSON schemas that the
``ocpp`` library ships, on a real WebSocket on 127.0.0.1, port 0.
"""

from __future__ import annotations

import decimal
import itertools
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import ocpp.v16
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

SCHEMA_DIR = Path(ocpp.v16.__file__).parent / "schemas"
_validators: dict[str, jsonschema.Draft4Validator] = {}


def validator(name: str) -> jsonschema.Draft4Validator:
    if name not in _validators:
        schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8-sig"), parse_float=decimal.Decimal)
        _validators[name] = jsonschema.Draft4Validator(schema)
    return _validators[name]


@dataclass
class Frame:
    cp_id: str
    direction: str  # "in" (charger -> us) or "out"
    raw: str
    kind: int
    unique_id: str
    action: str | None
    payload: Any


@dataclass
class Recorder:
    frames: list[Frame] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent_actions: dict[str, str] = field(default_factory=dict)  # our call unique id -> action

    def record(self, cp_id: str, direction: str, raw: str) -> None:
        msg = json.loads(raw, parse_float=decimal.Decimal)
        kind, uid = msg[0], msg[1]
        action = msg[2] if kind == 2 else self.sent_actions.get(uid) if direction == "in" else None
        payload = msg[3] if kind == 2 else msg[2] if kind == 3 else msg[3:]
        self.frames.append(Frame(cp_id, direction, raw, kind, uid, action, payload))
        if direction == "out" and kind == 2:
            self.sent_actions[uid] = msg[2]
        if direction != "in":
            return
        if kind == 2:
            schema = action
        elif kind == 3 and action is not None:
            schema = f"{action}Response"
        else:
            return
        for err in validator(schema).iter_errors(payload):
            self.errors.append(f"{cp_id} {schema}: {err.message} in {raw[:200]}")

    def calls(self, action: str, cp_id: str | None = None) -> list[Frame]:
        return [
            f
            for f in self.frames
            if f.direction == "in" and f.kind == 2 and f.action == action and cp_id in (None, f.cp_id)
        ]


class _Recording:
    """Wraps a server connection so every frame is recorded on its way in and out."""

    def __init__(self, ws: ServerConnection, cp_id: str, rec: Recorder) -> None:
        self.ws, self.cp_id, self.rec = ws, cp_id, rec

    async def recv(self) -> str:
        raw = await self.ws.recv()
        self.rec.record(self.cp_id, "in", raw)
        return raw

    async def send(self, raw: str) -> None:
        self.rec.record(self.cp_id, "out", raw)
        try:
            await self.ws.send(raw)
        except websockets.exceptions.ConnectionClosed:
            # The peer left while we answered (a charger rebooting after a Reset). The ocpp library would let
            # this end its read loop, losing frames the peer sent before leaving (the Reset's own answer):
            # keep reading them; ``recv`` raises once they are consumed.
            logging.getLogger("tests.recording_csms").info("answer not delivered to %s: %s", self.cp_id, raw[:80])


class _ServerSide(ChargePoint):
    def __init__(self, cp_id: str, conn: _Recording, csms: RecordingCSMS) -> None:
        super().__init__(cp_id, conn, response_timeout=csms.call_timeout_s)
        self.csms = csms

    @on("BootNotification")
    def boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        status = self.csms.boot_answers.pop(0) if self.csms.boot_answers else "Accepted"
        return call_result.BootNotification(current_time=_now(), interval=self.csms.interval_s, status=status)

    @on("Heartbeat")
    def heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def status(self, connector_id: int, error_code: str, status: str, **_: Any) -> Any:
        self.csms.statuses.append((self.id, connector_id, status))
        return call_result.StatusNotification()

    @on("Authorize")
    def authorize(self, id_tag: str) -> Any:
        return call_result.Authorize(id_tag_info={"status": self.csms.tag_status.get(id_tag, "Accepted")})

    @on("StartTransaction")
    def start_tx(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any) -> Any:
        tx = next(self.csms.tx_ids)
        self.csms.transactions[tx] = {"cp_id": self.id, "connector_id": connector_id, "meter_start": meter_start}
        return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    def stop_tx(self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any) -> Any:
        self.csms.transactions.setdefault(transaction_id, {})["meter_stop"] = meter_stop
        self.csms.transactions[transaction_id]["reason"] = kw.get("reason")
        return call_result.StopTransaction()

    @on("MeterValues")
    def meter_values(self, connector_id: int, meter_value: list, **_: Any) -> Any:
        return call_result.MeterValues()


class RecordingCSMS:
    """``async with RecordingCSMS() as csms``: ``csms.url``, ``await csms.send(cp_id, call.X(...))``."""

    def __init__(self, interval_s: int = 300, call_timeout_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.call_timeout_s = call_timeout_s
        self.rec = Recorder()
        self.boot_answers: list[str] = []
        self.tag_status: dict[str, str] = {}
        self.statuses: list[tuple[str, int, str]] = []
        self.transactions: dict[int, dict[str, Any]] = {}
        self.tx_ids = itertools.count(1)
        self.connected: dict[str, _ServerSide] = {}
        self.sockets: dict[str, ServerConnection] = {}
        self.refuse = False  # answer HTTP 503 to new connections (the "network is down" switch)
        self.connections = 0
        self._server: Any = None

    async def __aenter__(self) -> RecordingCSMS:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            subprotocols=[websockets.Subprotocol("ocpp1.6")],
            process_request=self._process_request,
            ping_interval=None,
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ocpp"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, conn: ServerConnection, request: Any) -> Response | None:
        if self.refuse:
            return Response(503, "Service Unavailable", Headers(), b"down for the test\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        cp = _ServerSide(cp_id, _Recording(ws, cp_id, self.rec), self)
        self.connected[cp_id] = cp
        self.sockets[cp_id] = ws
        self.connections += 1
        try:
            await cp.start()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            if self.connected.get(cp_id) is cp:
                del self.connected[cp_id]
                del self.sockets[cp_id]

    async def send(self, cp_id: str, payload: Any) -> Any:
        return await self.connected[cp_id].call(payload, suppress=False)

    async def disconnect(self, cp_id: str) -> None:
        await self.sockets[cp_id].close()


def _now() -> str:
    return datetime.now(UTC).isoformat()
