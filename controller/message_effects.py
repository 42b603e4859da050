"""Side effects of the messages a charge point sends: what is stored, published and logged for each.

Why its own object: these are the central system's answers to "a charger said X" (status, meter values,
transactions, boot, data transfer, firmware/diagnostics notices) plus the in-memory views they keep up to date
(``connector_status``, open transactions, the id-tag cache behind Authorize). They share nothing with
admission or the socket lifecycle; the ``CentralSystem`` exposes these methods under the same names, which
is what ``controller.ocpp.session`` calls.

Writes go to the write-behind ``DbWriter`` except those an answer depends on (StartTransaction's id,
StopTransaction, boot-time closing of stale transactions), which are awaited.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from controller import events as ev
from controller.clock_skew import ClockEstimate, ClockSkew
from controller.liveness import Liveness
from controller.ocpp.session import summarize_meter_value
from controller.probing import probe_needed
from controller.registry import ChargerRegistry, KnownCharger
from controller.store import Store
from controller.store.writer import DbWriter
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.log import log_event
from evsite.ocppj.payloads import to_wire

log = logging.getLogger("controller.csms")

#: A charger's clock estimate is written to the store when it moves (as it is logged) and at least this often.
CLOCK_STORE_EVERY = timedelta(hours=1)

DataTransferHandler = Callable[[str, str | None, str | None], tuple[str, str | None]]


class MessageEffects:
    """What each charge-point message does to the store, the bus, the log and the in-memory views."""

    def __init__(
        self,
        db: DbWriter,
        store: Store,
        bus: EventBus,
        clock: Clock,
        registry: ChargerRegistry,
        liveness: Callable[[], Liveness],
        config: Callable[[], Config],
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        probe: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        self.db, self.store, self.bus, self.clock = db, store, bus, clock
        self.registry = registry
        self._liveness = liveness
        self._config = config
        self._spawn = spawn
        self._probe = probe
        self.data_transfer_handlers: dict[str, DataTransferHandler] = {}
        #: Latest StatusEvent per (charger, connector); ``stale`` once the charger went offline after it.
        self.connector_status: dict[tuple[str, int], ev.StatusEvent] = {}
        self.id_tags: dict[str, tuple[str, datetime | None, str | None]] = {}
        self.open_tx: dict[str, dict[int, int | None]] = {}  # cp_id -> {transaction id: connector id}
        self._connectors_of: dict[str, set[int]] = {}  # cp_id -> connector ids in connector_status
        #: each charger's clock against ours, from the timestamps it sends (``controller.clock_skew``)
        self.clocks: dict[str, ClockSkew] = {}
        self._clock_logged: dict[str, float] = {}  # cp_id -> offset last logged (s)
        #: the estimate as of each charger's newest sample (it carries itself forward: ``charger_time``)
        self._clock_est: dict[str, ClockEstimate] = {}
        self._clock_stored: dict[str, datetime] = {}  # cp_id -> when its estimate was last written to the store

    def record_profile(
        self,
        cp_id: str,
        action: str,
        request: Any,
        status: str,
        reason: str | None,
        valid_until: datetime | None = None,
    ) -> None:
        """A charging-profile request sent and its answer: stored, published on ``ocpp/profile``, logged.
        ``valid_until``: when the profile stops applying, in our clock (its ``validTo`` is the charger's)."""
        body = to_wire(request)
        connector_id = body.get("connectorId")
        profile = body.get("csChargingProfiles") if action == "SetChargingProfile" else body
        now = self.clock.now()
        self.db.batch.profiles.append(
            {"cp_id": cp_id, "action": action, "connector_id": connector_id, "profile": profile,
             "status": status, "reason": reason, "sent_at": now, "valid_until": valid_until}
        )  # fmt: skip
        self.db.commit_if_unbuffered()
        self.bus.publish(ev.TOPIC_PROFILE, ev.ProfileEvent(cp_id, action, connector_id, profile, status, reason, now))
        log_event(
            log, "profile_sent", cp_id=cp_id, action=action, connector_id=connector_id, status=status, reason=reason
        )

    def touch(self, cp_id: str, now: datetime) -> None:
        """The charger spoke: last seen (store, write-behind) and back online if it was not."""
        self.db.batch.last_seen[cp_id] = now
        self.db.changed()
        self._liveness().heard(cp_id, now)

    def clock_sample(self, cp_id: str, theirs: datetime, received: datetime) -> None:
        """A timestamp the charger sent, received at our ``received``: one more sample of its clock.

        The estimate is logged (``charger_clock_offset``) when first known and when it moves by a second or
        more (a warning from a minute off), so every ``validTo`` written in a charger's clock can be traced to
        the offset it used; ``limit_set`` carries the offset too.
        """
        skew = self.clocks.setdefault(cp_id, ClockSkew())
        skew.add(theirs, received)
        est = skew.estimate(received)
        assert est is not None
        self._clock_est[cp_id] = est
        # Thresholds in real seconds: on an accelerated clock, network delays stretch by the speed too.
        speed = float(getattr(self.clock, "speed", 1.0))
        last = self._clock_logged.get(cp_id)
        if last is None or abs(est.offset_s - last) >= 1.0 * speed:
            self._clock_logged[cp_id] = est.offset_s
            level = logging.WARNING if abs(est.offset_s) >= 60.0 * speed else logging.INFO
            self._store_clock(cp_id, est)
            log_event(log, "charger_clock_offset", level,
                      cp_id=cp_id, offset_s=round(est.offset_s, 3), drift_ppm=round(est.drift * 1e6, 1),
                      drift_fitted=est.drift_fitted, margin_s=round(est.margin_s, 3), samples=est.samples)  # fmt: skip

        elif received - self._clock_stored.get(cp_id, received) >= CLOCK_STORE_EVERY:
            self._store_clock(cp_id, est)

    def _store_clock(self, cp_id: str, est: ClockEstimate) -> None:
        """The estimate into the store (write-behind), margin taken off: what a restart starts from."""
        fields = self.db.batch.cp_fields.setdefault(cp_id, {})
        fields["clock_offset_s"], fields["clock_offset_at"] = est.offset_s - est.margin_s, est.at
        self._clock_stored[cp_id] = est.at
        self.db.changed()

    def seed_clock(self, cp_id: str, offset_s: float, at: datetime) -> None:
        """After a restart: a charger's stored offset as one sample (its margin grows with its age); no-op once
        the charger was heard."""
        if cp_id in self.clocks:
            return
        skew = self.clocks[cp_id] = ClockSkew()
        skew.add(at + timedelta(seconds=offset_s), at)
        est = skew.estimate(at)
        assert est is not None
        self._clock_est[cp_id] = est

    def anchor_clock(self, cp_id: str, at: datetime) -> None:
        """The charger is back (online again, or a new connection replaced its old one): what it sends first is
        what it buffered meanwhile, stamped long ago. Its bound so far (after a restart: the stored offset) is
        carried to ``at`` and those old stamps cannot push it out (``ClockSkew.anchor``)."""
        skew = self.clocks.get(cp_id)
        if skew is None:
            return
        skew.anchor(at)
        est = skew.estimate(at)
        if est is not None:
            self._clock_est[cp_id] = est

    def clock_estimate(self, cp_id: str) -> ClockEstimate | None:
        """The charger's clock as of its newest sample, valid for any instant through ``charger_time`` (its
        margin grows with the time since); None: no timestamp heard since it booted or we started."""
        return self._clock_est.get(cp_id)

    def on_liveness(self, event: ev.ChargerOnlineEvent) -> None:
        """Online state into the store; offline makes every last connector status of the charger stale; online
        anchors its clock estimate (``anchor_clock``)."""
        cp_id = event.cp_id
        if event.online:
            self.anchor_clock(cp_id, event.at)
        self.db.batch.cp_fields.setdefault(cp_id, {})["online"] = event.online
        self.record_event(cp_id, "online" if event.online else "offline", reason=event.reason)
        if not event.online:
            self.db.batch.stale_chargers.add(cp_id)
            # Only this charger's connectors: a reconnect storm takes thousands offline at once.
            for connector_id in self._connectors_of.get(cp_id, ()):
                key = (cp_id, connector_id)
                row = self.db.batch.connectors.get(key)
                if row is not None:
                    row["stale"] = True
                status = self.connector_status.get(key)
                if status is not None and not status.stale:
                    self.connector_status[key] = dataclasses.replace(status, stale=True)
        self.db.changed()

    def record_event(self, cp_id: str | None, kind: str, **data: Any) -> None:
        """Append to the event log (write-behind)."""
        self.db.batch.events.append({"at": self.clock.now(), "cp_id": cp_id, "kind": kind, "data": data or None})
        self.db.changed()

    def id_tag_info(self, id_tag: str) -> dict[str, Any]:
        """IdTagInfo for a driver's tag: Accepted/Blocked/Expired from the store, Invalid when unknown."""
        entry = self.id_tags.get(id_tag)
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
        await self.db.run(self.store.upsert_id_tag, id_tag, status, expiry_date, parent_id_tag)
        self.id_tags[id_tag] = (status, expiry_date, parent_id_tag)

    async def on_boot(self, cp_id: str, vendor: str, model: str, kw: dict[str, Any], now: datetime) -> None:
        fw = kw.get("firmware_version")
        # Chargers commonly set their clock from the BootNotification answer: older samples may no longer hold.
        self.clocks.pop(cp_id, None)
        self._clock_logged.pop(cp_id, None)
        self._clock_est.pop(cp_id, None)
        fields = {
            "clock_offset_s": None,  # (forgotten in the store too: a restart must not start from it)
            "clock_offset_at": None,
            "vendor": vendor,
            "model": model,
            "firmware_version": fw,
            "serial_number": kw.get("charge_point_serial_number") or kw.get("charge_box_serial_number"),
            "last_boot": now,
        }
        self.db.batch.cp_fields.setdefault(cp_id, {}).update(fields)
        self.record_event(cp_id, "boot", vendor=vendor, model=model, firmware_version=fw)
        if self.open_tx.get(cp_id):
            closed = await self.db.run(self.store.record_boot, cp_id, now, **fields)
            for tx_id in closed:
                self.open_tx[cp_id].pop(tx_id, None)
                tx = await self.db.run(self.store.transaction, tx_id)
                self.bus.publish(
                    ev.TOPIC_TRANSACTION,
                    ev.TransactionEvent(
                        cp_id, tx.connector_id, tx_id, "stopped", tx.id_tag, tx.meter_stop, now, tx.stop_reason
                    ),
                )
                log_event(log, "transaction_closed_at_boot", cp_id=cp_id, transaction_id=tx_id)
        self.bus.publish(ev.TOPIC_BOOT, ev.BootEvent(cp_id, vendor, model, fw, now))
        log_event(log, "charger_booted", cp_id=cp_id, vendor=vendor, model=model, firmware_version=fw)
        # A charger removed from the config while connected is not re-added here: it is refused next time.
        known = self.registry.known.get(cp_id) or KnownCharger(None, True)
        if probe_needed(known.capabilities, known.firmware_version, fw, self._config().server.probe_every_boot):
            known.firmware_version = fw
            self._spawn(self._probe(cp_id))

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
        self.db.batch.connectors[(cp_id, connector_id)] = {
            "cp_id": cp_id,
            "connector_id": connector_id,
            "status": status,
            "error_code": error_code,
            "info": info,
            "vendor_error_code": vendor_error_code,
            "updated_at": at,
            "stale": False,
        }
        self.db.commit_if_unbuffered()
        event = ev.StatusEvent(cp_id, connector_id, status, error_code, at, info)
        self.connector_status[(cp_id, connector_id)] = event
        self._connectors_of.setdefault(cp_id, set()).add(connector_id)
        self.bus.publish(ev.TOPIC_STATUS, event)

    def on_meter_values(
        self, cp_id: str, connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None:
        now = self.clock.now()
        rows = self.db.batch.meter_values
        for mv in meter_value:
            event, mv_rows = summarize_meter_value(cp_id, connector_id, transaction_id, mv, now)
            rows.extend(mv_rows)
            self.bus.publish(ev.TOPIC_METER, event)
        self.db.commit_if_unbuffered()

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
        tx_id, created = await self.db.run(
            self.store.start_transaction, cp_id, connector_id, id_tag, meter_start, at, auth_status, reservation_id
        )
        if created:
            self.open_tx.setdefault(cp_id, {})[tx_id] = connector_id
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
        connector = self.open_tx.get(cp_id, {}).pop(transaction_id, None)
        if transaction_data:
            self.on_meter_values(cp_id, connector or 0, transaction_id, transaction_data)
        row_id, known = await self.db.run(
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
        self.db.commit_if_unbuffered()
        return status, answer

    def on_cp_status_field(self, cp_id: str, field: str, status: str) -> None:
        """Firmware / diagnostics status notifications: kept on the charge point and in the event log."""
        self.db.batch.cp_fields.setdefault(cp_id, {})[field] = status
        self.record_event(cp_id, field, status=status)
        self.db.commit_if_unbuffered()
