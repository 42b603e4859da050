"""One connected charge point: the read loop, the handlers, and outgoing calls, on the shared OCPP-J router.

Why this shape: framing, validation and dispatch are ``evsite.ocppj`` (the same router the simulated charge
point uses, so both sides answer every defect with the same OCPP-J 1.6 code); this module holds only what a
central system does with each message. The session sees its host through ``SessionHost``, a small Protocol
the central system implements, so it never imports ``controller.csms``. Handlers never wait on the disk except
StartTransaction/StopTransaction, whose answers depend on it; everything else goes to the write-behind writer.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ocpp.v16 import call_result

from controller import events as ev
from controller.errors import CallErrorReceived, CallTimeout, ChargePointNotConnected, InvalidRequest, InvalidResponse
from evsite.clock import Clock
from evsite.config import Config
from evsite.ocppj.dispatch import (
    CallTimedOut,
    Endpoint,
    InvalidPayload,
    OcppViolation,
    PeerGone,
    RemoteCallError,
    handles,
)
from evsite.ocppj.framing import CallFrame
from evsite.ocppj.payloads import result_dataclass, to_wire

log = logging.getLogger("controller.ocpp")

#: Unit multipliers to SI (W, Wh, A) for the convenience fields of ``MeterEvent``.
_TO_SI = {"kW": 1000.0, "kWh": 1000.0, "W": 1.0, "Wh": 1.0, "A": 1.0}
#: Measurands summed over phases, with their default unit.
_SUMMED = {"Power.Active.Import": "W", "Power.Active.Export": "W", "Energy.Active.Import.Register": "Wh"}


def rfc3339(dt: datetime) -> str:
    """RFC 3339 with a zone (``Z`` for UTC), millisecond precision."""
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str | None, fallback: datetime) -> datetime:
    """A charger's timestamp as an aware datetime (one without a zone is taken as UTC)."""
    return stamp_of(text, fallback.tzinfo) or fallback


def stamp_of(text: Any, tz: Any = UTC) -> datetime | None:
    """A charger's timestamp as an aware datetime (no zone: ``tz``), None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


@runtime_checkable
class SessionHost(Protocol):
    """What a session needs from the central system that hosts it: settings, a clock, the handlers' effects.

    Effects: ``touch``/``record_event`` (store, write-behind), ``spawn`` (background work the host owns),
    ``id_tag_info`` (authorisation), and one ``on_*`` per charger-initiated message, each publishing its bus
    event and storing what it must.
    """

    config: Config
    clock: Clock
    validate_responses: bool

    def touch(self, cp_id: str, now: datetime) -> None: ...

    def clock_sample(self, cp_id: str, theirs: datetime, received: datetime) -> None: ...

    def record_event(self, cp_id: str | None, kind: str, **data: Any) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any: ...

    def call_done(self, action: str, seconds: float, outcome: str) -> None: ...

    def id_tag_info(self, id_tag: str) -> dict[str, Any]: ...

    async def on_boot(self, cp_id: str, vendor: str, model: str, kw: dict[str, Any], now: datetime) -> None: ...

    def on_status(
        self,
        cp_id: str,
        connector_id: int,
        status: str,
        error_code: str,
        info: str | None,
        vendor_error_code: str | None,
        at: datetime,
    ) -> None: ...

    def on_meter_values(
        self, cp_id: str, connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None: ...

    async def on_start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        at: datetime,
        auth_status: str,
        reservation_id: int | None,
    ) -> int: ...

    async def on_stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        at: datetime,
        reason: str | None,
        id_tag: str | None,
        transaction_data: list[dict[str, Any]],
    ) -> None: ...

    def on_data_transfer(
        self, cp_id: str, vendor_id: str, message_id: str | None, data: str | None
    ) -> tuple[str, str | None]: ...

    def on_cp_status_field(self, cp_id: str, field: str, status: str) -> None: ...


class ChargePointSession:
    """The central system's side of one charge point connection."""

    def __init__(self, cp_id: str, connection: Any, csms: SessionHost) -> None:
        self.id = cp_id
        self.connection = connection
        self.csms = csms
        self.clock = csms.clock
        self.endpoint = Endpoint(
            self,
            connection,
            cp_id=cp_id,
            logger=log,
            response_timeout_s=csms.config.server.call_timeout_s,
            check_answers=csms.validate_responses,
            on_violation=self._record_violation,
            spawn=csms.spawn,
            on_call_done=csms.call_done,
        )
        self.messages_in = 0

    @property
    def closed(self) -> bool:
        return self.endpoint.closed

    # ------------------------------------------------------------------ reading

    async def run(self) -> None:
        """Read and route frames until the connection closes."""
        endpoint = self.endpoint
        async for raw in self.connection:
            self.messages_in += 1
            frame = await endpoint.parse(raw)
            if frame is None:
                continue
            if type(frame) is CallFrame:
                self.csms.touch(self.id, self.clock.now())
            await endpoint.dispatch(frame)

    def _record_violation(self, err: OcppViolation, frame: str) -> None:
        self.csms.record_event(self.id, "ocpp_violation", code=err.code, why=err.description, frame=frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (e.g. replaced by a newer one with the same id)."""
        await self.connection.close(code, reason)

    # ------------------------------------------------------------------ calling

    async def call(
        self,
        payload: Any,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (per-call timeout, part of the API)
    ) -> Any:
        """Send a central-system-initiated request (a ``call`` dataclass); return the ``call_result`` or raise.

        One call at a time per charge point (OCPP-J §4.1.1); a CALLERROR raises ``CallErrorReceived`` and silence
        raises ``CallTimeout`` — never a None.
        """
        action = type(payload).__name__
        check = not skip_schema_validation
        try:
            body = await self.endpoint.call(
                action, to_wire(payload), unique_id=unique_id, timeout_s=timeout, check=check
            )
        except InvalidPayload as err:
            if err.kind == "req":
                raise InvalidRequest(str(err)) from None
            raise InvalidResponse(self.id, action, err.description) from None
        except RemoteCallError as err:
            raise CallErrorReceived(err.code, err.description, err.details) from None
        except CallTimedOut as err:
            raise CallTimeout(self.id, action, err.timeout_s) from None
        except PeerGone:
            raise ChargePointNotConnected(self.id) from None
        try:
            return result_dataclass(action, body)
        except (TypeError, AttributeError) as err:
            raise InvalidResponse(self.id, action, str(err)) from None

    def connection_lost(self) -> None:
        """Fail every call waiting on this connection."""
        self.endpoint.connection_lost()

    # ------------------------------------------------------------------ handlers

    @handles("BootNotification")
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> Any:
        now = self.clock.now()
        await self.csms.on_boot(self.id, charge_point_vendor, charge_point_model, kw, now)
        return call_result.BootNotification(
            current_time=rfc3339(now), interval=self.csms.config.server.heartbeat_interval_s, status="Accepted"
        )

    @handles("Heartbeat")
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time=rfc3339(self.clock.now()))

    @handles("StatusNotification")
    def on_status_notification(self, connector_id: int, error_code: str, status: str, **kw: Any) -> Any:
        now = self.clock.now()
        at = parse_time(kw.get("timestamp"), now)
        self._clock_sample(kw.get("timestamp"), now)
        self.csms.on_status(self.id, connector_id, status, error_code, kw.get("info"), kw.get("vendor_error_code"), at)
        return call_result.StatusNotification()

    @handles("MeterValues")
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]], **kw: Any) -> Any:
        self._clock_samples(meter_value)
        self.csms.on_meter_values(self.id, connector_id, kw.get("transaction_id"), meter_value)
        return call_result.MeterValues()

    @handles("Authorize")
    def on_authorize(self, id_tag: str) -> Any:
        info = self.csms.id_tag_info(id_tag)
        self.csms.record_event(self.id, "authorize", id_tag=id_tag, status=info["status"])
        return call_result.Authorize(id_tag_info=info)

    @handles("StartTransaction")
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kw: Any
    ) -> Any:
        info = self.csms.id_tag_info(id_tag)
        self._clock_sample(timestamp, self.clock.now())
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

    @handles("StopTransaction")
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any) -> Any:
        id_tag = kw.get("id_tag")
        self._clock_sample(timestamp, self.clock.now())
        self._clock_samples(kw.get("transaction_data") or [])
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

    def _clock_sample(self, text: Any, received: datetime) -> None:
        """A timestamp the charger sent, against our receive time (``controller.clock_skew``)."""
        theirs = stamp_of(text)
        if theirs is not None:
            self.csms.clock_sample(self.id, theirs, received)

    def _clock_samples(self, meter_value: list[dict[str, Any]]) -> None:
        """Only the newest stamp of a meter-value list counts: older ones give looser bounds."""
        stamps = [t for mv in meter_value if isinstance(mv, dict) and (t := stamp_of(mv.get("timestamp")))]
        if stamps:
            self.csms.clock_sample(self.id, max(stamps), self.clock.now())

    @handles("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        status, data = self.csms.on_data_transfer(self.id, vendor_id, kw.get("message_id"), kw.get("data"))
        return call_result.DataTransfer(status=status, data=data)

    @handles("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, status: str) -> Any:
        self.csms.on_cp_status_field(self.id, "diagnostics_status", status)
        return call_result.DiagnosticsStatusNotification()

    @handles("FirmwareStatusNotification")
    def on_firmware_status_notification(self, status: str) -> Any:
        self.csms.on_cp_status_field(self.id, "firmware_status", status)
        return call_result.FirmwareStatusNotification()


def summarize_meter_value(
    cp_id: str, connector_id: int, transaction_id: int | None, mv: dict[str, Any], now: datetime
) -> tuple[ev.MeterEvent, list[dict[str, Any]]]:
    """One ``meterValue`` element (camelCase, as received) → the bus event and the store rows.

    Power and energy: the total (no phase) when the charger sends one, else the sum of the line phases. Power is
    net of export (``Power.Active.Import`` minus ``Power.Active.Export``), so a discharging bidirectional
    charger counts as negative EV load, as the site meter sees it; current
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
    export = total.get("Power.Active.Export", phased.get("Power.Active.Export"))
    if export is not None:
        power = (power or 0.0) - export
    energy = total.get("Energy.Active.Import.Register", phased.get("Energy.Active.Import.Register"))
    return (
        ev.MeterEvent(cp_id, connector_id, transaction_id, at, tuple(samples), power, current, energy, soc),
        rows,
    )
