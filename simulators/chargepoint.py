"""One simulated OCPP 1.6J charge point (client side, on the ``ocpp`` library), built to behave like a real one.

Why its shape: it must interoperate with *any* conformant central system, so it speaks only through the
``ocpp`` library (every frame validated against the OCPP 1.6 JSON schemas) and follows the spec's charger-side
duties: BootNotification until Accepted (Pending/Rejected retried after the given interval), Heartbeat at the
given interval, StatusNotification on every connector transition, Authorize, Start/StopTransaction with meter
readings, MeterValues at ``MeterValueSampleInterval``, and smart charging per section 3.13 (``smart_charging``).

Connection model: a ``SimChargePoint`` outlives its WebSocket. ``run()`` connects, boots (first connection and
after a reboot only) and reads until the connection drops, then reconnects with exponential backoff and jitter.
Everything the charger sends goes through one ordered outbox: *transaction* messages (Start/StopTransaction,
transaction MeterValues) stay queued while offline and are delivered in order on reconnect, re-sent with the
same message id so a central system can recognise a repeat; other messages are dropped while offline (status
is re-announced on every reconnect). The charger keeps applying the profiles it holds while offline (3.13.6):
the physics step reads ``self.profiles``.

Fault injection (``Faults`` plus ``drop_connection``/``reboot``/``fault_connector``): drop the connection,
delay or drop answers to the central system, reject profiles, corrupt a meter value, reboot.

Electrical state lives in the site-wide ``ConnectorArrays`` (vectorised physics); this object owns protocol
state and turns state changes into messages.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import itertools
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp.v16
import websockets
from ocpp.exceptions import FormatViolationError, NotSupportedError, OCPPError
from ocpp.messages import MessageType
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call_result

from evsite.clock import Clock
from evsite.ev_fleet import Fleet
from evsite.log import log_event
from simulators.connectors import (
    AVAILABLE,
    CHARGING,
    FAULTED,
    FINISHING,
    PREPARING,
    STATUS_NAMES,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
    ConnectorArrays,
)
from simulators.smart_charging import (
    Capabilities,
    Electrical,
    ProfileError,
    ProfileStore,
    charge_point_max,
    composite,
    connector_limit,
    parse_profile,
)

logger = logging.getLogger("evsite.simulators.chargepoint")


class ConnectionLost(Exception):
    """The WebSocket closed while a call was outstanding (the outbox keeps transaction messages)."""


@dataclass(frozen=True)
class ChargerSpec:
    """What one simulated charger is: identity, electrical facts, smart-charging capabilities and quirks."""

    cp_id: str
    connectors: int = 2
    voltage_v: float = 230.0
    phases: int = 3
    max_current_a: float = 32.0
    capabilities: Capabilities = field(default_factory=Capabilities)
    vendor: str = "evsite"
    model: str = "SimCharger"
    password: str | None = None  # HTTP Basic (security profile 1)
    meter_interval_s: int = 60
    heartbeat_interval_s: int = 300  # until the central system says otherwise
    transaction_attempts: int = 3  # TransactionMessageAttempts: CallErrors before a message is given up


@dataclass
class Faults:
    """Knobs a test or the CLI turns to make a charger misbehave. Counters decrement as they fire."""

    answer_delay_s: float = 0.0  # delay every answer to the central system (simulated seconds)
    drop_answers: int = 0  # do not answer the next N calls from the central system
    reject_profiles: bool = False  # answer Rejected to every SetChargingProfile
    corrupt_meter_values: int = 0  # the next N meter samples carry a non-numeric energy register


@dataclass
class Outgoing:
    """One queued message: built at send time (a transaction id may only be known by then)."""

    action: str
    build: Callable[[], Any]
    transactional: bool
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    on_result: Callable[[Any], None] | None = None
    on_drop: Callable[[], None] | None = None
    attempts: int = 0
    created_s: float = 0.0  # clock.monotonic() when queued: the age of the oldest message measures backlog


@dataclass
class Transaction:
    """A transaction as the charger knows it; ``transaction_id`` arrives with the StartTransaction answer."""

    local_id: int
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    transaction_id: int | None = None
    last_meter_s: float = 0.0


@dataclass
class Counters:
    messages_sent: int = 0
    messages_dropped_offline: int = 0
    reconnects: int = 0
    boots: int = 0
    transactions_started: int = 0
    transactions_stopped: int = 0
    profiles_accepted: int = 0
    profiles_rejected: int = 0


_local_ids = itertools.count(1)
SUPPORTED_MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "SoC")


@functools.cache
def _schema_check(action: str, suffix: str) -> Callable[[dict[str, Any]], Any]:
    """The OCPP 1.6 schema ``<action><suffix>.json`` shipped with the ``ocpp`` library, compiled once.

    (None of the messages a charger sends, nor their answers, use ``multipleOf``, the one keyword where
    float rounding would need the library's Decimal parsing.)
    """
    path = Path(ocpp.v16.__file__).parent / "schemas" / f"{action}{suffix}.json"
    return fastjsonschema.compile(json.loads(path.read_text(encoding="utf-8-sig")))


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Reconnect delay before attempt ``attempt`` (1, 2, ...): exponential, capped, with "equal jitter".

    The jitter (a uniform share between half and all of the delay) keeps a site of chargers that lost the
    network together from reconnecting in lockstep and hammering the central system at the same instants.
    """
    return min(cap_s, base_s * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a call task's outcome as seen: ``_call`` reports it, or has already raised ConnectionLost."""
    if not task.cancelled():
        task.exception()


class SimChargePoint(OcppChargePoint):
    """A simulated charge point; ``index0`` is the position of its connector 1 in ``arrays``."""

    def __init__(
        self,
        spec: ChargerSpec,
        url: str,
        clock: Clock,
        arrays: ConnectorArrays,
        index0: int,
        *,
        rng: random.Random | None = None,
        response_timeout_s: float = 30.0,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 300.0,
    ) -> None:
        super().__init__(spec.cp_id, None, response_timeout=response_timeout_s)
        self.spec = spec
        self.url = url.rstrip("/") + "/" + spec.cp_id
        self.clock = clock
        self.arrays = arrays
        self.index0 = index0
        self.rng = rng or random.Random(0)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.elec = Electrical(spec.voltage_v, spec.phases, spec.max_current_a)
        self.profiles = ProfileStore(spec.capabilities)
        self.faults = Faults()
        self.counters = Counters()
        self.heartbeat_interval_s = float(spec.heartbeat_interval_s)
        self.meter_interval_s = float(spec.meter_interval_s)
        self.sampled_data: tuple[str, ...] = SUPPORTED_MEASURANDS  # MeterValuesSampledData
        self.status = [AVAILABLE] * (spec.connectors + 1)  # index 0 = the charge point itself
        self.tx: dict[int, Transaction] = {}
        self.completed: list[Transaction] = []
        self.registration: str | None = None
        self.online = asyncio.Event()  # connected and booted (Accepted)
        self._outbox: deque[Outgoing] = deque()
        self._outbox_changed = asyncio.Event()
        self._conn_lost: asyncio.Future[None] | None = None
        self._last_heartbeat_s = 0.0
        self._stopping = False
        # BootNotification is sent after a (re)boot only; a plain reconnect after a network loss is not a boot
        # (a central system may close open transactions on a boot, as a real reboot ends them).
        self._needs_boot = True
        self.last_error: str | None = None  # why the last connection attempt failed (for operator messages)
        self._ws: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.fleet: Fleet | None = None  # the cars behind the connectors (for SoC readings), set by the site

    # ------------------------------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Connect, boot, serve; reconnect with exponential backoff and jitter until ``stop()``."""
        sender = asyncio.create_task(self._sender(), name=f"{self.id}-sender")
        attempt = 0
        try:
            while not self._stopping:
                try:
                    await self._session()
                    attempt = 0 if self.registration == "Accepted" else attempt
                except (OSError, websockets.exceptions.WebSocketException, TimeoutError, ConnectionLost) as err:
                    self.last_error = str(err) or err.__class__.__name__
                    log_event(logger, "cp_connect_failed", logging.DEBUG, cp_id=self.id, error=repr(err))
                except Exception as err:  # a bug or a surprising peer must not silently end this charger
                    self.last_error = repr(err)
                    logger.exception("cp_session_failed cp_id=%s", self.id)
                if self._stopping:
                    break
                attempt += 1
                delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, self.rng)
                log_event(logger, "cp_reconnect_wait", logging.DEBUG, cp_id=self.id, attempt=attempt, delay_s=delay)
                await self.clock.sleep(delay)
                self.counters.reconnects += 1
        finally:
            sender.cancel()
            for t in list(self._tasks):
                t.cancel()

    async def stop(self) -> None:
        """Close the connection and end ``run()`` (queued transaction messages stay in ``pending``)."""
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()

    @property
    def pending(self) -> list[Outgoing]:
        """Messages not yet delivered (transaction messages survive disconnects)."""
        return list(self._outbox)

    def backlog_s(self) -> float:
        """Age (clock seconds) of the oldest undelivered message; 0 when the outbox is empty."""
        return self.clock.monotonic() - self._outbox[0].created_s if self._outbox else 0.0

    async def _session(self) -> None:
        headers = {}
        if self.spec.password is not None:
            token = base64.b64encode(f"{self.id}:{self.spec.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        async with websockets.connect(
            self.url,
            subprotocols=[websockets.Subprotocol("ocpp1.6")],
            additional_headers=headers,
            open_timeout=10,
            ping_interval=None,
        ) as ws:
            self._ws = ws
            self._connection = ws
            self._response_queue = asyncio.Queue()
            self._call_lock = asyncio.Lock()
            loop = asyncio.get_running_loop()
            self._conn_lost = loop.create_future()
            reader = asyncio.create_task(self._reader(ws), name=f"{self.id}-reader")
            try:
                if self._needs_boot:
                    await self._boot()
                    self._needs_boot = False
                self.online.set()
                self._announce_status()
                self._outbox_changed.set()
                await reader
            finally:
                self.online.clear()
                if not self._conn_lost.done():
                    self._conn_lost.set_result(None)
                reader.cancel()
                self._purge_offline()
                self._ws = None

    async def _reader(self, ws: Any) -> None:
        try:
            async for message in ws:
                await self.route_message(message)
        except websockets.exceptions.ConnectionClosed:
            pass  # the session's finally block handles the loss
        finally:
            if self._conn_lost is not None and not self._conn_lost.done():
                self._conn_lost.set_result(None)

    async def _boot(self) -> None:
        """BootNotification until Accepted; Pending and Rejected wait the given interval (4.2)."""
        while True:
            result = await self._call(
                "BootNotification",
                {
                    "chargePointModel": self.spec.model,
                    "chargePointVendor": self.spec.vendor,
                    "chargePointSerialNumber": self.id[:25],
                    "firmwareVersion": "evsite-sim-1",
                },
                str(uuid.uuid4()),
            )
            self.counters.boots += 1
            self.registration = result["status"]
            interval = float(result.get("interval") or 0)
            log_event(logger, "cp_boot", cp_id=self.id, status=result["status"], interval_s=interval)
            if result["status"] == "Accepted":
                if interval > 0:
                    self.heartbeat_interval_s = interval
                self._last_heartbeat_s = self.clock.monotonic()
                return
            await self.clock.sleep(interval if interval > 0 else self.heartbeat_interval_s)

    async def drop_connection(self) -> None:
        """Fault: the network goes away (the charger reconnects with backoff)."""
        log_event(logger, "cp_fault_drop_connection", cp_id=self.id)
        if self._ws is not None:
            await self._ws.close()

    async def reboot(self) -> None:
        """Fault/Reset: stop running transactions (reason Reboot), drop the connection, boot again.

        Profiles are kept: a charger stores them in non-volatile memory.
        """
        log_event(logger, "cp_reboot", cp_id=self.id)
        self._needs_boot = True
        for conn in list(self.tx):
            self.stop_transaction(conn, "Reboot")
        await self.drop_connection()

    # ------------------------------------------------------------------------------------------ sending

    async def _call(self, action: str, payload: dict[str, Any], uid: str) -> dict[str, Any]:
        """One CALL; fails fast with ConnectionLost when the socket drops (instead of a long timeout)."""
        lost = self._conn_lost
        if lost is None or lost.done() or self._ws is None:
            raise ConnectionLost(self.id)
        task = asyncio.ensure_future(self._rpc(action, payload, uid))
        task.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                result = task.result()
            except websockets.exceptions.ConnectionClosed:
                raise ConnectionLost(self.id) from None
            self.counters.messages_sent += 1
            return result
        task.cancel()
        raise ConnectionLost(self.id)

    async def _rpc(self, action: str, payload: dict[str, Any], uid: str) -> dict[str, Any]:
        """Send a CALL and await its CALLRESULT, validating both against the OCPP 1.6 schemas.

        Why not ``ocpp.ChargePoint.call``: it converts dataclasses snake_case -> camelCase recursively and
        validates with jsonschema in a thread pool, which at hundreds of chargers x 60x costs more than
        everything else the simulator does. Here payloads are built in wire form and checked in-line against
        the library's own schema files compiled with ``fastjsonschema``; framing, routing and incoming calls
        stay the library's.
        """
        try:
            _schema_check(action, "")(payload)
        except fastjsonschema.JsonSchemaValueException as err:
            raise AssertionError(f"simulator built an invalid {action}: {err.message}") from err
        await self._connection.send(json.dumps([MessageType.Call, uid, action, payload], separators=(",", ":")))
        while True:
            response = await asyncio.wait_for(self._response_queue.get(), self._response_timeout)
            if response.unique_id == uid:
                break
            log_event(logger, "cp_stale_response", logging.DEBUG, cp_id=self.id, unique_id=response.unique_id)
        if response.message_type_id == MessageType.CallError:
            raise response.to_exception()
        try:
            _schema_check(action, "Response")(response.payload)
        except fastjsonschema.JsonSchemaValueException as err:
            raise FormatViolationError(details={"cause": f"{action} response: {err.message}"}) from None
        return response.payload

    def enqueue(self, item: Outgoing) -> None:
        """Queue a message; while offline only transaction messages are kept."""
        if not item.transactional and not self.online.is_set():
            self.counters.messages_dropped_offline += 1
            if item.on_drop:
                item.on_drop()
            return
        item.created_s = self.clock.monotonic()
        self._outbox.append(item)
        self._outbox_changed.set()

    def _purge_offline(self) -> None:
        kept: deque[Outgoing] = deque()
        for item in self._outbox:
            if item.transactional:
                kept.append(item)
            else:
                self.counters.messages_dropped_offline += 1
                if item.on_drop:
                    item.on_drop()
        self._outbox = kept

    async def _sender(self) -> None:
        """Deliver the outbox in order, one call at a time (OCPP-J allows one outstanding call)."""
        while True:
            if not self._outbox:
                self._outbox_changed.clear()
                await self._outbox_changed.wait()
                continue
            await self.online.wait()
            item = self._outbox[0]
            try:
                result = await self._call(item.action, item.build(), item.uid)
            except ConnectionLost:
                # Stays first in line; re-sent with the same id after the reconnect. Clearing ``online`` here
                # (the session clears it too, a moment later) keeps this loop from spinning until then.
                self.online.clear()
                continue
            except (OCPPError, TimeoutError) as err:
                item.attempts += 1
                log_event(logger, "cp_call_failed", logging.WARNING, cp_id=self.id, action=item.action, error=repr(err))
                if item.transactional and item.attempts < self.spec.transaction_attempts:
                    await self.clock.sleep(self.backoff_base_s * item.attempts)
                    continue
                if self._outbox and self._outbox[0] is item:
                    self._outbox.popleft()
                if item.on_drop:
                    item.on_drop()
                continue
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()
            if item.on_result:
                try:
                    item.on_result(result)
                except Exception:  # a surprising answer must not silence this charger for good
                    logger.exception("cp_result_handler_failed cp_id=%s action=%s", self.id, item.action)

    # ------------------------------------------------------------------------------------------ behaviour

    def _announce_status(self) -> None:
        for conn in range(0, self.spec.connectors + 1):
            self._send_status(conn)

    def _send_status(self, conn: int) -> None:
        status = STATUS_NAMES[self.status[conn]]
        ts = self.clock.now().isoformat()
        self.enqueue(
            Outgoing(
                "StatusNotification",
                lambda: {
                    "connectorId": conn,
                    "errorCode": "OtherError" if status == "Faulted" else "NoError",
                    "status": status,
                    "timestamp": ts,
                },
                transactional=False,
            )
        )

    def set_status(self, conn: int, code: int) -> None:
        if self.status[conn] != code:
            log_event(logger, "cp_status", logging.DEBUG, cp_id=self.id, connector_id=conn, status=STATUS_NAMES[code])
            self.status[conn] = code
            self._send_status(conn)

    def idx(self, conn: int) -> int:
        return self.index0 + conn - 1

    def ev_arrived(self, conn: int, id_tag: str) -> None:
        """An EV plugs in: Preparing, then Authorize (offline: accepted locally) and StartTransaction."""
        if self.status[conn] == FAULTED or conn in self.tx:
            return
        self.arrays.ev_present[self.idx(conn)] = True
        self.set_status(conn, PREPARING)

        def authorized(result: Any) -> None:
            status = result["idTagInfo"]["status"]
            if status == "Accepted" and self.arrays.ev_present[self.idx(conn)]:
                self.start_transaction(conn, id_tag)
            else:
                log_event(
                    logger, "cp_authorize_rejected", cp_id=self.id, connector_id=conn, id_tag=id_tag, status=status
                )

        def offline() -> None:
            if self.arrays.ev_present[self.idx(conn)] and conn not in self.tx:
                self.start_transaction(conn, id_tag)  # LocalAuthorizeOffline

        self.enqueue(Outgoing("Authorize", lambda: {"idTag": id_tag}, False, on_result=authorized, on_drop=offline))

    def start_transaction(self, conn: int, id_tag: str) -> Transaction:
        i = self.idx(conn)
        tx = Transaction(
            local_id=next(_local_ids),
            connector_id=conn,
            id_tag=id_tag,
            started_at=self.clock.now(),
            meter_start_wh=int(self.arrays.energy_wh[i]),
            last_meter_s=self.clock.monotonic(),
        )
        self.tx[conn] = tx
        self.arrays.charging_enabled[i] = True
        self.counters.transactions_started += 1
        ts = tx.started_at.isoformat()

        def started(result: Any) -> None:
            tx.transaction_id = result["transactionId"]
            status = result["idTagInfo"]["status"]
            log_event(
                logger, "cp_transaction_started", cp_id=self.id, connector_id=conn, transaction_id=tx.transaction_id
            )
            if status != "Accepted" and self.tx.get(conn) is tx:
                self.stop_transaction(conn, "DeAuthorized")  # StopTransactionOnInvalidId

        self.enqueue(
            Outgoing(
                "StartTransaction",
                lambda: {"connectorId": conn, "idTag": id_tag, "meterStart": tx.meter_start_wh, "timestamp": ts},
                transactional=True,
                on_result=started,
            )
        )
        self.refresh_limits()
        return tx

    def stop_transaction(self, conn: int, reason: str = "Local") -> None:
        tx = self.tx.pop(conn, None)
        if tx is None:
            return
        i = self.idx(conn)
        self.arrays.charging_enabled[i] = False
        self.arrays.power_w[i] = 0.0
        self.counters.transactions_stopped += 1
        self.completed.append(tx)
        meter_stop = int(self.arrays.energy_wh[i])
        ts = self.clock.now().isoformat()
        self.profiles.end_transaction(conn)
        self.enqueue(
            Outgoing(
                "StopTransaction",
                lambda: {
                    "meterStop": meter_stop,
                    "timestamp": ts,
                    "transactionId": tx.transaction_id if tx.transaction_id is not None else -1,
                    "reason": reason,
                    "idTag": tx.id_tag,
                },
                transactional=True,
            )
        )
        self.set_status(conn, FINISHING)
        self.refresh_limits()

    def ev_departed(self, conn: int) -> None:
        """The EV leaves: StopTransaction (EVDisconnected), Finishing, Available."""
        i = self.idx(conn)
        if conn in self.tx:
            self.stop_transaction(conn, "EVDisconnected")
        self.arrays.ev_present[i] = False
        self.arrays.ev_id[i] = -1
        if self.status[conn] != FAULTED:
            self.set_status(conn, AVAILABLE)

    def fault_connector(self, conn: int, faulted: bool = True) -> None:
        """Fault: a connector goes Faulted (its transaction stops), or recovers."""
        if faulted:
            if conn in self.tx:
                self.stop_transaction(conn, "Other")
            self.set_status(conn, FAULTED)
        else:
            self.set_status(conn, PREPARING if self.arrays.ev_present[self.idx(conn)] else AVAILABLE)

    def refresh_limits(self) -> None:
        """Recompute each connector's composite limit now (also while offline: 3.13.6)."""
        if not self.profiles.profiles:  # the common case at scale: the connector rating, nothing to evaluate
            self.arrays.limit_w[self.index0 : self.index0 + self.spec.connectors] = self.elec.rating_w
            return
        now = self.clock.now()
        for conn in range(1, self.spec.connectors + 1):
            tx = self.tx.get(conn)
            lim = connector_limit(self.profiles.profiles, conn, now, self.elec, tx.started_at if tx else None)
            self.arrays.limit_w[self.idx(conn)] = lim.power_w

    def charge_point_cap_w(self) -> float:
        """The ChargePointMaxProfile limit now (the whole charger), or its rating sum when none."""
        lim = charge_point_max(self.profiles.profiles, self.clock.now(), self.elec)
        return lim.power_w if lim is not None else self.elec.rating_w * self.spec.connectors

    def apply_step(self, codes: Any) -> None:
        """After the vectorised step: turn transaction connectors' new codes into StatusNotifications."""
        for conn in self.tx:
            code = int(codes[self.idx(conn)])
            if code in (CHARGING, SUSPENDED_EV, SUSPENDED_EVSE):
                self.set_status(conn, code)

    def tick(self) -> None:
        """Periodic duties, called by the site every step: Heartbeat and MeterValues when due."""
        now_s = self.clock.monotonic()
        if self.online.is_set() and now_s - self._last_heartbeat_s >= self.heartbeat_interval_s:
            self._last_heartbeat_s = now_s
            self.enqueue(Outgoing("Heartbeat", dict, False))
        if self.meter_interval_s <= 0:
            return
        for conn, tx in self.tx.items():
            if now_s - tx.last_meter_s >= self.meter_interval_s:
                tx.last_meter_s = now_s
                self.send_meter_values(conn, tx)

    def meter_sample(self, conn: int, context: str = "Sample.Periodic") -> dict[str, Any]:
        """One MeterValue: energy register (Wh), power (W), current per phase (A), SoC (%)."""
        i = self.idx(conn)
        a = self.arrays
        energy = f"{a.energy_wh[i]:.1f}"
        if self.faults.corrupt_meter_values > 0:
            self.faults.corrupt_meter_values -= 1
            energy = "ERR"  # a corrupted register reading, as a glitching meter chip reports it
            log_event(logger, "cp_fault_corrupt_meter", cp_id=self.id, connector_id=conn)
        amps = f"{a.power_w[i] / (a.voltage_v[i] * a.phases[i]):.2f}"
        phases = ["L1", "L2", "L3"][: int(a.phases[i])]
        sampled = [
            {
                "value": energy,
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "location": "Outlet",
                "unit": "Wh",
            },
            {
                "value": f"{a.power_w[i]:.1f}",
                "context": context,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        sampled += [
            {
                "value": amps,
                "context": context,
                "measurand": "Current.Import",
                "phase": ph,
                "location": "Outlet",
                "unit": "A",
            }
            for ph in phases
        ]
        ev = int(a.ev_id[i])
        if ev >= 0 and self.fleet is not None:
            sampled.append(
                {
                    "value": f"{100 * self.fleet.soc[ev]:.1f}",
                    "context": context,
                    "measurand": "SoC",
                    "location": "EV",
                    "unit": "Percent",
                }
            )
        sampled = [sv for sv in sampled if sv["measurand"] in self.sampled_data]
        return {"timestamp": self.clock.now().isoformat(), "sampledValue": sampled}

    def send_meter_values(self, conn: int, tx: Transaction | None) -> None:
        sample = self.meter_sample(conn)
        self.enqueue(
            Outgoing(
                "MeterValues",
                lambda: (
                    {"connectorId": conn, "meterValue": [sample]}
                    | ({"transactionId": tx.transaction_id} if tx is not None else {})
                ),
                transactional=tx is not None,
            )
        )

    # ------------------------------------------------------------------------------------------ incoming

    async def route_message(self, raw_msg: str) -> None:
        """Fault hooks on the read side: drop or delay answers to the central system's calls."""
        if raw_msg.lstrip()[1:].lstrip().startswith("2"):  # a CALL (message type 2), not an answer
            if self.faults.drop_answers > 0:
                self.faults.drop_answers -= 1
                log_event(logger, "cp_fault_drop_answer", cp_id=self.id, frame=raw_msg[:80])
                return
            if self.faults.answer_delay_s > 0:
                task = asyncio.create_task(self._delayed(raw_msg, self.faults.answer_delay_s))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
        await super().route_message(raw_msg)

    async def _delayed(self, raw_msg: str, delay_s: float) -> None:
        await self.clock.sleep(delay_s)
        try:
            await super().route_message(raw_msg)
        except websockets.exceptions.ConnectionClosed:
            log_event(logger, "cp_delayed_answer_lost", cp_id=self.id)

    def _require_smart_charging(self) -> None:
        if not self.spec.capabilities.smart_charging:
            raise NotSupportedError(description="SmartCharging feature profile not supported")

    def _running_tx(self) -> dict[int, int]:
        return {c: (t.transaction_id if t.transaction_id is not None else -1) for c, t in self.tx.items()}

    @on("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self._require_smart_charging()
        why: str | None
        try:
            profile = parse_profile(cs_charging_profiles, connector_id, self.clock.now())
            why = "fault injection: reject_profiles" if self.faults.reject_profiles else None
            why = why or self.profiles.check(profile, self.spec.connectors, self._running_tx())
        except ProfileError as err:
            why = str(err)
        if why is not None:
            self.counters.profiles_rejected += 1
            log_event(logger, "cp_profile_rejected", cp_id=self.id, connector_id=connector_id, reason=why)
            return call_result.SetChargingProfile(status="Rejected")
        self.profiles.install(profile)
        self.counters.profiles_accepted += 1
        log_event(
            logger,
            "cp_profile_accepted",
            cp_id=self.id,
            connector_id=connector_id,
            profile_id=profile.profile_id,
            purpose=profile.purpose,
            stack_level=profile.stack_level,
            first_limit=profile.periods[0].limit,
            unit=profile.unit,
        )
        self.refresh_limits()
        return call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
    ) -> Any:
        self._require_smart_charging()
        gone = self.profiles.clear(id, connector_id, charging_profile_purpose, stack_level)
        log_event(logger, "cp_profiles_cleared", cp_id=self.id, removed=[p.profile_id for p in gone])
        self.refresh_limits()
        return call_result.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    @on("GetCompositeSchedule")
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None) -> Any:
        self._require_smart_charging()
        if connector_id < 0 or connector_id > self.spec.connectors:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or self.spec.capabilities.allowed_units[0]
        now = self.clock.now()
        starts = {c: (self.tx[c].started_at if c in self.tx else None) for c in range(1, self.spec.connectors + 1)}
        periods = composite(self.profiles.profiles, connector_id, now, duration, self.elec, unit, starts)
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=now.isoformat(),
            charging_schedule={
                "duration": duration,
                "start_schedule": now.isoformat(),
                "charging_rate_unit": unit,
                "charging_schedule_period": [
                    {
                        "start_period": p.start_s,
                        "limit": p.limit,
                        **({"number_phases": p.number_phases} if p.number_phases else {}),
                    }
                    for p in periods
                ],
            },
        )

    def _config(self) -> dict[str, tuple[str, bool]]:
        caps = self.spec.capabilities
        units = ",".join({"A": "Current", "W": "Power"}[u] for u in caps.allowed_units)
        features = "Core,RemoteTrigger" + (",SmartCharging" if caps.smart_charging else "")
        return {
            "HeartbeatInterval": (str(int(self.heartbeat_interval_s)), False),
            "MeterValueSampleInterval": (str(int(self.meter_interval_s)), False),
            "MeterValuesSampledData": (",".join(self.sampled_data), False),
            "NumberOfConnectors": (str(self.spec.connectors), True),
            "SupportedFeatureProfiles": (features, True),
            "ChargeProfileMaxStackLevel": (str(0 if caps.only_stack_level_0 else caps.max_stack_level), True),
            "ChargingScheduleAllowedChargingRateUnit": (units, True),
            "ChargingScheduleMaxPeriods": (str(caps.max_periods), True),
            "MaxChargingProfilesInstalled": (str(caps.max_profiles), True),
            "StopTransactionOnInvalidId": ("true", True),
        }

    @on("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        conf = self._config()
        wanted = key or list(conf)
        known = [{"key": k, "readonly": conf[k][1], "value": conf[k][0]} for k in wanted if k in conf]
        unknown = [k for k in wanted if k not in conf]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> Any:
        conf = self._config()
        if key not in conf:
            return call_result.ChangeConfiguration(status="NotSupported")
        if conf[key][1]:
            return call_result.ChangeConfiguration(status="Rejected")
        if key == "MeterValuesSampledData":
            wanted = tuple(m.strip() for m in value.split(",") if m.strip())
            if not wanted or any(m not in SUPPORTED_MEASURANDS for m in wanted):
                return call_result.ChangeConfiguration(status="Rejected")
            self.sampled_data = wanted
            log_event(logger, "cp_configuration_changed", cp_id=self.id, key=key, value=value)
            return call_result.ChangeConfiguration(status="Accepted")
        try:
            seconds = float(value)
        except ValueError:
            return call_result.ChangeConfiguration(status="Rejected")
        if seconds < 0:
            return call_result.ChangeConfiguration(status="Rejected")
        if key == "HeartbeatInterval":
            self.heartbeat_interval_s = seconds
        else:
            self.meter_interval_s = seconds
        log_event(logger, "cp_configuration_changed", cp_id=self.id, key=key, value=value)
        return call_result.ChangeConfiguration(status="Accepted")

    @on("RemoteStartTransaction")
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict | None = None
    ) -> Any:
        conn = connector_id or next(
            (c for c in range(1, self.spec.connectors + 1) if self.status[c] == PREPARING and c not in self.tx), None
        )
        if conn is None or conn in self.tx or not self.arrays.ev_present[self.idx(conn)]:
            return call_result.RemoteStartTransaction(status="Rejected")
        self.start_transaction(conn, id_tag)
        if charging_profile is not None and self.spec.capabilities.smart_charging:
            try:
                profile = parse_profile(charging_profile, conn, self.clock.now())
                if self.profiles.check(profile, self.spec.connectors, self._running_tx()) is None:
                    self.profiles.install(profile)
                    self.refresh_limits()
            except ProfileError as err:
                log_event(logger, "cp_profile_rejected", cp_id=self.id, connector_id=conn, reason=str(err))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int) -> Any:
        for conn, tx in self.tx.items():
            if tx.transaction_id == transaction_id:
                self.stop_transaction(conn, "Remote")
                return call_result.RemoteStopTransaction(status="Accepted")
        return call_result.RemoteStopTransaction(status="Rejected")

    @on("Reset")
    def on_reset(self, type: str) -> Any:
        return call_result.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str) -> None:
        self._needs_boot = True
        for conn in list(self.tx):
            self.stop_transaction(conn, "HardReset" if type == "Hard" else "SoftReset")
        await self.drop_connection()

    @on("TriggerMessage")
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> Any:
        ok = requested_message in ("Heartbeat", "StatusNotification", "MeterValues")
        return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger(self, requested_message: str, connector_id: int | None = None) -> None:
        conns = [connector_id] if connector_id is not None else list(range(0, self.spec.connectors + 1))
        if requested_message == "Heartbeat":
            self.enqueue(Outgoing("Heartbeat", dict, False))
        elif requested_message == "StatusNotification":
            for c in conns:
                self._send_status(c)
        elif requested_message == "MeterValues":
            for c in conns:
                if c >= 1:
                    self.send_meter_values(c, None)

    @on("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        return call_result.ChangeAvailability(status="Scheduled" if self.tx else "Accepted")
