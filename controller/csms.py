"""The OCPP 1.6J central system: accepts charge points, authenticates them, answers them, persists, commands.

Public API (used by load management, the regulation dispatcher, the simulators' tests)::

    csms = CentralSystem(config, store, clock, bus)
    await csms.start()                     # binds config.server.host/port (port 0: ephemeral, see csms.port)
    csms.connected                         # set of connected charge point ids
    csms.capabilities("CP1")               # smart-charging keys read at boot, or None
    csms.open_transactions("CP1")          # {transaction id: connector id}
    csms.connector_status[("CP1", 1)]      # latest StatusEvent per connector
    result = await csms.send("CP1", call.SetChargingProfile(...), reason="site_headroom")
    await csms.flush()                     # commit buffered writes (tests read the store after this)
    await csms.stop()

``send`` returns the ``ocpp.v16.call_result`` dataclass or raises ``ChargePointNotConnected``,
``CallTimeout``, ``CallErrorReceived(code, description, details)``, ``InvalidRequest`` or
``InvalidResponse`` (all ``controller.errors.CsmsError``); it never returns None.

Bus topics (payloads are frozen dataclasses from ``controller.events``):

- ``ocpp/connection`` ``ConnectionEvent``: a charge point connected (after auth) or disconnected.
- ``ocpp/boot`` ``BootEvent``: BootNotification accepted.
- ``ocpp/capabilities`` ``CapabilitiesEvent``: smart-charging keys read with GetConfiguration after boot.
- ``ocpp/status`` ``StatusEvent``: every StatusNotification.
- ``ocpp/transaction`` ``TransactionEvent``: transaction started / stopped (also when closed at reboot).
- ``ocpp/meter`` ``MeterEvent``: every meterValue element (MeterValues and StopTransaction.transactionData).
- ``ocpp/profile`` ``ProfileEvent``: SetChargingProfile / ClearChargingProfile sent, why, and the answer.

Connection rules (checked in ``process_request``, before the WebSocket upgrade): the path must be
``<path_prefix>/<chargePointId>`` (else 404), the client must offer subprotocol ``ocpp1.6`` (else 400), the id
must be known (config or store) unless ``allow_unknown_chargers`` (auto-registered and recorded as such; else
404), and with ``require_auth`` (or when the charger has a stored password) the HTTP Basic credentials must
match the charger's stored hash (else 401, and nothing is stored). A second connection with the same id
replaces the first (closed with 1000 "replaced").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from controller import events as ev
from controller.errors import ChargePointNotConnected, CsmsError
from controller.ocpp.session import ChargePointSession, summarize_meter_value
from controller.store import Store
from controller.store.writer import DbWriter
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.log import log_event
from evsite.passwords import verify_password

log = logging.getLogger("controller.csms")

SUBPROTOCOL = "ocpp1.6"
#: Configuration keys read at boot: the smart-charging capabilities and the connector count.
CAPABILITY_KEYS = (
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
    "NumberOfConnectors",
)
_PROFILE_ACTIONS = ("SetChargingProfile", "ClearChargingProfile")
#: Longest charge point id accepted (the store's column; OCPP 1.6 security uses up to 48 characters).
MAX_CP_ID = 48


@dataclass
class KnownCharger:
    password_hash: str | None
    auto_registered: bool
    firmware_version: str | None = None
    capabilities: dict[str, Any] | None = None


DataTransferHandler = Callable[[str, str | None, str | None], tuple[str, str | None]]


class CentralSystem:
    """The OCPP 1.6J server: registry of connected charge points, handlers' side effects, and ``send``."""

    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        bus: EventBus,
        *,
        validate_responses: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.bus = bus
        #: Check our own answers against the schema too (tests turn it on; costs a validation per message).
        self.validate_responses = validate_responses
        self.ssl_context = ssl_context
        self.port: int | None = None
        self.allow_unknown = config.server.allow_unknown_chargers
        self.data_transfer_handlers: dict[str, DataTransferHandler] = {}
        self.connector_status: dict[tuple[str, int], ev.StatusEvent] = {}
        self._sessions: dict[str, ChargePointSession] = {}
        self._known: dict[str, KnownCharger] = {}
        self._id_tags: dict[str, tuple[str, datetime | None, str | None]] = {}
        self._open_tx: dict[str, dict[int, int | None]] = {}  # cp_id -> {transaction id: connector id}
        self._auth_cache: dict[tuple[str, str], bytes] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._db = DbWriter(store)
        self._server: Any = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> set[str]:
        """Ids of the charge points connected right now."""
        return set(self._sessions)

    def session(self, cp_id: str) -> ChargePointSession:
        try:
            return self._sessions[cp_id]
        except KeyError:
            raise ChargePointNotConnected(cp_id) from None

    def capabilities(self, cp_id: str) -> dict[str, Any] | None:
        """Smart-charging capabilities read at boot (GetConfiguration), None until known."""
        known = self._known.get(cp_id)
        return None if known is None or known.capabilities is None else dict(known.capabilities)

    def open_transactions(self, cp_id: str) -> dict[int, int | None]:
        """Open transactions of a charge point: ``{transaction id: connector id}``."""
        return dict(self._open_tx.get(cp_id, {}))

    @property
    def url(self) -> str:
        scheme = "wss" if self.tls_context() is not None else "ws"
        return f"{scheme}://{self.config.server.host}:{self.port}{self.config.server.path_prefix}/"

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert``/``tls_key`` (None: plain ws://).

        Raises ``OSError`` (``ssl.SSLError`` included) when the files cannot be loaded.
        """
        if self.ssl_context is not None:
            return self.ssl_context
        srv = self.config.server
        if srv.tls_cert is None or srv.tls_key is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(srv.tls_cert), str(srv.tls_key))
        self.ssl_context = ctx
        return ctx

    async def start(self) -> None:
        """Seed the store from config, load the caches, and bind the WebSocket server."""
        from websockets.asyncio.server import serve

        await self._db.run(self._seed_and_load)
        self._db.start()
        srv = self.config.server
        self._server = await serve(
            self._serve_connection,
            srv.host,
            srv.port,
            subprotocols=[SUBPROTOCOL],
            process_request=self._process_request,
            max_size=srv.max_frame_bytes,
            compression=None,
            ssl=self.tls_context(),
            server_header="evsite",
            # A reconnect storm opens thousands of connections at once: the default backlog (100) would drop
            # SYNs and cost every charger beyond it a one-second retransmission.
            backlog=4096,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log_event(log, "csms_listening", url=self.url, known_chargers=len(self._known))

    def _seed_and_load(self) -> None:
        now = self.clock.now()
        for c in self.config.chargers:
            self.store.register_charge_point(c.id, now, password_hash=c.password_hash)
        for t in self.config.id_tags:
            expiry = datetime.fromisoformat(t.expiry_date) if t.expiry_date else None
            self.store.upsert_id_tag(t.id_tag, t.status, expiry, t.parent_id_tag)
        self._known = {
            r.id: KnownCharger(r.password_hash, r.auto_registered, r.firmware_version, r.capabilities)
            for r in self.store.charge_points()
        }
        self._id_tags = {r.id_tag: (r.status, r.expiry_date, r.parent_id_tag) for r in self.store.id_tags()}
        for tx in self.store.transactions(open_only=True):
            self._open_tx.setdefault(tx.cp_id, {})[tx.id] = tx.connector_id

    async def apply_config(self, config: Config) -> None:
        """Take a reloaded config live: new or changed ``[[chargers]]`` and ``[[id_tags]]`` apply at once.

        The listening socket keeps its bind settings (a restart applies those; see ``controller.runtime``). A
        charger removed from the config stays known in the store: forgetting a charger is an explicit act.
        """
        self.config = config
        await self._db.run(self._seed_and_load)
        log_event(log, "csms_config_applied", chargers=len(config.chargers), id_tags=len(config.id_tags))

    async def stop(self) -> None:
        """Close every connection, finish background work, and commit what is buffered."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._db.close()
        log_event(log, "csms_stopped")

    async def flush(self) -> None:
        """Commit every buffered write now (tests call this before reading the store)."""
        await self._db.flush()
        await self._db.run(lambda: None)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run background work owned by the central system (cancelled at ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ connections

    async def _process_request(self, connection: Any, request: Any) -> Any:
        path = urlsplit(request.path).path
        prefix = self.config.server.path_prefix.rstrip("/") + "/"
        cp_id = unquote(path[len(prefix) :]) if path.startswith(prefix) else ""
        if not cp_id or "/" in cp_id:
            return self._refuse(connection, HTTPStatus.NOT_FOUND, "missing_cp_id", None, f"expected {prefix}<id>")
        if len(cp_id) > MAX_CP_ID:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "cp_id_too_long", cp_id[:MAX_CP_ID], "id too long")
        offered = {p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")}
        if SUBPROTOCOL not in offered:
            return self._refuse(connection, HTTPStatus.BAD_REQUEST, "no_subprotocol", cp_id, "ocpp1.6 required")
        known = self._known.get(cp_id)
        # A charger with a stored password always authenticates, even before the site turns require_auth on:
        # otherwise anyone could connect under its id without one.
        if self.config.server.require_auth or (known is not None and known.password_hash):
            if not await self._authenticated(cp_id, known, request.headers.get("Authorization")):
                resp = self._refuse(connection, HTTPStatus.UNAUTHORIZED, "auth_failed", cp_id, "bad credentials")
                resp.headers["WWW-Authenticate"] = 'Basic realm="evsite", charset="UTF-8"'
                return resp
        if known is None:
            if not self.allow_unknown:
                return self._refuse(connection, HTTPStatus.NOT_FOUND, "unknown_charger", cp_id, "unknown id")
            await self._db.run(self.store.register_charge_point, cp_id, self.clock.now(), auto_registered=True)
            self._known[cp_id] = KnownCharger(None, True)
            self.record_event(cp_id, "auto_registered")
            log_event(log, "charger_auto_registered", cp_id=cp_id)
        connection.evsite_cp_id = cp_id
        return None

    def _refuse(self, connection: Any, status: HTTPStatus, why: str, cp_id: str | None, text: str) -> Any:
        log_event(log, "connection_refused", logging.WARNING, cp_id=cp_id, status=int(status), why=why)
        return connection.respond(status, text + "\n")

    async def _authenticated(self, cp_id: str, known: KnownCharger | None, header: str | None) -> bool:
        """HTTP Basic, username = charge point id, password checked against the stored PBKDF2 hash.

        The slow hash runs in a thread; a verified password is remembered as a SHA-256 digest so that a
        reconnect storm does not cost 2,000 PBKDF2 runs.
        """
        if known is None or not known.password_hash or not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if user != cp_id:
            return False
        digest = hashlib.sha256(password.encode()).digest()
        key = (cp_id, known.password_hash)
        cached = self._auth_cache.get(key)
        if cached is not None:
            return hmac.compare_digest(cached, digest)
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, known.password_hash)
        if ok:
            self._auth_cache[key] = digest
        return ok

    async def _serve_connection(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosedError

        cp_id: str = ws.evsite_cp_id
        session = ChargePointSession(cp_id, ws, self)
        old = self._sessions.get(cp_id)
        self._sessions[cp_id] = session
        if old is not None:
            old.connection_lost()
            self.spawn(old.close(1000, "replaced by a new connection"))
            log_event(log, "connection_replaced", cp_id=cp_id)
        now = self.clock.now()
        self.touch(cp_id, now)
        self.record_event(cp_id, "connected", replaced=old is not None)
        self.bus.publish(ev.TOPIC_CONNECTION, ev.ConnectionEvent(cp_id, True, now))
        abnormal = False
        try:
            await session.run()
        except ConnectionClosedError:  # closed without a close frame, or with an error code
            abnormal = True
        finally:
            session.connection_lost()
            if self._sessions.get(cp_id) is session:
                del self._sessions[cp_id]
            code = ws.close_code
            sent = ws.protocol.close_sent
            too_large = code == 1009 or (sent is not None and sent.code == 1009)
            why = "frame_too_large" if too_large else (ws.close_reason or "closed")
            self.record_event(cp_id, "disconnected", close_code=code, reason=why, abnormal=abnormal)
            self.bus.publish(ev.TOPIC_CONNECTION, ev.ConnectionEvent(cp_id, False, self.clock.now(), why))
            log_event(log, "charger_disconnected", cp_id=cp_id, close_code=code, reason=why, abnormal=abnormal)

    # ------------------------------------------------------------------ commands

    async def send(
        self,
        cp_id: str,
        request: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (per-call timeout, part of the API)
        reason: str | None = None,
    ) -> Any:
        """Send a central-system-initiated OCPP 1.6 request (an ``ocpp.v16.call`` dataclass).

        Returns the matching ``ocpp.v16.call_result`` dataclass; raises a ``CsmsError`` otherwise.
        ``reason`` says why (kept with charging profiles in the store and the ``ocpp/profile`` event).
        """
        session = self.session(cp_id)
        action = type(request).__name__
        try:
            result = await session.call(request, timeout=timeout)
        except CsmsError as err:
            if action in _PROFILE_ACTIONS:
                self._record_profile(cp_id, action, request, f"error: {err}"[:60], reason)
            raise
        if action in _PROFILE_ACTIONS:
            self._record_profile(cp_id, action, request, str(getattr(result, "status", "")), reason)
        return result

    def _record_profile(self, cp_id: str, action: str, request: Any, status: str, reason: str | None) -> None:
        from evsite.ocppj.payloads import to_wire

        body = to_wire(request)
        connector_id = body.get("connectorId")
        profile = body.get("csChargingProfiles") if action == "SetChargingProfile" else body
        now = self.clock.now()
        self._db.submit_logged(self.store.add_profile, cp_id, action, connector_id, profile, status, reason, now)
        self.bus.publish(ev.TOPIC_PROFILE, ev.ProfileEvent(cp_id, action, connector_id, profile, status, reason, now))
        log_event(
            log, "profile_sent", cp_id=cp_id, action=action, connector_id=connector_id, status=status, reason=reason
        )

    # ------------------------------------------------------------------ handler side effects

    def touch(self, cp_id: str, now: datetime) -> None:
        self._db.batch.last_seen[cp_id] = now
        self._db.changed()

    def record_event(self, cp_id: str | None, kind: str, **data: Any) -> None:
        """Append to the event log (write-behind)."""
        self._db.batch.events.append({"at": self.clock.now(), "cp_id": cp_id, "kind": kind, "data": data or None})
        self._db.changed()

    def id_tag_info(self, id_tag: str) -> dict[str, Any]:
        """IdTagInfo for a driver's tag: Accepted/Blocked/Expired from the store, Invalid when unknown."""
        entry = self._id_tags.get(id_tag)
        if entry is None:
            return {"status": "Invalid"}
        status, expiry, parent = entry
        if expiry is not None and expiry <= self.clock.now():
            status = "Expired"
        info: dict[str, Any] = {"status": status}
        if expiry is not None:
            info["expiry_date"] = expiry.isoformat().replace("+00:00", "Z")
        if parent:
            info["parent_id_tag"] = parent
        return info

    async def set_id_tag(
        self, id_tag: str, status: str, expiry_date: datetime | None = None, parent_id_tag: str | None = None
    ) -> None:
        """Add or change a driver's tag (store and the in-memory cache used by Authorize)."""
        await self._db.run(self.store.upsert_id_tag, id_tag, status, expiry_date, parent_id_tag)
        self._id_tags[id_tag] = (status, expiry_date, parent_id_tag)

    async def on_boot(self, cp_id: str, vendor: str, model: str, kw: dict[str, Any], now: datetime) -> None:
        fw = kw.get("firmware_version")
        fields = {
            "vendor": vendor,
            "model": model,
            "firmware_version": fw,
            "serial_number": kw.get("charge_point_serial_number") or kw.get("charge_box_serial_number"),
            "last_boot": now,
        }
        self._db.batch.cp_fields.setdefault(cp_id, {}).update(fields)
        self.record_event(cp_id, "boot", vendor=vendor, model=model, firmware_version=fw)
        if self._open_tx.get(cp_id):
            closed = await self._db.run(self.store.record_boot, cp_id, now, **fields)
            for tx_id in closed:
                self._open_tx[cp_id].pop(tx_id, None)
                tx = await self._db.run(self.store.transaction, tx_id)
                self.bus.publish(
                    ev.TOPIC_TRANSACTION,
                    ev.TransactionEvent(
                        cp_id, tx.connector_id, tx_id, "stopped", tx.id_tag, tx.meter_stop, now, tx.stop_reason
                    ),
                )
                log_event(log, "transaction_closed_at_boot", cp_id=cp_id, transaction_id=tx_id)
        self.bus.publish(ev.TOPIC_BOOT, ev.BootEvent(cp_id, vendor, model, fw, now))
        known = self._known.setdefault(cp_id, KnownCharger(None, True))
        if known.capabilities is None or known.firmware_version != fw or self.config.server.probe_every_boot:
            known.firmware_version = fw
            self.spawn(self._probe_and_configure(cp_id))

    async def _probe_and_configure(self, cp_id: str) -> None:
        """After boot: read the smart-charging capabilities, then set the meter sampling from config."""
        from ocpp.v16 import call

        # Let the BootNotification answer go out first: the charger may not take calls before it.
        await asyncio.sleep(0)
        srv = self.config.server
        try:
            conf = await self.send(cp_id, call.GetConfiguration(key=list(CAPABILITY_KEYS)))
            caps: dict[str, Any] = dict.fromkeys(CAPABILITY_KEYS)
            for item in conf.configuration_key or []:
                if item.get("key") in caps:
                    caps[item["key"]] = _config_value(item.get("value"))
            await self._db.run(self.store.set_capabilities, cp_id, caps)
            self._known[cp_id].capabilities = caps
            self.bus.publish(ev.TOPIC_CAPABILITIES, ev.CapabilitiesEvent(cp_id, caps, self.clock.now()))
            log_event(log, "capabilities_read", cp_id=cp_id, **caps)
            for key, value in (
                ("MeterValueSampleInterval", str(srv.meter_value_sample_interval_s)),
                ("MeterValuesSampledData", ",".join(srv.meter_values_sampled_data)),
            ):
                res = await self.send(cp_id, call.ChangeConfiguration(key=key, value=value))
                self.record_event(cp_id, "configuration_changed", key=key, value=value, status=str(res.status))
        except CsmsError as err:
            self.record_event(cp_id, "probe_failed", error=str(err))
            log_event(log, "probe_failed", logging.WARNING, cp_id=cp_id, error=str(err))

    def on_status(
        self,
        cp_id: str,
        connector_id: int,
        status: str,
        error_code: str,
        info: str | None,
        vendor_error_code: str | None,
        at: datetime,
    ) -> None:
        self._db.batch.connectors[(cp_id, connector_id)] = {
            "cp_id": cp_id,
            "connector_id": connector_id,
            "status": status,
            "error_code": error_code,
            "info": info,
            "vendor_error_code": vendor_error_code,
            "updated_at": at,
        }
        self._db.changed()
        event = ev.StatusEvent(cp_id, connector_id, status, error_code, at, info)
        self.connector_status[(cp_id, connector_id)] = event
        self.bus.publish(ev.TOPIC_STATUS, event)

    def on_meter_values(
        self, cp_id: str, connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None:
        now = self.clock.now()
        rows = self._db.batch.meter_values
        for mv in meter_value:
            event, mv_rows = summarize_meter_value(cp_id, connector_id, transaction_id, mv, now)
            rows.extend(mv_rows)
            self.bus.publish(ev.TOPIC_METER, event)
        self._db.changed()

    async def on_start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        at: datetime,
        auth_status: str,
        reservation_id: int | None,
    ) -> int:
        tx_id, created = await self._db.run(
            self.store.start_transaction, cp_id, connector_id, id_tag, meter_start, at, auth_status, reservation_id
        )
        if created:
            self._open_tx.setdefault(cp_id, {})[tx_id] = connector_id
            self.bus.publish(
                ev.TOPIC_TRANSACTION,
                ev.TransactionEvent(cp_id, connector_id, tx_id, "started", id_tag, meter_start, at),
            )
        log_event(
            log,
            "transaction_started",
            cp_id=cp_id,
            transaction_id=tx_id,
            connector_id=connector_id,
            id_tag=id_tag,
            auth=auth_status,
            repeated=not created,
        )
        return tx_id

    async def on_stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        at: datetime,
        reason: str | None,
        id_tag: str | None,
        transaction_data: list[dict[str, Any]],
    ) -> None:
        connector = self._open_tx.get(cp_id, {}).pop(transaction_id, None)
        if transaction_data:
            self.on_meter_values(cp_id, connector or 0, transaction_id, transaction_data)
        row_id, known = await self._db.run(
            self.store.stop_transaction, cp_id, transaction_id, meter_stop, at, reason, id_tag
        )
        self.bus.publish(
            ev.TOPIC_TRANSACTION,
            ev.TransactionEvent(cp_id, connector, row_id, "stopped", id_tag, meter_stop, at, reason or "Local"),
        )
        log_event(
            log,
            "transaction_stopped",
            cp_id=cp_id,
            transaction_id=transaction_id,
            known=known,
            reason=reason or "Local",
        )

    def on_data_transfer(
        self, cp_id: str, vendor_id: str, message_id: str | None, data: str | None
    ) -> tuple[str, str | None]:
        """Vendor extensions registered in ``data_transfer_handlers``; others get UnknownVendorId."""
        handler = self.data_transfer_handlers.get(vendor_id)
        status, answer = ("UnknownVendorId", None) if handler is None else handler(cp_id, message_id, data)
        self.record_event(cp_id, "data_transfer", vendor_id=vendor_id, message_id=message_id, data=data, status=status)
        return status, answer

    def on_cp_status_field(self, cp_id: str, field: str, status: str) -> None:
        """Firmware / diagnostics status notifications: kept on the charge point and in the event log."""
        self._db.batch.cp_fields.setdefault(cp_id, {})[field] = status
        self.record_event(cp_id, field, status=status)


def _config_value(value: str | None) -> Any:
    """GetConfiguration values are strings; numbers become ints, lists stay comma-separated strings."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value
