"""One simulated OCPP 1.6J charge point (client side, on the ``ocpp`` library), built to behave like a real one.

Why its shape: it must interoperate with *any* conformant central system, so it speaks through the shared
OCPP-J router ``evsite.ocppj`` (every frame validated against the ``ocpp`` library's OCPP 1.6 JSON schemas,
every defect answered with the OCPP-J 1.6 code, as our central system does) and follows the spec's charger-side
duties: BootNotification until Accepted (Pending/Rejected retried after the given interval), Heartbeat at the
given interval, StatusNotification on every connector transition, Authorize, Start/StopTransaction with meter
readings, MeterValues at ``MeterValueSampleInterval``, and smart charging per section 3.13 (``smart_charging``).
It also answers the rest of the charge-point side of OCPP 1.6: ChangeAvailability (Unavailable now or after the
transaction), UnlockConnector, ClearCache, DataTransfer,
ReserveNow/CancelReservation (a reserved connector takes only the reserving tag, until the reservation expires),
SendLocalList/GetLocalListVersion with the local list and authorisation cache used while offline
(``local_auth``), UpdateFirmware and GetDiagnostics with their status notifications on the simulation clock.
What a charger supports or how it behaves offline is data: its configuration keys (``SETTINGS``), which a
central system reads and changes with Get/ChangeConfiguration like any other.

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
import itertools
import logging
import random
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import websockets
from ocpp.v16 import call_result

from evsite.clock import Clock
from evsite.discharge import CAPABILITY_KEY
from evsite.ev_fleet import Fleet
from evsite.log import log_event
from evsite.ocppj.dispatch import CallFailed, Endpoint, InvalidPayload, PeerGone, after, handles
from evsite.ocppj.framing import CallFrame, OcppViolation
from evsite.ocppj.payloads import to_snake
from simulators.connectors import (
    AVAILABLE,
    CHARGING,
    FAULTED,
    FINISHING,
    PREPARING,
    RESERVED,
    STATUS_NAMES,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
    UNAVAILABLE,
    ConnectorArrays,
)
from simulators.local_auth import ListUpdateError, LocalAuth
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
    #: how far the charger's own clock is ahead of the site's (negative: behind), in seconds. It stamps its
    #: messages and evaluates its profiles (``validTo``, ``startSchedule``) in its own clock, as a real one does.
    clock_offset_s: float = 0.0
    #: reports ``BidirectionalCharging = true`` and takes a negative limit as a discharge setpoint
    #: (``evsite.discharge``); otherwise a negative limit is rejected
    bidirectional: bool = False


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
    reservation_id: int | None = None


@dataclass(frozen=True)
class Reservation:
    """A ReserveNow the charger accepted: only ``id_tag`` (or a tag of ``parent_id_tag``) may use the connector."""

    reservation_id: int
    connector_id: int
    id_tag: str
    expiry: datetime
    parent_id_tag: str | None = None


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
#: Writable configuration keys of the simulated charger and their defaults (OCPP 1.6 §9.1 names): the
#: charger's feature flags and offline behaviour are data a central system reads and changes.
SETTINGS: dict[str, str] = {
    "LocalAuthorizeOffline": "true",
    "LocalAuthListEnabled": "true",
    "AuthorizationCacheEnabled": "true",
    "AllowOfflineTxForUnknownId": "true",
}
BOOLEAN_SETTINGS = frozenset(SETTINGS)
#: Read-only limits of the local list (OCPP 1.6 §9.4).
LOCAL_LIST_MAX = 1000
SEND_LOCAL_LIST_MAX = 100
#: Simulated durations (clock seconds) of a firmware download, its installation, and a diagnostics upload.
FIRMWARE_DOWNLOAD_S, FIRMWARE_INSTALL_S, DIAGNOSTICS_UPLOAD_S = 60.0, 30.0, 20.0
#: URL schemes the simulated charger can fetch from / upload to; any other fails (DownloadFailed, UploadFailed).
TRANSFER_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
#: The vendor extension the simulated charger understands over DataTransfer: messageId "echo" returns the data.
SIM_VENDOR_ID = "evsite"
TRIGGERABLE = (
    "Heartbeat",
    "StatusNotification",
    "MeterValues",
    "FirmwareStatusNotification",
    "DiagnosticsStatusNotification",
)


def _register_reading(timestamp: str, energy_wh: int, context: str) -> dict[str, Any]:
    """One MeterValue with the energy register only (transactionData of a StopTransaction)."""
    sv = {"value": str(energy_wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"timestamp": timestamp, "sampledValue": [sv | {"location": "Outlet"}]}


def _parse_time(text: str) -> datetime:
    """An OCPP dateTime (schema-checked already); ``Z`` accepted on every Python version we support."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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


class SimChargePoint:
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
        self.id = spec.cp_id
        self.response_timeout_s = response_timeout_s
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
        self._last_heartbeat_s = 0.0
        self._stopping = False
        # BootNotification is sent after a (re)boot only; a plain reconnect after a network loss is not a boot
        # (a central system may close open transactions on a boot, as a real reboot ends them).
        self._needs_boot = True
        self.last_error: str | None = None  # why the last connection attempt failed (for operator messages)
        self._ws: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.fleet: Fleet | None = None  # the cars behind the connectors (for SoC readings), set by the site
        self.endpoint: Endpoint | None = None  # the OCPP-J router of the current connection
        self.settings = dict(SETTINGS)
        self.local_auth = LocalAuth(max_list=LOCAL_LIST_MAX)
        self.reservations: dict[int, Reservation] = {}  # by connector id
        self.inoperative: set[int] = set()  # ChangeAvailability Inoperative (0: the charge point itself)
        self.firmware_version = "evsite-sim-1"
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"

    def now(self) -> datetime:
        """The charger's own clock: the site's plus ``spec.clock_offset_s``."""
        return self.clock.now() + timedelta(seconds=self.spec.clock_offset_s)

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
                except (
                    OSError,
                    websockets.exceptions.WebSocketException,
                    TimeoutError,
                    ConnectionLost,
                    CallFailed,
                ) as err:
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
            endpoint = Endpoint(
                self,
                ws,
                cp_id=self.id,
                logger=logger,
                response_timeout_s=self.response_timeout_s,
                check_answers=True,
                spawn=self._spawn,
            )
            self.endpoint = endpoint
            reader = asyncio.create_task(self._reader(ws, endpoint), name=f"{self.id}-reader")
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
                endpoint.connection_lost()
                reader.cancel()
                self._purge_offline()
                self._ws = None

    async def _reader(self, ws: Any, endpoint: Endpoint) -> None:
        try:
            async for message in ws:
                await self.route_message(endpoint, message)
        except websockets.exceptions.ConnectionClosed as err:
            log_event(logger, "cp_connection_closed", logging.DEBUG, cp_id=self.id, error=repr(err))
        finally:
            endpoint.connection_lost()  # fails the call in flight at once (ConnectionLost), no long timeout

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Background work of this charger (after-answer actions, delayed answers), cancelled when it stops."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _boot(self) -> None:
        """BootNotification until Accepted; Pending and Rejected wait the given interval (4.2)."""
        while True:
            result = await self._call(
                "BootNotification",
                {
                    "chargePointModel": self.spec.model,
                    "chargePointVendor": self.spec.vendor,
                    "chargePointSerialNumber": self.id[:25],
                    "firmwareVersion": self.firmware_version,
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
        """One CALL through the router (request and answer schema-checked); ConnectionLost when the socket drops.

        Payloads are built in wire form (camelCase): at hundreds of chargers a dataclass-and-convert round trip
        per message would cost more than everything else the simulator does.
        """
        endpoint = self.endpoint
        if endpoint is None or endpoint.closed or self._ws is None:
            raise ConnectionLost(self.id)
        try:
            result = await endpoint.call(action, payload, unique_id=uid)
        except PeerGone:
            raise ConnectionLost(self.id) from None
        except InvalidPayload as err:
            if err.kind == "req":
                raise AssertionError(f"simulator built an invalid {action}: {err.description}") from err
            raise
        self.counters.messages_sent += 1
        return result

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
        """Drop what is not kept while offline. A drop can queue a message (an Authorize nobody answered starts
        the transaction on the local decision), so the outbox is swapped out first and what was queued meanwhile
        goes after what was kept (was: "deque mutated during iteration", the charger's session ended)."""
        kept: deque[Outgoing] = deque()
        pending, self._outbox = self._outbox, deque()
        for item in pending:
            if item.transactional:
                kept.append(item)
            else:
                self.counters.messages_dropped_offline += 1
                if item.on_drop:
                    item.on_drop()
        kept.extend(self._outbox)
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
            except CallFailed as err:
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
        ts = self.now().isoformat()
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
        if self.status[conn] in (FAULTED, UNAVAILABLE) or conn in self.tx:
            return
        self.arrays.ev_present[self.idx(conn)] = True
        reservation = self.reservations.get(conn)
        if reservation is not None and not self._holds(reservation, id_tag):
            log_event(
                logger,
                "cp_reservation_refused",
                cp_id=self.id,
                connector_id=conn,
                id_tag=id_tag,
                reservation_id=reservation.reservation_id,
            )
            return
        self.set_status(conn, PREPARING)

        def authorized(result: Any) -> None:
            self._remember(id_tag, result["idTagInfo"])
            status = result["idTagInfo"]["status"]
            if status == "Accepted" and self.arrays.ev_present[self.idx(conn)]:
                self.start_transaction(conn, id_tag)
            else:
                log_event(
                    logger, "cp_authorize_rejected", cp_id=self.id, connector_id=conn, id_tag=id_tag, status=status
                )

        def offline() -> None:
            if self.arrays.ev_present[self.idx(conn)] and conn not in self.tx:
                ok, why = self.offline_authorized(id_tag)
                log_event(logger, "cp_authorize_offline", cp_id=self.id, id_tag=id_tag, accepted=ok, why=why)
                if ok:
                    self.start_transaction(conn, id_tag)

        self.enqueue(Outgoing("Authorize", lambda: {"idTag": id_tag}, False, on_result=authorized, on_drop=offline))

    def offline_authorized(self, id_tag: str) -> tuple[bool, str]:
        """May ``id_tag`` charge while the central system cannot be asked? (config keys, list, cache)."""
        local = self._flag("LocalAuthorizeOffline")
        return self.local_auth.offline_decision(
            id_tag,
            self.now(),
            list_enabled=local and self._flag("LocalAuthListEnabled"),
            cache_enabled=local and self._flag("AuthorizationCacheEnabled"),
            allow_unknown=self._flag("AllowOfflineTxForUnknownId"),
        )

    def _flag(self, key: str) -> bool:
        return self.settings[key] == "true"

    def _remember(self, id_tag: str, info: dict[str, Any]) -> None:
        if info and self._flag("AuthorizationCacheEnabled"):
            self.local_auth.remember(id_tag, info)

    def _holds(self, reservation: Reservation, id_tag: str) -> bool:
        """The reserving tag, or a tag with the same parent (as the local list or cache knows it)."""
        if id_tag == reservation.id_tag:
            return True
        known = self.local_auth.entries.get(id_tag) or self.local_auth.cache.get(id_tag)
        parent = reservation.parent_id_tag
        return parent is not None and known is not None and known.parent_id_tag == parent

    def start_transaction(self, conn: int, id_tag: str) -> Transaction:
        i = self.idx(conn)
        reservation = self.reservations.get(conn)
        reservation_id = None
        if reservation is not None and self._holds(reservation, id_tag):
            del self.reservations[conn]  # used: the reservation ends with this transaction's start
            reservation_id = reservation.reservation_id
        tx = Transaction(
            local_id=next(_local_ids),
            connector_id=conn,
            id_tag=id_tag,
            started_at=self.now(),
            meter_start_wh=int(self.arrays.energy_wh[i]),
            last_meter_s=self.clock.monotonic(),
            reservation_id=reservation_id,
        )
        self.tx[conn] = tx
        self.arrays.charging_enabled[i] = True
        self.counters.transactions_started += 1
        ts = tx.started_at.isoformat()

        def started(result: Any) -> None:
            tx.transaction_id = result["transactionId"]
            self._remember(id_tag, result["idTagInfo"])
            status = result["idTagInfo"]["status"]
            log_event(
                logger, "cp_transaction_started", cp_id=self.id, connector_id=conn, transaction_id=tx.transaction_id
            )
            if status != "Accepted" and self.tx.get(conn) is tx:
                self.stop_transaction(conn, "DeAuthorized")  # StopTransactionOnInvalidId

        self.enqueue(
            Outgoing(
                "StartTransaction",
                lambda: (
                    {"connectorId": conn, "idTag": id_tag, "meterStart": tx.meter_start_wh, "timestamp": ts}
                    | ({"reservationId": reservation_id} if reservation_id is not None else {})
                ),
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
        ts = self.now().isoformat()
        self.profiles.end_transaction(conn)
        # transactionData: the register at start and stop, what billing needs (OCPP 1.6 §6.49).
        data = [
            _register_reading(tx.started_at.isoformat(), tx.meter_start_wh, "Transaction.Begin"),
            _register_reading(ts, meter_stop, "Transaction.End"),
        ]
        self.enqueue(
            Outgoing(
                "StopTransaction",
                lambda: {
                    "meterStop": meter_stop,
                    "timestamp": ts,
                    "transactionId": tx.transaction_id if tx.transaction_id is not None else -1,
                    "reason": reason,
                    "idTag": tx.id_tag,
                    "transactionData": data,
                },
                transactional=True,
                on_result=lambda result: self._remember(tx.id_tag, result.get("idTagInfo") or {}),
            )
        )
        # A ChangeAvailability(Inoperative) scheduled during the transaction applies now (5.2).
        self.set_status(conn, UNAVAILABLE if conn in self.inoperative else FINISHING)
        self.refresh_limits()

    def ev_departed(self, conn: int) -> None:
        """The EV leaves: StopTransaction (EVDisconnected), Finishing, Available."""
        i = self.idx(conn)
        if conn in self.tx:
            self.stop_transaction(conn, "EVDisconnected")
        self.arrays.ev_present[i] = False
        self.arrays.ev_id[i] = -1
        if self.status[conn] != FAULTED:
            self.set_status(conn, self._idle_status(conn))

    def _idle_status(self, conn: int) -> int:
        """What a connector without a transaction shows: Unavailable, Reserved, Preparing (a car) or Available."""
        if conn in self.inoperative:
            return UNAVAILABLE
        if conn in self.reservations:
            return RESERVED
        return PREPARING if conn > 0 and self.arrays.ev_present[self.idx(conn)] else AVAILABLE

    def fault_connector(self, conn: int, faulted: bool = True) -> None:
        """Fault: a connector goes Faulted (its transaction stops), or recovers."""
        if faulted:
            if conn in self.tx:
                self.stop_transaction(conn, "Other")
            self.set_status(conn, FAULTED)
        else:
            self.set_status(conn, self._idle_status(conn))

    def refresh_limits(self) -> None:
        """Recompute each connector's composite limit now (also while offline: 3.13.6)."""
        if not self.profiles.profiles:  # the common case at scale: the connector rating, nothing to evaluate
            self.arrays.limit_w[self.index0 : self.index0 + self.spec.connectors] = self.elec.rating_w
            return
        now = self.now()
        for conn in range(1, self.spec.connectors + 1):
            tx = self.tx.get(conn)
            lim = connector_limit(self.profiles.profiles, conn, now, self.elec, tx.started_at if tx else None)
            self.arrays.limit_w[self.idx(conn)] = lim.power_w

    def charge_point_cap_w(self) -> float:
        """The ChargePointMaxProfile limit now (the whole charger), or its rating sum when none."""
        lim = charge_point_max(self.profiles.profiles, self.now(), self.elec)
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
        if self.reservations:
            self._expire_reservations()
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
        imported = max(float(a.power_w[i]), 0.0)  # a discharging car imports nothing (Export measurand below)
        amps = f"{imported / (a.voltage_v[i] * a.phases[i]):.2f}"
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
                "value": f"{imported:.1f}",
                "context": context,
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        if self.spec.bidirectional:
            sampled.append({"value": f"{max(-float(a.power_w[i]), 0.0):.1f}", "context": context,
                            "measurand": "Power.Active.Export", "location": "Outlet", "unit": "W"})  # fmt: skip
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
        sampled = [sv for sv in sampled if sv["measurand"] in self.sampled_data or sv["measurand"].endswith("Export")]
        return {"timestamp": self.now().isoformat(), "sampledValue": sampled}

    def send_meter_values(self, conn: int, tx: Transaction | None, context: str = "Sample.Periodic") -> None:
        sample = self.meter_sample(conn, context)
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

    async def route_message(self, endpoint: Endpoint, raw_msg: str) -> None:
        """Through the router, with the fault hooks on the read side: drop or delay answers to calls."""
        frame = await endpoint.parse(raw_msg)
        if frame is None:
            return
        if type(frame) is CallFrame:
            if self.faults.drop_answers > 0:
                self.faults.drop_answers -= 1
                log_event(logger, "cp_fault_drop_answer", cp_id=self.id, action=frame.action)
                return
            if self.faults.answer_delay_s > 0:
                self._spawn(self._delayed(endpoint, frame, self.faults.answer_delay_s))
                return
        await endpoint.dispatch(frame)

    async def _delayed(self, endpoint: Endpoint, frame: CallFrame, delay_s: float) -> None:
        await self.clock.sleep(delay_s)
        await endpoint.dispatch(frame)  # a connection lost meanwhile is logged by the router

    def _require_smart_charging(self) -> None:
        if not self.spec.capabilities.smart_charging:
            raise OcppViolation("NotSupported", "SmartCharging feature profile not supported")

    def _running_tx(self) -> dict[int, int]:
        return {c: (t.transaction_id if t.transaction_id is not None else -1) for c, t in self.tx.items()}

    @handles("SetChargingProfile")
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self._require_smart_charging()
        why: str | None
        try:
            profile = parse_profile(to_snake(cs_charging_profiles), connector_id, self.now(),
                                    allow_negative=self.spec.bidirectional)  # fmt: skip
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

    @handles("ClearChargingProfile")
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

    @handles("GetCompositeSchedule")
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None) -> Any:
        self._require_smart_charging()
        if connector_id < 0 or connector_id > self.spec.connectors:
            return call_result.GetCompositeSchedule(status="Rejected")
        unit = charging_rate_unit or self.spec.capabilities.allowed_units[0]
        now = self.now()
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
        features = "Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger" + (
            ",SmartCharging" if caps.smart_charging else ""
        )
        return {
            **{k: (v, False) for k, v in self.settings.items()},
            "LocalAuthListMaxLength": (str(LOCAL_LIST_MAX), True),
            "SendLocalListMaxLength": (str(SEND_LOCAL_LIST_MAX), True),
            "ReserveConnectorZeroSupported": ("false", True),
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
            CAPABILITY_KEY: ("true" if self.spec.bidirectional else "false", True),
        }

    @handles("GetConfiguration")
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        conf = self._config()
        wanted = key or list(conf)
        known = [{"key": k, "readonly": conf[k][1], "value": conf[k][0]} for k in wanted if k in conf]
        unknown = [k for k in wanted if k not in conf]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @handles("ChangeConfiguration")
    def on_change_configuration(self, key: str, value: str) -> Any:
        conf = self._config()
        if key not in conf:
            return call_result.ChangeConfiguration(status="NotSupported")
        if conf[key][1]:
            return call_result.ChangeConfiguration(status="Rejected")
        if key in BOOLEAN_SETTINGS:
            if value.lower() not in ("true", "false"):
                return call_result.ChangeConfiguration(status="Rejected")
            self.settings[key] = value.lower()
            log_event(logger, "cp_configuration_changed", cp_id=self.id, key=key, value=value)
            return call_result.ChangeConfiguration(status="Accepted")
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

    @handles("RemoteStartTransaction")
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, charging_profile: dict | None = None
    ) -> Any:
        conn = connector_id or next(
            (c for c in range(1, self.spec.connectors + 1) if self.status[c] == PREPARING and c not in self.tx), None
        )
        if (
            conn is None
            or conn in self.tx
            or not self.arrays.ev_present[self.idx(conn)]
            or self.status[conn] in (FAULTED, UNAVAILABLE)
        ):
            return call_result.RemoteStartTransaction(status="Rejected")
        self.start_transaction(conn, id_tag)
        if charging_profile is not None and self.spec.capabilities.smart_charging:
            try:
                profile = parse_profile(to_snake(charging_profile), conn, self.now(),
                                        allow_negative=self.spec.bidirectional)  # fmt: skip
                if self.profiles.check(profile, self.spec.connectors, self._running_tx()) is None:
                    self.profiles.install(profile)
                    self.refresh_limits()
            except ProfileError as err:
                log_event(logger, "cp_profile_rejected", cp_id=self.id, connector_id=conn, reason=str(err))
        return call_result.RemoteStartTransaction(status="Accepted")

    @handles("RemoteStopTransaction")
    def on_remote_stop(self, transaction_id: int) -> Any:
        for conn, tx in self.tx.items():
            if tx.transaction_id == transaction_id:
                self.stop_transaction(conn, "Remote")
                return call_result.RemoteStopTransaction(status="Accepted")
        return call_result.RemoteStopTransaction(status="Rejected")

    @handles("Reset")
    def on_reset(self, type: str) -> Any:
        return call_result.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str) -> None:
        self._needs_boot = True
        for conn in list(self.tx):
            self.stop_transaction(conn, "HardReset" if type == "Hard" else "SoftReset")
        await self.drop_connection()

    @handles("TriggerMessage")
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> Any:
        ok = requested_message in TRIGGERABLE
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
                    self.send_meter_values(c, self.tx.get(c), "Trigger")  # in a transaction: with its id
        elif requested_message == "FirmwareStatusNotification":
            busy = self.firmware_status in ("Downloading", "Downloaded", "Installing")
            self._notify("FirmwareStatusNotification", self.firmware_status if busy else "Idle")
        elif requested_message == "DiagnosticsStatusNotification":
            busy = self.diagnostics_status == "Uploading"
            self._notify("DiagnosticsStatusNotification", "Uploading" if busy else "Idle")

    @handles("ChangeAvailability")
    def on_change_availability(self, connector_id: int, type: str) -> Any:
        """Inoperative: Unavailable now, or once its transaction ends (Scheduled); connector 0 is the whole charger."""
        if not 0 <= connector_id <= self.spec.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        targets = range(0, self.spec.connectors + 1) if connector_id == 0 else [connector_id]
        if type == "Operative":
            self.inoperative.difference_update(targets)
        else:
            self.inoperative.update(targets)
        for conn in targets:
            if conn in self.tx or self.status[conn] == FAULTED:
                continue
            if type == "Inoperative" or self.status[conn] == UNAVAILABLE:
                self.set_status(conn, self._idle_status(conn))
        scheduled = type == "Inoperative" and any(c in self.tx for c in targets)
        log_event(logger, "cp_availability", cp_id=self.id, connector_id=connector_id, type=type, scheduled=scheduled)
        return call_result.ChangeAvailability(status="Scheduled" if scheduled else "Accepted")

    # ------------------------------------------------------------------------------------------ reservations

    @handles("ReserveNow")
    def on_reserve_now(
        self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, parent_id_tag: str | None = None
    ) -> Any:
        expiry = _parse_time(expiry_date)
        # Connector 0 (any connector) is not supported: ReserveConnectorZeroSupported is false.
        if not 1 <= connector_id <= self.spec.connectors or expiry <= self.now():
            return call_result.ReserveNow(status="Rejected")
        for conn, r in list(self.reservations.items()):
            if r.reservation_id == reservation_id:  # same id: this request replaces that reservation (5.13)
                del self.reservations[conn]
                if self.status[conn] == RESERVED:
                    self.set_status(conn, AVAILABLE)
        if self.status[connector_id] == FAULTED:
            return call_result.ReserveNow(status="Faulted")
        if self.status[connector_id] == UNAVAILABLE:
            return call_result.ReserveNow(status="Unavailable")
        if self.status[connector_id] != AVAILABLE or connector_id in self.tx or connector_id in self.reservations:
            return call_result.ReserveNow(status="Occupied")
        self.reservations[connector_id] = Reservation(reservation_id, connector_id, id_tag, expiry, parent_id_tag)
        self.set_status(connector_id, RESERVED)
        log_event(logger, "cp_reserved", cp_id=self.id, connector_id=connector_id, reservation_id=reservation_id)
        return call_result.ReserveNow(status="Accepted")

    @handles("CancelReservation")
    def on_cancel_reservation(self, reservation_id: int) -> Any:
        for conn, r in list(self.reservations.items()):
            if r.reservation_id == reservation_id:
                self._end_reservation(conn, "cancelled")
                return call_result.CancelReservation(status="Accepted")
        return call_result.CancelReservation(status="Rejected")

    def _expire_reservations(self) -> None:
        now = self.now()
        for conn, r in list(self.reservations.items()):
            if r.expiry <= now:
                self._end_reservation(conn, "expired")

    def _end_reservation(self, conn: int, why: str) -> None:
        r = self.reservations.pop(conn)
        log_event(
            logger, "cp_reservation_ended", cp_id=self.id, connector_id=conn, reservation=r.reservation_id, why=why
        )
        if self.status[conn] == RESERVED:
            self.set_status(conn, self._idle_status(conn))

    # ------------------------------------------------------------------------------------------ local authorisation

    @handles("SendLocalList")
    def on_send_local_list(
        self, list_version: int, update_type: str, local_authorization_list: list[dict[str, Any]] | None = None
    ) -> Any:
        items = local_authorization_list or []
        if not self._flag("LocalAuthListEnabled"):
            return call_result.SendLocalList(status="NotSupported")
        if len(items) > SEND_LOCAL_LIST_MAX:
            return call_result.SendLocalList(status="Failed")
        try:
            self.local_auth.update(list_version, update_type, items)
        except ListUpdateError as err:
            log_event(logger, "cp_local_list_refused", cp_id=self.id, status=err.status, why=str(err))
            return call_result.SendLocalList(status=err.status)
        size = len(self.local_auth.entries)
        log_event(logger, "cp_local_list", cp_id=self.id, version=list_version, update=update_type, size=size)
        return call_result.SendLocalList(status="Accepted")

    @handles("GetLocalListVersion")
    def on_get_local_list_version(self) -> Any:
        return call_result.GetLocalListVersion(
            list_version=self.local_auth.version if self._flag("LocalAuthListEnabled") else -1
        )

    @handles("ClearCache")
    def on_clear_cache(self) -> Any:
        self.local_auth.cache.clear()
        return call_result.ClearCache(status="Accepted")

    # ------------------------------------------------------------------------------------------ other core actions

    @handles("UnlockConnector")
    def on_unlock_connector(self, connector_id: int) -> Any:
        if not 1 <= connector_id <= self.spec.connectors:
            return call_result.UnlockConnector(status="UnlockFailed")
        if connector_id in self.tx:
            self.stop_transaction(connector_id, "UnlockCommand")
        return call_result.UnlockConnector(status="Unlocked")

    @handles("DataTransfer")
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None) -> Any:
        if vendor_id != SIM_VENDOR_ID:
            return call_result.DataTransfer(status="UnknownVendorId")
        if message_id != "echo":
            return call_result.DataTransfer(status="UnknownMessageId")
        return call_result.DataTransfer(status="Accepted", data=data)

    # ------------------------------------------------------------------------------------------ firmware, diagnostics

    def _notify(self, action: str, status: str, transactional: bool = False) -> None:
        if action == "FirmwareStatusNotification":
            self.firmware_status = status
        else:
            self.diagnostics_status = status
        log_event(logger, "cp_" + action, cp_id=self.id, status=status)
        self.enqueue(Outgoing(action, lambda: {"status": status}, transactional))

    @handles("UpdateFirmware")
    def on_update_firmware(
        self, location: str, retrieve_date: str, retries: int | None = None, retry_interval: int | None = None
    ) -> Any:
        return call_result.UpdateFirmware()

    @after("UpdateFirmware")
    async def after_update_firmware(
        self, location: str, retrieve_date: str, retries: int | None = None, retry_interval: int | None = None
    ) -> None:
        """Download at ``retrieve_date``, install, reboot; the clock paces it (a simulated hour is fast)."""
        wait_s = (_parse_time(retrieve_date) - self.now()).total_seconds()
        if wait_s > 0:
            await self.clock.sleep(wait_s)
        self._notify("FirmwareStatusNotification", "Downloading")
        await self.clock.sleep(FIRMWARE_DOWNLOAD_S)
        url = urlsplit(location)
        if url.scheme not in TRANSFER_SCHEMES:
            self._notify("FirmwareStatusNotification", "DownloadFailed")
            return
        self._notify("FirmwareStatusNotification", "Downloaded")
        self._notify("FirmwareStatusNotification", "Installing")
        await self.clock.sleep(FIRMWARE_INSTALL_S)
        self.firmware_version = (url.path.rsplit("/", 1)[-1] or self.firmware_version)[:50]
        # Installed is reported after the reboot (queued like a transaction message, it survives the restart).
        self._notify("FirmwareStatusNotification", "Installed", transactional=True)
        await self.reboot()

    @handles("GetDiagnostics")
    def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
    ) -> Any:
        stamp = self.now().strftime("%Y%m%dT%H%M%SZ")
        return call_result.GetDiagnostics(file_name=f"{self.id}-{stamp}.log")

    @after("GetDiagnostics")
    async def after_get_diagnostics(self, location: str, **_: Any) -> None:
        self._notify("DiagnosticsStatusNotification", "Uploading")
        await self.clock.sleep(DIAGNOSTICS_UPLOAD_S)
        ok = urlsplit(location).scheme in TRANSFER_SCHEMES
        self._notify("DiagnosticsStatusNotification", "Uploaded" if ok else "UploadFailed")
