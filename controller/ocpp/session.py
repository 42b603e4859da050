"""One connected charge point: the read loop, the ``@on`` handlers, and outgoing calls.

Why a subclass of ``ocpp.v16.ChargePoint`` with its own ``route_message``: we keep the library's ``@on``
routing and its payload dataclasses, but replace the parts that do not hold up on a busy site (see
``controller.ocpp.protocol``): spec-exact CALLERRORs for every defect, fast compiled validation inline
instead of a thread-pool hop, and outgoing calls that raise (``controller.errors``) instead of returning
None. Handlers never wait on the disk except StartTransaction/StopTransaction, whose answers depend on it;
everything else goes to the write-behind ``DbWriter``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as LibChargePoint
from ocpp.v16 import call_result
from websockets.exceptions import ConnectionClosed

from controller import events as ev
from controller.errors import CallErrorReceived, CallTimeout, ChargePointNotConnected, InvalidRequest, InvalidResponse
from controller.ocpp.protocol import (
    CALL,
    V16_ACTIONS,
    CallFrame,
    ErrorFrame,
    OcppViolation,
    ResultFrame,
    dumps,
    parse_frame,
    to_snake,
    to_top_snake,
    to_wire,
    validate,
)
from evsite.log import log_event

if TYPE_CHECKING:
    from controller.csms import CentralSystem

log = logging.getLogger("controller.ocpp")

#: Unit multipliers to SI (W, Wh, A) for the convenience fields of ``MeterEvent``.
_TO_SI = {"kW": 1000.0, "kWh": 1000.0, "W": 1.0, "Wh": 1.0, "A": 1.0}
_HOOKS = ("_on_action", "_after_action")
#: Per class: action -> {hook: method name}. Built once per class, because the library rebuilds the route map
#: for every connection by scanning every ``@on``-decorated name of every class (~15 % of a reconnect's cost).
_ROUTES: dict[type, dict[str, dict[str, Any]]] = {}
#: Measurands summed over phases, with their default unit.
_SUMMED = {"Power.Active.Import": "W", "Energy.Active.Import.Register": "Wh"}


def rfc3339(dt: datetime) -> str:
    """RFC 3339 with a zone (``Z`` for UTC), millisecond precision."""
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None, fallback: datetime) -> datetime:
    """A charger's timestamp as an aware datetime (one without a zone is taken as UTC)."""
    if not text:
        return fallback
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return fallback
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=fallback.tzinfo)


class ChargePointSession(LibChargePoint):
    """The central system's side of one charge point connection."""

    def __init__(self, cp_id: str, connection: Any, csms: CentralSystem) -> None:
        routes = _ROUTES.get(type(self))
        if routes is None:
            super().__init__(cp_id, connection, response_timeout=csms.config.server.call_timeout_s)
            _ROUTES[type(self)] = {
                a: {k: (v.__name__ if callable(v) else v) for k, v in h.items()} for a, h in self.route_map.items()
            }
        else:
            # What the library's __init__ sets, minus the route-map scan.
            self.id, self._connection = cp_id, connection
            self._response_timeout = csms.config.server.call_timeout_s
            self._call_lock = asyncio.Lock()
            self._unique_id_generator = uuid.uuid4
            self.logger = log
            self.route_map = {
                a: {k: (getattr(self, v) if k in _HOOKS else v) for k, v in h.items()} for a, h in routes.items()
            }
        self.csms = csms
        self.clock = csms.clock
        self._pending: dict[str, tuple[str, asyncio.Future[ResultFrame | ErrorFrame]]] = {}
        self.closed = False
        self.messages_in = 0

    # ------------------------------------------------------------------ reading

    async def run(self) -> None:
        """Read and route frames until the connection closes."""
        async for raw in self._connection:
            await self.route_message(raw)

    async def route_message(self, raw: str | bytes) -> None:
        self.messages_in += 1
        try:
            frame = parse_frame(raw)
        except OcppViolation as err:
            self._violation(err, raw)
            if err.reply:
                await self._send(err.to_json())
            return
        if type(frame) is CallFrame:
            await self._handle(frame)
        else:
            pending = self._pending.get(frame.unique_id)
            if pending is None or pending[1].done():
                log_event(log, "unexpected_response", logging.WARNING, cp_id=self.id, unique_id=frame.unique_id)
            else:
                pending[1].set_result(frame)

    def _violation(self, err: OcppViolation, raw: str | bytes) -> None:
        log_event(log, "ocpp_violation", logging.WARNING, cp_id=self.id, code=err.code, why=err.description)
        self.csms.record_event(self.id, "ocpp_violation", code=err.code, why=err.description, frame=str(raw)[:200])

    async def _handle(self, frame: CallFrame) -> None:
        uid, action = frame.unique_id, frame.action
        self.csms.touch(self.id, self.clock.now())
        try:
            if action not in V16_ACTIONS:
                raise OcppViolation("NotImplemented", f"{action!r} is not an OCPP 1.6 action", uid)
            handlers = self.route_map.get(action)
            if handlers is None or "_on_action" not in handlers:
                raise OcppViolation("NotSupported", f"{action} is not handled by a central system", uid)
            validate(action, "req", frame.payload, uid)
            # Top-level keys only: nested structures (meterValue, transactionData) stay as the charger sent
            # them, camelCase; a deep conversion cost ~25 µs per MeterValues for nothing.
            result = handlers["_on_action"](**to_top_snake(frame.payload))
            if asyncio.iscoroutine(result):
                result = await result
            payload = to_wire(result)
            if self.csms.validate_responses:
                validate(action, "conf", payload, uid)
        except OcppViolation as err:
            self._violation(err, f"{action} {frame.payload}")
            await self._send(err.to_json(uid))
            return
        except Exception as err:  # a handler bug must not cost the charger its connection
            log.exception("handler %s failed for %s", action, self.id)
            await self._send(dumps([4, uid, "InternalError", f"{type(err).__name__} while handling {action}", {}]))
            return
        await self._send(dumps([3, uid, payload]))
        after = handlers.get("_after_action")
        if after is not None:
            res = after(**to_top_snake(frame.payload))
            if asyncio.iscoroutine(res):
                self.csms.spawn(res)

    async def _send(self, message: str) -> None:
        await self._connection.send(message)

    # ------------------------------------------------------------------ calling

    async def call(
        self,
        payload: Any,
        suppress: bool = False,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (per-call timeout, part of the API)
    ) -> Any:
        """Send a central-system-initiated request; return the call_result dataclass or raise.

        One call at a time per charge point (OCPP-J §4.1.1), like the library; unlike it, a CALLERROR raises
        ``CallErrorReceived`` and silence raises ``CallTimeout`` — never a None.
        """
        action = type(payload).__name__
        if action not in V16_ACTIONS:
            raise InvalidRequest(f"{action} is not an OCPP 1.6 action")
        body = to_wire(payload)
        if not skip_schema_validation:
            try:
                validate(action, "req", body)
            except OcppViolation as err:
                raise InvalidRequest(f"{action} request violates the OCPP 1.6 schema: {err.description}") from None
        timeout = self._response_timeout if timeout is None else timeout
        uid = unique_id or uuid.uuid4().hex
        async with self._call_lock:
            if self.closed:
                raise ChargePointNotConnected(self.id)
            fut: asyncio.Future[ResultFrame | ErrorFrame] = asyncio.get_running_loop().create_future()
            self._pending[uid] = (action, fut)
            try:
                await self._send(dumps([CALL, uid, action, body]))
                # Real time on purpose: this guards network I/O, not simulated time.
                frame = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise CallTimeout(self.id, action, timeout) from None
            except (ConnectionError, ConnectionClosed):
                raise ChargePointNotConnected(self.id) from None
            finally:
                self._pending.pop(uid, None)
        if type(frame) is ErrorFrame:
            raise CallErrorReceived(frame.code, frame.description, frame.details)
        if not skip_schema_validation:
            try:
                validate(action, "conf", frame.payload)
            except OcppViolation as err:
                raise InvalidResponse(self.id, action, err.description) from None
        cls = getattr(call_result, action)
        try:
            return cls(**to_snake(frame.payload))
        except TypeError as err:
            raise InvalidResponse(self.id, action, str(err)) from None

    def connection_lost(self) -> None:
        """Fail every call waiting on this connection."""
        self.closed = True
        for _action, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ChargePointNotConnected(self.id))

    # ------------------------------------------------------------------ handlers

    @on("BootNotification")
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        now = self.clock.now()
        await self.csms.on_boot(self.id, charge_point_vendor, charge_point_model, kw, now)
        return call_result.BootNotification(
            current_time=rfc3339(now), interval=self.csms.config.server.heartbeat_interval_s, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=rfc3339(self.clock.now()))

    @on("StatusNotification")
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **kw: Any) -> Any:
        now = self.clock.now()
        at = parse_time(kw.get("timestamp"), now)
        self.csms.on_status(self.id, connector_id, status, error_code, kw.get("info"), kw.get("vendor_error_code"), at)
        return call_result.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
        self.csms.on_meter_values(self.id, connector_id, kw.get("transaction_id"), meter_value)
        return call_result.MeterValues()

    @on("Authorize")
    def on_authorize(self, id_tag: str) -> Any:
        info = self.csms.id_tag_info(id_tag)
        self.csms.record_event(self.id, "authorize", id_tag=id_tag, status=info["status"])
        return call_result.Authorize(id_tag_info=info)

    @on("StartTransaction")
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw: Any
    ) -> Any:
        info = self.csms.id_tag_info(id_tag)
        tx_id = await self.csms.on_start_transaction(
            self.id,
            connector_id,
            id_tag,
            meter_start,
            parse_time(timestamp, self.clock.now()),
            info["status"],
            kw.get("reservation_id"),
        )
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info=info)

    @on("StopTransaction")
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any) -> Any:
        id_tag = kw.get("id_tag")
        await self.csms.on_stop_transaction(
            self.id,
            transaction_id,
            meter_stop,
            parse_time(timestamp, self.clock.now()),
            kw.get("reason"),
            id_tag,
            kw.get("transaction_data") or [],
        )
        return call_result.StopTransaction(id_tag_info=self.csms.id_tag_info(id_tag) if id_tag else None)

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        status, data = self.csms.on_data_transfer(self.id, vendor_id, kw.get("message_id"), kw.get("data"))
        return call_result.DataTransfer(status=status, data=data)

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, status: str) -> Any:
        self.csms.on_cp_status_field(self.id, "diagnostics_status", status)
        return call_result.DiagnosticsStatusNotification()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, status: str) -> Any:
        self.csms.on_cp_status_field(self.id, "firmware_status", status)
        return call_result.FirmwareStatusNotification()


def summarize_meter_value(
    cp_id: str, connector_id: int, transaction_id: int | None, mv: dict[str, Any], now: datetime
) -> tuple[ev.MeterEvent, list[dict[str, Any]]]:
    """One ``meterValue`` element (camelCase, as received) → the bus event and the store rows.

    Power and energy: the total (no phase) when the charger sends one, else the sum of the line phases; current
    is the largest phase current (what a circuit limit cares about). The measurand defaults to
    Energy.Active.Import.Register and the unit to the spec's default for it.
    """
    at = parse_time(mv.get("timestamp"), now)
    samples: list[ev.Sample] = []
    rows: list[dict[str, Any]] = []
    total: dict[str, float] = {}
    phased: dict[str, float] = {}
    current = soc = None
    for sv in mv.get("sampledValue", ()):
        raw = sv.get("value", "")
        measurand = sv.get("measurand") or "Energy.Active.Import.Register"
        unit = sv.get("unit")
        try:
            value: float | None = float(raw)
        except ValueError:
            value = None
        phase, context = sv.get("phase"), sv.get("context")
        samples.append(ev.Sample(measurand, value, unit, phase, context))
        rows.append(
            {
                "cp_id": cp_id,
                "connector_id": connector_id,
                "transaction_id": transaction_id,
                "timestamp": at,
                "measurand": measurand,
                "value": value,
                "raw_value": str(raw)[:100],
                "unit": unit,
                "phase": phase,
                "context": context,
                "location": sv.get("location"),
            }
        )
        if value is None:
            continue
        if measurand in _SUMMED:
            si = value * _TO_SI.get(unit or _SUMMED[measurand], 1.0)
            if phase is None:
                total[measurand] = si
            elif not phase.startswith("N"):
                phased[measurand] = phased.get(measurand, 0.0) + si
        elif measurand == "Current.Import":
            current = value if current is None else max(current, value)
        elif measurand == "SoC":
            soc = value
    power = total.get("Power.Active.Import", phased.get("Power.Active.Import"))
    energy = total.get("Energy.Active.Import.Register", phased.get("Energy.Active.Import.Register"))
    return (
        ev.MeterEvent(cp_id, connector_id, transaction_id, at, tuple(samples), power, current, energy, soc),
        rows,
    )
