"""The OCPP 1.6J central system: accepts charge points, authenticates them, answers them, persists, commands.

Public API (used by load management, the regulation dispatcher, the simulators' tests)::

    csms = CentralSystem(config, store, clock, bus)
    await csms.start()                     # binds config.server.host/port (port 0: ephemeral, see csms.port)
    csms.connected                         # connected charge point ids (a live set-like view)
    csms.online("CP1")                     # connected and heard within the heartbeat timeout
    csms.capabilities("CP1")               # smart-charging keys read at boot, or None
    csms.open_transactions("CP1")          # {transaction id: connector id}
    csms.connector_status[("CP1", 1)]      # latest StatusEvent per connector
    csms.clock_estimate("CP1")             # its clock against ours (controller.clock_skew), None until heard
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

- ``ocpp/online`` ``ChargerOnlineEvent``: a charger went offline (socket closed, heartbeat timeout) or back.

Who may connect is ``controller.admission`` (path, id rules, subprotocol, HTTP Basic through
``controller.password_gate``); the tables of known and connected chargers are ``controller.registry``; the
offline sweep is ``controller.liveness``; capability probing after boot is ``controller.probing``; what each
charger message stores, publishes and logs is ``controller.message_effects`` (exposed here under the names
``controller.ocpp.session`` calls: ``touch``, ``record_event``, ``id_tag_info``, ``on_boot``, ``on_status``,
``on_meter_values``, ``on_start_transaction``, ``on_stop_transaction``, ``on_data_transfer``,
``on_cp_status_field``, ``clock_sample``, plus ``config``, ``clock``, ``spawn`` and ``validate_responses``);
retention is ``controller.store.retention``. This module keeps the lifecycle, the connection loop and ``send``. A second
connection with the same id replaces the first (closed with 1000 "replaced").
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, KeysView
from datetime import datetime, timedelta
from typing import Any

from controller import events as ev
from controller.admission import SUBPROTOCOL, Admission
from controller.charger_ids import cp_id_problem
from controller.errors import CsmsError
from controller.liveness import Liveness
from controller.message_effects import MessageEffects
from controller.ocpp.session import ChargePointSession
from controller.password_gate import PasswordGate
from controller.probing import probe_and_configure
from controller.registry import ChargerRegistry, KnownCharger
from controller.store import Store
from controller.store.retention import prune
from controller.store.writer import DbWriter
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.log import log_event

log = logging.getLogger("controller.csms")

_PROFILE_ACTIONS = ("SetChargingProfile", "ClearChargingProfile")
#: How often retention runs (it prunes in small batches, so a run may take a while on a big store).
RETENTION_EVERY = timedelta(hours=6)
RETENTION_FIRST_AFTER = timedelta(minutes=10)
#: Longest a peer may take from TCP connect to an accepted WebSocket upgrade (TLS, auth queue included).
OPEN_TIMEOUT_S = 60.0


class CentralSystem:
    """The OCPP 1.6J server: lifecycle, ``send``, and the side effects of the charge points' messages."""

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
        self.registry = ChargerRegistry()
        self.gate = PasswordGate(clock, workers=config.server.auth_workers)
        self.admission = Admission(lambda: self.config, self.registry, self.gate, self._register_unknown)
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Told how every call sent to a charger ended: ``(action, seconds, outcome)`` (the API's /metrics).
        self.call_observers: list[Callable[[str, float, str], None]] = []
        self.db = DbWriter(store, max_unsaved_s=config.store.max_unsaved_s)
        fx = MessageEffects(self.db, store, bus, clock, self.registry, lambda: self.liveness, lambda: self.config,
                            self.spawn, lambda cp_id: probe_and_configure(self, cp_id))  # fmt: skip
        self.effects = fx
        self.liveness = Liveness(self.registry, clock, bus, lambda: self.config, fx.on_liveness)
        # The names the session calls (``controller.ocpp.session``) and the public views, served by ``fx``.
        self.data_transfer_handlers = fx.data_transfer_handlers
        self.connector_status = fx.connector_status
        self.touch, self.record_event, self.id_tag_info, self.set_id_tag = (
            fx.touch, fx.record_event, fx.id_tag_info, fx.set_id_tag
        )  # fmt: skip
        self.on_boot, self.on_status, self.on_meter_values = fx.on_boot, fx.on_status, fx.on_meter_values
        self.on_start_transaction, self.on_stop_transaction = fx.on_start_transaction, fx.on_stop_transaction
        self.on_data_transfer, self.on_cp_status_field = fx.on_data_transfer, fx.on_cp_status_field
        self.clock_sample, self.clock_estimate = fx.clock_sample, fx.clock_estimate
        self._server: Any = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> KeysView[str]:
        """Ids of the charge points connected right now: a live view (see ``ChargerRegistry.connected``)."""
        return self.registry.connected

    def session(self, cp_id: str) -> ChargePointSession:
        return self.registry.session(cp_id)  # type: ignore[no-any-return]

    def online(self, cp_id: str) -> bool:
        """Connected and heard from within the heartbeat timeout (see ``controller.liveness``)."""
        known = self.registry.known.get(cp_id)
        return known is not None and known.online

    def capabilities(self, cp_id: str) -> dict[str, Any] | None:
        """Smart-charging capabilities read at boot (GetConfiguration), None until known."""
        known = self.registry.known.get(cp_id)
        return None if known is None or known.capabilities is None else dict(known.capabilities)

    def open_transactions(self, cp_id: str) -> dict[int, int | None]:
        """Open transactions of a charge point: ``{transaction id: connector id}``."""
        return dict(self.effects.open_tx.get(cp_id, {}))

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

        await self._load(await self.db.run(self._seed, self.config, self.clock.now(), True))
        self.db.start()
        srv = self.config.server
        self._server = await serve(
            self._serve_connection,
            srv.host,
            srv.port,
            subprotocols=[SUBPROTOCOL],
            process_request=self.admission.process_request,
            max_size=srv.max_frame_bytes,
            compression=None,
            ssl=self.tls_context(),
            server_header="evsite",
            # A reconnect storm opens thousands of connections at once: the default backlog (100) would drop
            # SYNs and cost every charger beyond it a one-second retransmission.
            backlog=4096,
            # After a cold restart, logins queue for password verification (``controller.password_gate``); the
            # default 10 s opening-handshake limit would cut off the back of that queue.
            open_timeout=OPEN_TIMEOUT_S,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.spawn(self.liveness.run())
        if self.config.store.retention_days:
            self.spawn(self._retention_loop())
        log_event(log, "csms_listening", url=self.url, known_chargers=len(self.registry.known))

    def _seed(self, config: Config, now: datetime, starting: bool) -> tuple[list[Any], list[Any], list[Any]]:
        """On the writer thread: config chargers and tags into the store; returns what the caches load."""
        store = self.store
        store.sync_config_chargers([(c.id, c.password_hash) for c in config.chargers], now)
        store.sync_config_id_tags(
            [
                (t.id_tag, t.status, datetime.fromisoformat(t.expiry_date) if t.expiry_date else None,
                 t.parent_id_tag)
                for t in config.id_tags
            ]
        )  # fmt: skip
        if starting:
            store.mark_all_offline()
        open_tx = store.transactions(open_only=True) if starting else []
        return store.charge_points(), store.id_tags(), open_tx

    async def _load(self, loaded: tuple[list[Any], list[Any], list[Any]]) -> None:
        """On the loop: replace the known-charger and id-tag caches (keeping live state of known chargers)."""
        rows, tags, open_tx = loaded
        known: dict[str, KnownCharger] = {}
        removed: set[str] = set()
        limit = self.config.server.max_cp_id_length
        for r in rows:
            if r.removed_at is not None:
                removed.add(r.id)
                continue
            old = self.registry.known.get(r.id)
            k = KnownCharger(r.password_hash, r.auto_registered, r.firmware_version, r.capabilities, r.from_config)
            if old is not None:
                k.firmware_version, k.capabilities = old.firmware_version, old.capabilities
                k.last_heard, k.online = old.last_heard, old.online
            known[r.id] = k
            problem = cp_id_problem(r.id, limit)
            if problem is not None:
                self.admission.warn_nonconforming(r.id, problem)
        self.registry.known, self.registry.removed = known, removed
        self.effects.id_tags = {r.id_tag: (r.status, r.expiry_date, r.parent_id_tag) for r in tags}
        for tx in open_tx:
            self.effects.open_tx.setdefault(tx.cp_id, {})[tx.id] = tx.connector_id
        for r in rows:
            if r.clock_offset_s is not None and r.clock_offset_at is not None and r.id in known:
                self.effects.seed_clock(r.id, r.clock_offset_s, r.clock_offset_at)

    async def _register_unknown(self, cp_id: str) -> None:
        """Auto-registration (``allow_unknown_chargers``): stored and recorded as such."""
        await self.db.run(self.store.register_charge_point, cp_id, self.clock.now(), auto_registered=True)
        self.registry.known[cp_id] = KnownCharger(None, True)
        self.record_event(cp_id, "auto_registered")
        log_event(log, "charger_auto_registered", cp_id=cp_id)

    async def apply_config(self, config: Config) -> None:
        """Take a reloaded config live: ``[[chargers]]``, ``[[id_tags]]`` and the ``[server]`` settings read
        per connection (``allow_unknown_chargers``, ``require_auth``, id rules, heartbeat) apply at once.

        The store follows the config: a tag removed from it is deleted (answers Invalid), a charger removed
        from it is marked removed (refused at its next connection; its history stays). The listening socket
        keeps its bind settings (a restart applies those; see ``controller.runtime``).
        """
        self.config = config
        self.db.max_unsaved_s = config.store.max_unsaved_s
        await self._load(await self.db.run(self._seed, config, self.clock.now(), False))
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
        self.gate.close()
        await self.db.close()
        log_event(log, "csms_stopped")

    async def flush(self) -> None:
        """Commit every buffered write now (tests call this before reading the store)."""
        await self.db.flush()
        await self.db.run(lambda: None)

    def call_done(self, action: str, seconds: float, outcome: str) -> None:
        """A call to a charger ended (``evsite.ocppj`` times it): tell whoever watches call latency."""
        for observe in self.call_observers:
            observe(action, seconds, outcome)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run background work owned by the central system (cancelled at ``stop``)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def prune_retention(self) -> dict[str, int]:
        """Delete what is older than ``[store] retention_days`` now (see ``controller.store.retention``)."""
        cutoff = self.clock.now() - timedelta(days=self.config.store.retention_days)
        counts = await prune(self.db, self.store, cutoff)
        log_event(log, "retention_pruned", cutoff=cutoff.isoformat(), **counts)
        return counts

    async def _retention_loop(self) -> None:
        # The first run waits a while: right after a start the chargers' reconnect storm has the CPU.
        await self.clock.sleep(RETENTION_FIRST_AFTER.total_seconds())
        while True:
            if self.config.store.retention_days:
                await self.prune_retention()
            await self.clock.sleep(RETENTION_EVERY.total_seconds())

    # ------------------------------------------------------------------ connections

    async def _serve_connection(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

        cp_id: str = ws.evsite_cp_id
        session = ChargePointSession(cp_id, ws, self)
        old = self.registry.attach(cp_id, session)
        if old is not None:
            old.connection_lost()
            self.spawn(old.close(1000, "replaced by a new connection"))
            log_event(log, "connection_replaced", cp_id=cp_id)
        now = self.clock.now()
        if old is not None:  # no offline in between: the anchor an online transition sets, here
            self.effects.anchor_clock(cp_id, now)
        self.record_event(cp_id, "connected", replaced=old is not None)
        self.liveness.heard(cp_id, now, "connected")
        self.touch(cp_id, now)
        self.bus.publish(ev.TOPIC_CONNECTION, ev.ConnectionEvent(cp_id, True, now))
        log_event(log, "charger_connected", cp_id=cp_id, address=_address(ws), replaced=old is not None)
        abnormal = False
        try:
            await session.run()
        except ConnectionClosedOK:  # closed normally while we were answering: an ordinary goodbye
            pass
        except ConnectionClosedError:  # closed without a close frame, or with an error code
            abnormal = True
        finally:
            current = self.registry.detach(cp_id, session)
            code = ws.close_code
            sent = ws.protocol.close_sent
            too_large = code == 1009 or (sent is not None and sent.code == 1009)
            why = "frame_too_large" if too_large else (ws.close_reason or "closed")
            now = self.clock.now()
            self.record_event(cp_id, "disconnected", close_code=code, reason=why, abnormal=abnormal)
            self.bus.publish(ev.TOPIC_CONNECTION, ev.ConnectionEvent(cp_id, False, now, why))
            log_event(log, "charger_disconnected", cp_id=cp_id, close_code=code, reason=why, abnormal=abnormal)
            if current:
                self.liveness.dropped(cp_id, now, "disconnected")

    # ------------------------------------------------------------------ commands

    async def send(
        self,
        cp_id: str,
        request: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (per-call timeout, part of the API)
        reason: str | None = None,
        valid_until: datetime | None = None,
    ) -> Any:
        """Send a central-system-initiated OCPP 1.6 request (an ``ocpp.v16.call`` dataclass).

        Returns the matching ``ocpp.v16.call_result`` dataclass; raises a ``CsmsError`` otherwise.
        ``reason`` says why (kept with charging profiles in the store and the ``ocpp/profile`` event);
        ``valid_until`` is when a profile stops applying in our clock (stored beside it: its ``validTo`` may be
        written in the charger's clock).
        """
        session = self.session(cp_id)
        action = type(request).__name__
        try:
            result = await session.call(request, timeout=timeout)
        except CsmsError as err:
            if action in _PROFILE_ACTIONS:
                self.effects.record_profile(cp_id, action, request, f"error: {err}"[:60], reason, valid_until)
            raise
        if action in _PROFILE_ACTIONS:
            status = str(getattr(result, "status", ""))
            self.effects.record_profile(cp_id, action, request, status, reason, valid_until)
        return result


def _address(ws: Any) -> str | None:
    try:
        return str(ws.remote_address[0])
    except (AttributeError, IndexError, TypeError):
        return None
