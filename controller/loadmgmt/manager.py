"""The live load-management loop: events in, one allocation for every connector, limits out over OCPP.

Why this shape (NEC 625.42 automatic load management): the site must stay under its service limit while
chargers disconnect, reject profiles or the controller restarts. So:

- every input (transactions, status, charger meter values, building meter, connections, the plan, an
  operator's limit) only updates state and wakes the loop; the loop allocates *all* connectors at once with
  ``planning.allocation.allocate`` (debounced, and at least every ``[site] period_s``);
- what a connector may be drawing is tracked conservatively (``ConnectorTrack.may_draw_a``): offline,
  unacknowledged and unknown connectors are fixed draws the allocation works around;
- decreases are sent and acknowledged before any increase, then the allocation is recomputed, so the sum of
  what may be in force never exceeds the limit during a change;
- a building reading older than ``[meter] stale_after_s`` counts as an overload: the plan's conservative
  forecast (or the last reading, whichever is higher) replaces it and no limit is raised until fresh data;
- every limit carries the allocation's reason (``log_event`` and the store's profile record);
- outside the cheapest time-of-use tier, cars whose departure and energy are known are held to what their
  deadline needs (``tariff_tiers``); the daily re-plan recomputes the plan's ceiling from the building meter
  history recorded here (``meter_history``, ``replan``);
- on an accelerated clock ``response_s`` and ``stale_after_s`` are at least ``[site] min_real_s`` real
  seconds: a reading 0.5 s late in real time is 30 simulated seconds late at speed 60, and is not stale.

The fail-safe (``profiles`` module docstring) is a permanent TxDefaultProfile at a current sized so the
site stays within its limit with every connector at it and the building at its expected peak; live limits
expire after ``[site] profile_validity_s``: that window is the documented tolerance when the controller dies.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np

from controller import events as ev
from controller.clock_skew import ClockEstimate
from controller.errors import CallErrorReceived, ChargePointNotConnected, CsmsError
from controller.loadmgmt import discharge as dis
from controller.loadmgmt import profiles as prof
from controller.loadmgmt.connector_track import ConnectorTrack
from controller.loadmgmt.history_peak import HistoryPeak
from controller.loadmgmt.meter_history import LoadBuckets
from controller.loadmgmt.plan_schedule import PlanError, PlanFile
from controller.loadmgmt.replan import LiveReplanner
from controller.loadmgmt.site_model import (
    OVERRIDE_ROW,
    PLAN_ROW,
    ConnectorSpec,
    build_constraints,
    building_load,
    continuous_limit_kw,
    site_limit_kw,
    specs_for,
    uniform_safe_current_a,
)
from controller.loadmgmt.tariff_tiers import TierCalendar, deadline_hold_a, hold_reason, tier_or_none
from controller.ocpp.session import stamp_of
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.departure_update import DepartureUpdate
from evsite.log import log_event
from evsite.meter_reading import MeterReading
from evsite.site_state import (
    ConnectorEnvelope,
    ConnectorState,
    RegulationSetpoint,
    SiteLimitOverride,
    SiteState,
    TariffTier,
)
from planning.allocation.model import Constraints, Sessions, Snapshot
from planning.allocation.policies import allocate

log = logging.getLogger("controller.loadmgmt")
T = TypeVar("T")

#: Real seconds a SetChargingProfile may take before it counts as unacknowledged.
CALL_TIMEOUT_S = 10.0
#: A charger's stamps (meter values, transaction start) are moved to our clock only when its clock is off by
#: more than this (real seconds): ``LoadManager._ours``.
STAMP_SHIFT_S = 60.0
#: Chargers a round talks to at once. Why a bound: a round over 10,000 chargers started 10,000 tasks in one go,
#: and every message the chargers sent meanwhile waited behind all of their first steps (MeterValues answered
#: after 1-3 s). With 500 at a time the calls still overlap far more than a charger's round trip needs (500
#: calls in flight at 300 ms over a cellular link is ~1,700 calls/s), and the chargers' own messages take
#: turns with them.
CHARGERS_AT_ONCE = 500


async def for_each_bounded(items: list[T], work: Callable[[T], Awaitable[None]], limit: int) -> None:
    """``await work(item)`` for every item, at most ``limit`` at once, in order of the list.

    A fixed pool of workers instead of one task per item: the event loop never holds more than ``limit`` of
    them. The first exception propagates at once and the other workers go on with the rest (as with ``gather``).
    """
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(min(limit, len(items)))))


@dataclass
class ChargerControl:
    """Per charger: how its profiles are shaped and which fallbacks it needed."""

    cp_id: str
    stack: int
    fail_safe_a: float | None = None  # fail-safe acknowledged by the charger (None: not yet)
    fail_safe_rejected: bool = False
    uncontrollable: bool = False
    fallback: str | None = None
    ceiling_sent: bool = False


class LoadManager:
    """``await run()`` until cancelled; ``site_state()`` for the API; ``rebalance()`` for one round."""

    def __init__(
        self,
        config: Config,
        csms: Any,
        bus: EventBus,
        clock: Clock,
        *,
        on_replan: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.csms = csms
        self.bus = bus
        self.clock = clock
        self.on_replan = on_replan
        self.tracks: dict[tuple[str, int], ConnectorTrack] = {}
        #: The same tracks by charger: connection and profile events name a charger, and scanning every track
        #: for each of them was quadratic in a reconnect storm (10,000 chargers, 40,000 events).
        self._tracks_of: dict[str, list[ConnectorTrack]] = {}
        self.chargers: dict[str, ChargerControl] = {}
        self.reading: MeterReading | None = None
        self.override: SiteLimitOverride | None = None
        self.plan = PlanFile(config.site.plan, config.site.plan_building, config.site.timezone)
        self.started_at = clock.now()
        self.fail_safe_a = 0.0
        self.rounds = 0
        self.last_limits: dict[tuple[str, int], ConnectorEnvelope] = {}
        #: per connector, the most it may feed back this round (A; ``discharge`` module): absent = 0
        self.discharge_a: dict[tuple[str, int], float] = {}
        #: id tags whose car did not resume after a 0 A pause: their sessions get the minimum instead of a pause
        self.no_resume_tags: set[str] = set()
        self.departures: Any = None  # planning.allocation.departure.DepartureHistory, from the store
        #: the building peak the meter's stored history supports (``meter_history``), read at start and replan
        self.history_peak: HistoryPeak | None = None
        self.fail_safe_source = "none"
        self._specs: list[ConnectorSpec] = []
        self._constraints: Constraints | None = None
        self._stale_model = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        #: limits to read back with GetCompositeSchedule after the round (off the decrease/increase path)
        self._readbacks: dict[str, tuple[ConnectorTrack, prof.Shape]] = {}
        self._readback_task: asyncio.Task[None] | None = None
        self.history = LoadBuckets()
        self.replanner = LiveReplanner(self)
        self.tiers = self._tier_calendar(config)
        self.tier: TariffTier | None = None
        self._holds: np.ndarray | None = None
        self.rebuild()

    # ------------------------------------------------------------------ model

    def rebuild(self) -> None:
        """Rebuild connectors and constraints (config change, new connectors seen, limit or plan change)."""
        self._stale_model = False
        self._poll_plan()
        specs = specs_for(self.config, self.tracks.keys())
        for s in specs:
            key = (s.cp_id, s.connector_id)
            if key not in self.tracks:
                self._add_track(ConnectorTrack(s))
            else:
                self.tracks[key].spec = s
        self._specs = specs
        self._specs_by_cp: dict[str, list[ConnectorSpec]] = {}
        for spec in specs:
            self._specs_by_cp.setdefault(spec.cp_id, []).append(spec)
        self._constraints = build_constraints(self.config, specs, self.limit_kw())
        self.fail_safe_a = self._size_fail_safe()

    def _add_track(self, t: ConnectorTrack) -> None:
        self.tracks[(t.spec.cp_id, t.spec.connector_id)] = t
        self._tracks_of.setdefault(t.spec.cp_id, []).append(t)

    def limit_kw(self) -> float:
        ov = self.override
        active = ov is not None and ov.expires_at > self.clock.now()
        return site_limit_kw(self.config, ov.limit_kw if active and ov is not None else None)

    def _size_fail_safe(self) -> float:
        """Fail-safe current: every connector at it, the building at its expected peak, within every row.

        Sized on the site's configured limit, not on an operator's temporary override: a fail-safe is a
        permanent profile, and re-sending it to every charger would delay the decreases an override needs.
        The building's peak comes from ``[site] building_peak_kw``, else the plan, else the building meter's
        stored history (``meter_history``: long and complete enough, plus a margin), else it is unknown and the
        fail-safe is 0 A; which one was used is logged (``fail_safe_sized``) when it changes.
        """
        site = self.config.site
        peak, source = self._building_peak()
        if peak is None or self._constraints is None or not self._specs:
            safe = 0.0
        else:
            c = build_constraints(self.config, self._specs, site_limit_kw(self.config))
            load = building_load(c, self.config, peak + site.reserve_kw)
            safe = uniform_safe_current_a(c, load, site.min_current_a)
        if site.fail_safe_a is not None and site.fail_safe_a < safe:
            safe, source = site.fail_safe_a, f"[site] fail_safe_a (below what {source} allows)"
        if source != self.fail_safe_source or abs(safe - self.fail_safe_a) > 1e-9:
            log_event(log, "fail_safe_sized", logging.INFO if peak is not None else logging.WARNING,
                      fail_safe_a=round(safe, 2), building_peak_kw=None if peak is None else round(peak, 3),
                      source=source)  # fmt: skip
        self.fail_safe_source = source
        return safe

    def _building_peak(self) -> tuple[float | None, str]:
        """The building's expected peak (kW) for the fail-safe, and where it comes from."""
        site = self.config.site
        if site.ev_only_meter:
            return 0.0, "[site] ev_only_meter (no building on this service)"
        if site.building_peak_kw is not None:
            return site.building_peak_kw, "[site] building_peak_kw"
        sched = self.plan.schedule
        if sched is not None:
            peak = sched.building_peak_kw or (max(sched.building_kw) if sched.building_kw else None)
            if peak is not None:
                return peak, f"plan {sched.source}"
        hist = self.history_peak
        if hist is not None and hist.peak_kw is not None:
            return hist.peak_kw, hist.why
        missing = hist.why if hist is not None else "no building meter history read"
        return None, f"none (no building_peak_kw, no plan, {missing}): 0 A"

    def load_meter_history(self) -> None:
        """The building peak the stored meter history supports (at start and with the daily re-plan): one
        aggregate query over its 15-minute rows (``meter_history.peak_summary``)."""
        from controller.loadmgmt.history_peak import HISTORY_DAYS, peak_from_history
        from controller.loadmgmt.meter_history import BUCKET_S, peak_summary

        store = getattr(self.csms, "store", None)
        if store is None:
            return
        now = self.clock.now()
        first, seen_kw, buckets = peak_summary(store, now - timedelta(days=HISTORY_DAYS))
        self.history_peak = peak_from_history(first, seen_kw, buckets, now, bucket_s=BUCKET_S)

    def _store_later(self, method: str, *args: Any) -> None:
        """A store write that nothing waits for: on the central system's writer thread (write-behind) when
        running in the event loop, else (a caller without a loop) at once."""
        store, db = getattr(self.csms, "store", None), getattr(self.csms, "db", None)
        if store is None or db is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            getattr(store, method)(*args)
            return
        db.submit_logged(getattr(store, method), *args)

    def _poll_plan(self) -> bool:
        try:
            changed = self.plan.poll()
        except PlanError as err:
            log_event(log, "plan_rejected", logging.WARNING, error=str(err))
            return False
        if changed and self.plan.schedule is not None:
            log_event(log, "plan_loaded", source=self.plan.schedule.source, tz=self.plan.schedule.tz)
        return changed

    # ------------------------------------------------------------------ inputs

    def wake(self) -> None:
        self._wake.set()

    def building_kw(self, now: datetime) -> tuple[float, bool]:
        """The building load to allocate against and whether the meter is stale (then it is conservative)."""
        if self.config.site.ev_only_meter:
            return 0.0, False
        r = self.reading
        stale = r is None or (now - r.ts).total_seconds() > self.sim_s(self.config.meter.stale_after_s)
        reading_kw = (
            None
            if r is None
            else r.power_kw - (self.ev_kw_in_reading(now) if self.config.site.meter_includes_evs else 0.0)
        )
        if not stale and reading_kw is not None:
            return max(reading_kw, 0.0), False
        candidates = [reading_kw] if reading_kw is not None else []
        if self.plan.schedule is not None:
            forecast = self.plan.schedule.building_forecast_kw(now)
            if forecast is not None:
                candidates.append(forecast)
        if self.config.site.building_peak_kw is not None:
            candidates.append(self.config.site.building_peak_kw)
        if self.history_peak is not None and self.history_peak.peak_kw is not None:
            candidates.append(self.history_peak.peak_kw)
        if not candidates:
            return self.limit_kw(), True  # nothing known: the building is assumed to take the whole limit
        # No meter at all (no MQTT meter, and none ever heard on the bus): the conservative figure is all there
        # will ever be, so it is not "stale" and does not block increases forever; a meter that was heard and
        # went silent, or an MQTT meter not heard yet, is stale and blocks increases until fresh data.
        no_meter = r is None and not self.config.mqtt.enabled
        return max(candidates), not no_meter

    def ev_kw_in_reading(self, now: datetime) -> float:
        """The chargers' share of a total-site reading: per connector the lower of its last metered power and
        what its limit now allows. Over-estimating the EVs would under-estimate the building, so a limit
        lowered since the last meter value counts, not the older, higher reading. Not a strict bound: a car
        that tapered below both since its last meter value makes the building look smaller by the difference,
        which ``reserve_kw`` and a short ``MeterValueSampleInterval`` must cover (README)."""
        total = 0.0
        for t in self.tracks.values():
            if t.power_w is None or not t.active:
                continue
            limit = t.in_force_a(now, self._fail_safe_for(t.spec))
            cap_kw = (limit if limit is not None else t.spec.max_a) * t.spec.kw_per_a
            total += min(t.power_w / 1000.0, cap_kw)
        return total

    def handle(self, topic: str, payload: Any) -> None:
        """Fold one bus event into the state; wake the loop when it changes what the allocation sees."""
        if topic == topics.METER_SITE and isinstance(payload, MeterReading):
            self.reading = payload
            self._record_building(payload)
            self.wake()
        elif isinstance(payload, ev.TransactionEvent):
            self._on_transaction(payload)
        elif isinstance(payload, ev.ConnectionEvent | ev.ChargerOnlineEvent):
            # A socket that closed, or a charger silent past its heartbeat timeout: its draw is fixed until back.
            online = payload.connected if isinstance(payload, ev.ConnectionEvent) else payload.online
            for t in self._tracks_of.get(payload.cp_id, ()):
                t.online = online
            self.chargers.setdefault(payload.cp_id, self._control(payload.cp_id))
            self.wake()
        elif isinstance(payload, ev.BootEvent):
            ctl = self.chargers.setdefault(payload.cp_id, self._control(payload.cp_id))
            ctl.fail_safe_a = None  # re-send the fail-safe after every boot (a replaced unit has none)
            self.wake()
        elif isinstance(payload, ev.StatusEvent):
            self._on_status(payload)
        elif isinstance(payload, ev.MeterEvent):
            self._on_meter(payload)
        elif isinstance(payload, ev.ProfileEvent):
            self._on_foreign_profile(payload)
        elif isinstance(payload, SiteLimitOverride):
            self._on_override(payload)
        elif isinstance(payload, RegulationSetpoint):
            t = self.tracks.get((payload.cp_id, payload.connector_id))
            if t is not None:
                t.regulation_a, t.regulation_at, t.regulation_reason = payload.limit_a, payload.at, payload.reason
                self.wake()
        elif isinstance(payload, DepartureUpdate):
            for t in self._tracks_of.get(payload.cp_id, ()):
                if t.tx_id == payload.transaction_id:
                    t.departure = payload.departure_at
                    if payload.energy_kwh is not None:
                        t.energy_requested_kwh = payload.energy_kwh
                    log_event(log, "departure_set", cp_id=payload.cp_id, transaction_id=payload.transaction_id,
                              departure=payload.departure_at.isoformat(), who=payload.who)  # fmt: skip
                    self.wake()
        elif topic == topics.LOADMGMT_REPLAN:
            self.replan(str(payload))

    def _track(self, cp_id: str, connector_id: int) -> ConnectorTrack | None:
        key = (cp_id, connector_id)
        if key not in self.tracks and connector_id >= 1:
            self._add_track(ConnectorTrack(specs_for(self.config, [key])[-1], online=cp_id in self.csms.connected))
            # Rebuilt once before the next allocation, not per connector: a storm of N new chargers would
            # otherwise rebuild the site model N times (quadratic; 18.7 s for 2,000 connectors).
            self._stale_model = True
            self.wake()
        return self.tracks.get(key)

    def _ours(self, cp_id: str, stamped: datetime) -> datetime:
        """A time the charger stamped, in our clock: shifted by its clock's offset once that is known to exceed
        ``STAMP_SHIFT_S`` (real seconds), else as stamped. The estimate is a lower bound, short of the true offset
        by the least message delay, so shifting every stamp would place samples later than they were taken by
        that delay (on an accelerated clock, delays of minutes: a car flagged over a limit it had seconds to
        meet); a clock that far off is a larger error than the delay."""
        clock = self.csms.clock_estimate(cp_id)
        if clock is None or abs(clock.offset_s) < STAMP_SHIFT_S * float(getattr(self.clock, "speed", 1.0)):
            return stamped
        return clock.ours(stamped)

    def _ensure_model(self) -> None:
        """Rebuild the site model if connectors appeared since the last build."""
        if self._stale_model:
            self.rebuild()

    def _on_transaction(self, e: ev.TransactionEvent) -> None:
        if e.connector_id is None:
            t = next((t for t in self._tracks_of.get(e.cp_id, ()) if t.tx_id == e.transaction_id), None)
        else:
            t = self._track(e.cp_id, e.connector_id)
        if t is None:
            return
        if e.kind == "started":
            t.tx_id, t.id_tag, t.tx_start = e.transaction_id, e.id_tag, self._ours(e.cp_id, e.at)
            t.meter_start_wh = float(e.meter_wh) if e.meter_wh is not None else t.energy_wh
            self._estimate_departure(t)
        else:
            t.clear_session()
        self.wake()

    def load_departure_history(self) -> None:
        """Stays per id tag from the store's closed transactions (``planning.allocation.departure``)."""
        from planning.allocation.departure import DepartureHistory

        store = getattr(self.csms, "store", None)
        if store is None:
            return
        rows = ((tx.id_tag, tx.start_time, tx.stop_time) for tx in store.transactions())
        self.departures = DepartureHistory.from_stays(rows, self.config.site.timezone)
        log_event(log, "departure_history_loaded", stays=len(self.departures.stay_s))

    def _estimate_departure(self, t: ConnectorTrack) -> None:
        import pandas as pd

        if self.departures is None or t.tx_start is None:
            return
        est = self.departures.estimate(
            t.id_tag or "", pd.Timestamp(t.tx_start), site_default_s=self.config.site.departure_default_h * 3600.0
        )
        t.departure_estimate, t.departure_basis = est.departure.floor("us").to_pydatetime(), est.basis

    def _on_status(self, e: ev.StatusEvent) -> None:
        if e.connector_id < 1:
            return
        t = self._track(e.cp_id, e.connector_id)
        if t is None:
            return
        t.status = e.status
        t.online = True
        if e.status == "Charging":
            t.paused_mid_session, t.resumed_at = False, None
        elif e.status == "SuspendedEV" and t.resumed_at is not None:
            # Paused while charging, given current again, and the car still takes nothing: it does not resume.
            t.resumed_at = None
            t.flags.add("car did not resume after a pause")
            if t.id_tag:
                self.no_resume_tags.add(t.id_tag)
                self._persist_no_resume(t.id_tag, e.cp_id, e.connector_id)
            log_event(log, "car_does_not_resume", logging.WARNING, cp_id=e.cp_id, connector_id=e.connector_id,
                      id_tag=t.id_tag)  # fmt: skip

    def _persist_no_resume(self, id_tag: str, cp_id: str, connector_id: int) -> None:
        """Kept in the store (write-behind) so a restarted controller still gives this car the minimum."""
        self._store_later("remember_no_resume", id_tag, cp_id, connector_id, self.clock.now())

    def _on_meter(self, e: ev.MeterEvent) -> None:
        if e.connector_id < 1:
            return
        t = self._track(e.cp_id, e.connector_id)
        if t is None:
            return
        if e.energy_wh is not None:
            t.energy_wh = e.energy_wh
        t.power_w = e.power_w
        t.measured_a = e.current_a
        if e.current_a is None:
            return
        response_s = self.sim_s(self.config.site.response_s)
        at = self._ours(e.cp_id, e.at)  # the charger stamped it; limits changed on our clock
        limit = t.limit_for_compliance(at, response_s)
        limit = None if limit is None else max(limit, 0.0)  # a discharge limit allows no import at all
        tol = self.config.site.noncompliance_tolerance_a
        if limit is not None and e.current_a > limit + tol:
            if t.over_since is None:
                t.over_since = at
            elif (at - t.over_since).total_seconds() >= response_s and not t.noncompliant:
                t.noncompliant = True
                log_event(log, "charger_noncompliant", logging.WARNING, cp_id=e.cp_id, connector_id=e.connector_id,
                          measured_a=e.current_a, limit_a=limit)  # fmt: skip
                self.wake()
        else:
            t.over_since = None
            if t.noncompliant:
                t.noncompliant = False
                log_event(log, "charger_compliant_again", cp_id=e.cp_id, connector_id=e.connector_id)

    def _on_foreign_profile(self, e: ev.ProfileEvent) -> None:
        """A profile sent by someone else changes what a charger may draw: count it, conservatively.

        Which profile wins on the charger depends on purposes and stack levels, so the connector is assumed to
        draw up to the foreign limit as well as its own (a fixed draw) until the profile is gone: a TxProfile
        with its transaction, a TxDefaultProfile when cleared.
        """
        if (e.reason or "").startswith("load management:") or e.status != "Accepted":
            return
        targets = [
            t for t in self._tracks_of.get(e.cp_id, ()) if not e.connector_id or t.spec.connector_id == e.connector_id
        ]
        if e.action == "ClearChargingProfile":
            for t in targets:
                t.foreign_a, t.foreign_reason, t.foreign_tx_only = None, "", False
                t.flags.discard("profile sent outside load management")
            self.wake()
            return
        prof_doc = e.profile or {}
        purpose = prof_doc.get("chargingProfilePurpose")
        if purpose not in ("TxProfile", "TxDefaultProfile"):
            return  # a ChargePointMaxProfile only lowers what a charger may draw
        try:
            sched = prof_doc["chargingSchedule"]
            limit = max(float(p["limit"]) for p in sched["chargingSchedulePeriod"])
            unit = sched.get("chargingRateUnit", "A")
        except (KeyError, TypeError, ValueError):
            return
        for t in targets:
            amps = limit if unit == "A" else limit / (t.spec.voltage_v * t.spec.phases)
            t.foreign_a = max(t.foreign_a or 0.0, min(amps, t.spec.max_a))
            t.foreign_reason = e.reason or "profile sent outside load management"
            t.foreign_tx_only = purpose == "TxProfile"
            t.flags.add("profile sent outside load management")
        log_event(log, "foreign_profile_counted", logging.WARNING, cp_id=e.cp_id, connector_id=e.connector_id,
                  purpose=purpose, limit=limit, unit=unit, reason=e.reason)  # fmt: skip
        self.wake()

    def _on_override(self, o: SiteLimitOverride) -> None:
        cap = continuous_limit_kw(self.config)
        applied = min(o.limit_kw, cap)
        self.override = SiteLimitOverride(applied, o.expires_at, o.who)
        log_event(log, "site_limit_override", logging.WARNING if applied < o.limit_kw else logging.INFO,
                  who=o.who, requested_kw=o.limit_kw, applied_kw=applied, continuous_kw=round(cap, 3),
                  expires_at=o.expires_at.isoformat())  # fmt: skip
        self.rebuild()
        self.wake()

    def apply_config(self, config: Config) -> None:
        """A validated config change: rebuild the site; rating and limit changes are logged with who."""
        old = self.config
        self.config = config
        if old.service != config.service or old.site.limit_kw != config.site.limit_kw:
            log_event(
                log,
                "site_rating_changed",
                logging.WARNING,
                who="config.toml edit",
                old_limit_kw=round(site_limit_kw(old), 3),
                new_limit_kw=round(site_limit_kw(config), 3),
            )
        if old.site.plan != config.site.plan or old.site.plan_building != config.site.plan_building:
            self.plan = PlanFile(config.site.plan, config.site.plan_building, config.site.timezone)
        if old.tariff != config.tariff or old.site.timezone != config.site.timezone:
            self.tiers = self._tier_calendar(config)  # boundary hours that are new fire after a restart
            self.switch_tier(self.clock.now())
        self.rebuild()
        self.wake()

    def replan(self, who: str) -> None:
        """The daily (or requested) re-plan: re-read the plan file, then recompute its ceiling from the stored
        meter history off the event loop (``replan``: the switch happens when that finishes)."""
        log_event(log, "replan_requested", who=who)
        if self.on_replan is not None:
            self.on_replan(who)
        self.load_departure_history()
        self.load_meter_history()
        self._poll_plan()
        self.rebuild()  # the plan or the meter history may size the fail-safe differently
        self.replanner.start(who)
        self.wake()

    def sim_s(self, setting_s: float) -> float:
        """A duration setting in this clock's seconds, at least ``[site] min_real_s`` real seconds of it."""
        return max(setting_s, self.config.site.min_real_s * float(getattr(self.clock, "speed", 1.0)))

    def _record_building(self, r: MeterReading) -> None:
        """Keep the building's own load for the daily re-plan (``meter_history``: 15-minute rows in the store)."""
        site = self.config.site
        db = getattr(self.csms, "db", None)
        if site.ev_only_meter or db is None:
            return
        kw = r.power_kw - (self.ev_kw_in_reading(r.ts) if site.meter_includes_evs else 0.0)
        rows = self.history.add(r.meter_id, r.ts, kw)
        if rows:
            self._store_later("add_events", rows)

    @staticmethod
    def _tier_calendar(config: Config) -> TierCalendar | None:
        from planning.errors import PlanningError
        from planning.tariff import tariff_from_config

        try:
            return TierCalendar(tariff_from_config(config.tariff), config.site.timezone)
        except PlanningError as err:
            log_event(log, "tariff_unusable", logging.WARNING, error=str(err), effect="no tariff tiers")
            return None

    def switch_tier(self, at: datetime) -> None:
        """The clockwork's tier boundary (and start, config change): publish the tier if it changed."""
        tier, err = tier_or_none(self.tiers, at)
        if err is not None:
            log_event(log, "tariff_tier_unknown", logging.WARNING, error=err, effect="no tier hold")
        old = self.tier
        self.tier = tier
        if tier is None or (old is not None and (old.name, old.cents_per_kwh) == (tier.name, tier.cents_per_kwh)):
            return
        log_event(log, "tariff_tier", tier=tier.name, cents_per_kwh=tier.cents_per_kwh, cheap=tier.cheap,
                  since=tier.since.isoformat(), at=at.isoformat(), tariff=tier.tariff)  # fmt: skip
        self.bus.publish(topics.LOADMGMT_TARIFF, tier)
        self.wake()

    def _control(self, cp_id: str) -> ChargerControl:
        return ChargerControl(cp_id, self.config.site.live_stack_level)

    # ------------------------------------------------------------------ allocation

    def snapshot(self, now: datetime) -> tuple[Snapshot, float, bool]:
        """The allocation's input now; also the building load used and whether the meter is stale."""
        self._ensure_model()
        assert self._constraints is not None
        site = self.config.site
        specs = self._specs
        n = len(specs)
        s = Sessions.empty(n, min_a=site.min_current_a)
        s.max_a = np.array([c.max_a for c in specs], float)
        s.kw_per_a = np.array([c.kw_per_a for c in specs], float)
        default_stay = site.departure_default_h * 3600.0
        for i, c in enumerate(specs):
            t = self.tracks[(c.cp_id, c.connector_id)]
            ctl = self.chargers.get(c.cp_id)
            s.no_pause[i] = c.no_pause or (t.id_tag is not None and t.id_tag in self.no_resume_tags)
            s.active[i] = t.active
            if t.active and t.tx_start is not None:
                s.arrival_s[i] = (t.tx_start - now).total_seconds()
                dep = t.departure or t.departure_estimate or (t.tx_start + timedelta(seconds=default_stay))
                s.departure_s[i] = max((dep - now).total_seconds(), 60.0)
                s.energy_delivered_kwh[i] = t.energy_delivered_kwh()
                s.energy_requested_kwh[i] = t.energy_requested_kwh
            fixed = (not t.online) or t.unacked or t.assumed_a is None or t.noncompliant or t.foreign_a is not None
            if ctl is not None and ctl.uncontrollable:
                s.fixed_a[i] = c.max_a
            elif fixed:
                s.fixed_a[i] = t.may_draw_a(now, self._fail_safe_for(c))
        self._holds = None
        if site.tariff_hold and self.tier is not None and not self.tier.cheap:
            # Outside the cheap tier a car is held to what its deadline needs: its maximum this round.
            holds = deadline_hold_a(s, site.departure_margin_min * 60.0)
            s.max_a = np.where(np.isnan(holds), s.max_a, holds)
            self._holds = holds
        c = self._constraints
        ceiling = self.plan.schedule.ceiling_kw(now) if self.plan.schedule is not None else None
        if ceiling is not None:
            c = c.with_row(PLAN_ROW, s.kw_per_a, ceiling)
        ov = self.override
        if ov is not None and ov.expires_at > now:
            c = c.with_row(OVERRIDE_ROW, s.kw_per_a, self.limit_kw())
        building, stale = self.building_kw(now)
        unc = building_load(c, self.config, building + site.reserve_kw)
        if ov is not None and ov.expires_at > now:
            unc[-1] = building + site.reserve_kw
        return Snapshot(c, s, unc, period_s=site.period_s), building, stale

    def _fail_safe_for(self, spec: ConnectorSpec) -> float:
        ctl = self.chargers.get(spec.cp_id)
        if ctl is not None and ctl.fail_safe_rejected:
            return spec.max_a  # no fail-safe on the charger: it falls back to its rating
        if spec.fail_safe_a is not None:
            return min(spec.fail_safe_a, self.fail_safe_a)
        return self.fail_safe_a

    async def rebalance(self) -> None:
        """One round: fail-safes where missing, then decreases (acknowledged) before increases."""
        async with self._lock:
            self._ensure_model()
            if self.override is not None and self.override.expires_at <= self.clock.now():
                log_event(log, "site_limit_override_expired", who=self.override.who)
                self.override = None
                self.rebuild()
            await self._send_fail_safes()
            for _round in range(3):
                now = self.clock.now()
                snap, _building, stale = self.snapshot(now)
                alloc = allocate(snap, self.config.site.policy)
                reasons = self._tier_reasons(alloc.limit_a, alloc.reasons, snap, now)
                decreases, rest = self._plan_sends(snap, alloc.limit_a, reasons, now, stale)
                if decreases:
                    await self._send_all(decreases, now)
                    continue
                await self._send_all(rest, now)
                break
            self.rounds += 1
            self._publish_limits()
            self._start_readbacks()

    def _tier_reasons(self, limit_a: np.ndarray, reasons: list[str], snap: Snapshot, now: datetime) -> list[str]:
        """Name the tariff tier in the reason of every limit the tier's hold decided."""
        holds, tier = self._holds, self.tier
        if holds is None or tier is None:
            return reasons
        out = list(reasons)
        for i in np.flatnonzero(~np.isnan(holds) & (limit_a >= holds - 0.15) & (limit_a > 0)):
            departure = now + timedelta(seconds=float(snap.sessions.departure_s[i]))
            out[i] = hold_reason(tier, float(limit_a[i]), departure, self.config.site.timezone)
        return out

    def _start_readbacks(self) -> None:
        """Read back the limits of this round in the background (one at a time per charger, chargers at once)."""
        if not self._readbacks or (self._readback_task is not None and not self._readback_task.done()):
            return
        by_cp: dict[str, list[tuple[ConnectorTrack, prof.Shape]]] = {}
        for t, shape in self._readbacks.values():
            by_cp.setdefault(t.spec.cp_id, []).append((t, shape))
        self._readbacks = {}

        async def one(items: list[tuple[ConnectorTrack, prof.Shape]]) -> None:
            for t, shape in items:
                await self._read_back(t, shape)

        async def all_chargers() -> None:
            await for_each_bounded(list(by_cp.values()), one, CHARGERS_AT_ONCE)

        self._readback_task = asyncio.create_task(all_chargers(), name="loadmgmt-readback")

    def _plan_sends(
        self, snap: Snapshot, limit_a: np.ndarray, reasons: list[str], now: datetime, stale: bool
    ) -> tuple[list[tuple[ConnectorTrack, float, str]], list[tuple[ConnectorTrack, float, str]]]:
        site = self.config.site
        decreases: list[tuple[ConnectorTrack, float, str]] = []
        rest: list[tuple[ConnectorTrack, float, str]] = []
        refresh_before = timedelta(seconds=site.profile_validity_s / 2)
        self.discharge_a = self._discharge_bounds(now, stale)
        for i, spec in enumerate(self._specs):
            t = self.tracks[(spec.cp_id, spec.connector_id)]
            ctl = self.chargers.get(spec.cp_id)
            if not t.online or spec.cp_id not in self.csms.connected or (ctl is not None and ctl.uncontrollable):
                self._describe(t, self._held_reason(t, ctl, now))
                continue
            if t.assumed_a is None:
                decreases.append((t, 0.0, "controller (re)start: state unknown, paused until acknowledged"))
                continue
            if t.unacked:
                decreases.append((t, t.assumed_a, "re-sent: the previous limit was not acknowledged"))
                continue
            fail_safe = self._fail_safe_for(spec)
            current = t.in_force_a(now, fail_safe)
            assert current is not None
            fixed = not np.isnan(snap.sessions.fixed_a[i])
            target = current if fixed else float(limit_a[i])
            reason = self._held_reason(t, ctl, now) if fixed else reasons[i]
            if stale and target > current:
                target, reason = current, "meter stale: no increase until fresh data"
            t.granted_a = target  # the envelope the regulation aggregator may use (``loadmgmt/limits``)
            target, reason = self._regulated(t, target, reason, now)
            # A live limit below the fail-safe that is due for its refresh rises to the fail-safe if the refresh
            # lands after validTo: that refresh is a decrease from what will be in force, and is acknowledged
            # before any increase of this round (else the others' increases and this rise can overlap).
            due = t.valid_until is not None and t.valid_until - now <= refresh_before
            after_expiry = max(current, fail_safe) if due else current  # never below ``current``
            if target < after_expiry - 1e-6:
                decreases.append((t, target, reason))
            elif target > current + 1e-6 or t.valid_until is None or due:
                rest.append((t, target, reason))
            else:
                self._describe(t, reason)  # the limit in force is kept: it is this round's decision now
        return decreases, rest

    def _describe(self, t: ConnectorTrack, reason: str) -> None:
        """Say why a limit that is not re-sent is what it is now (logged when that changes, so the limit in
        force stays traceable to the decision that keeps it, not to the one that sent it)."""
        if reason == t.reason:
            return
        t.reason = reason
        log_event(log, "limit_kept", cp_id=t.spec.cp_id, connector_id=t.spec.connector_id, limit_a=t.assumed_a,
                  reason=reason)  # fmt: skip

    def _held_reason(self, t: ConnectorTrack, ctl: ChargerControl | None, now: datetime) -> str:
        """Why a connector the allocation cannot change draws what it is assumed to draw, now."""
        if ctl is not None and ctl.uncontrollable and ctl.fallback:
            return ctl.fallback
        fail_safe = self._fail_safe_for(t.spec)
        if t.assumed_a is None:
            why = f"state unknown: its maximum {t.spec.max_a:.1f} A is reserved"
        elif t.valid_until is not None and now >= t.valid_until:
            why = f"live limit expired: {max(t.assumed_a, fail_safe):.1f} A reserved (the fail-safe or its last limit)"
        elif t.valid_until is not None:
            why = f"its last limit {t.assumed_a:.1f} A holds until {t.valid_until:%H:%M:%S} UTC, then its fail-safe"
        else:
            why = f"its last limit {t.assumed_a:.1f} A"
        if not t.online or t.spec.cp_id not in self.csms.connected:
            return f"charger offline: {why}"
        if t.unacked:
            return f"not acknowledged: {why}"
        if t.noncompliant:
            return f"drawing over its limit: {t.measured_a or 0.0:.1f} A measured is reserved"
        if t.foreign_a is not None:
            return f"a profile sent outside load management allows {t.foreign_a:.1f} A: reserved ({why})"
        return why

    def _discharge_bounds(self, now: datetime, stale: bool) -> dict[tuple[str, int], float]:
        """How much each connector may feed back this round (``discharge`` module): only connectors whose
        charger declared discharge twice, with a car and an acknowledged limit; the building's fresh load
        (less the reserve) plus ``[site] export_limit_kw`` shared among them."""
        site = self.config.site
        by_id = {c.id: c for c in self.config.chargers}
        eligible = []
        for key, t in self.tracks.items():
            ch = by_id.get(t.spec.cp_id)
            ctl = self.chargers.get(t.spec.cp_id)
            if ch is None or not t.active or not t.online or t.unacked or t.assumed_a is None:
                continue
            if (ctl is not None and ctl.uncontrollable) or not dis.may_discharge(
                ch.bidirectional, self.csms.capabilities(t.spec.cp_id)
            ):
                continue
            eligible.append((key, t.spec))
        if not eligible:
            return {}
        # those already discharging first (a thin allowance is not moved from car to car), then a stable order
        eligible.sort(key=lambda e: (not (self.tracks[e[0]].assumed_a or 0.0) < 0, e[0]))
        building = 0.0 if stale else max(self.building_kw(now)[0] - site.reserve_kw, 0.0)
        specs = [s for _, s in eligible]
        bounds = dis.discharge_bounds_a([s.max_a * s.kw_per_a for s in specs], [s.kw_per_a for s in specs],
                                        building + site.export_limit_kw,
                                        [min(site.min_current_a, s.max_a) * s.kw_per_a for s in specs])  # fmt: skip
        return {key: float(b) for (key, _), b in zip(eligible, bounds, strict=True)}

    def _regulated(self, t: ConnectorTrack, target: float, reason: str, now: datetime) -> tuple[float, str]:
        """Apply a fresh regulation setpoint below load management's own limit (never above: it always wins).

        A setpoint older than a live profile's validity is ignored (the aggregator stopped); a negative one
        (discharge) is applied down to the connector's discharge bound of this round, which is 0 (so 0 A is
        sent) unless its charger declared discharge (``evsite.discharge``).
        """
        if t.regulation_a is None or t.regulation_at is None:
            return target, reason
        if (now - t.regulation_at).total_seconds() > self.config.site.profile_validity_s:
            return target, reason
        floor = -self.discharge_a.get((t.spec.cp_id, t.spec.connector_id), 0.0)
        wanted = max(t.regulation_a, floor)
        if wanted >= target:
            return target, reason
        if wanted < 0:
            return wanted, (f"regulation discharge {-wanted:.1f} A within load management's discharge bound "
                            f"{-floor:.1f} A ({t.regulation_reason})")  # fmt: skip
        return (
            wanted,
            f"regulation setpoint {wanted:.1f} A within load management's {target:.1f} A ({t.regulation_reason})",
        )

    async def _send_all(self, sends: list[tuple[ConnectorTrack, float, str]], now: datetime) -> None:
        by_cp: dict[str, list[tuple[ConnectorTrack, float, str]]] = {}
        for item in sends:
            by_cp.setdefault(item[0].spec.cp_id, []).append(item)

        async def one_charger(items: list[tuple[ConnectorTrack, float, str]]) -> None:
            for t, amps, reason in items:
                await self._send_live(t, amps, reason)

        await for_each_bounded(list(by_cp.values()), one_charger, CHARGERS_AT_ONCE)

    def _shape(self, spec: ConnectorSpec, ctl: ChargerControl) -> prof.Shape:
        caps = self.csms.capabilities(spec.cp_id)
        return prof.Shape.from_capabilities(caps, spec.voltage_v, spec.phases, ctl.stack)

    async def _send_live(self, t: ConnectorTrack, amps: float, reason: str) -> None:
        """SetChargingProfile with fallbacks (stack level 0); the outcome updates what the connector may draw."""
        spec = t.spec
        ctl = self.chargers.setdefault(spec.cp_id, self._control(spec.cp_id))
        validity = self.config.site.profile_validity_s
        shape = self._shape(spec, ctl)
        stacks = [shape.max_stack_level] + ([0] if shape.max_stack_level != 0 else [])
        sent_at = self.clock.now()
        before = t.assumed_a
        t.unconfirmed(amps, reason)
        # validTo in the charger's own clock (early side of the estimate), the expiry in ours beside it
        clock = self.csms.clock_estimate(spec.cp_id)
        valid_until = prof.common_expiry(sent_at, validity)
        valid_s = (valid_until - sent_at).total_seconds()
        for stack in stacks:
            profile = dis.live_profile(shape, spec.connector_id, amps, sent_at, valid_s, stack, clock)
            status = await self._set(spec.cp_id, spec.connector_id, profile, reason, amps, valid_until, clock)
            if status == "Accepted":
                if stack != ctl.stack:
                    ctl.stack = stack
                    ctl.fallback = f"stack level {stack}"
                    log_event(log, "profile_fallback", logging.WARNING, cp_id=spec.cp_id, fallback=ctl.fallback)
                self._note_pause(t, amps, before)
                t.set_limit(amps, self.clock.now(), valid_until, reason)
                # Read back what changed (a refresh of the same limit needs no second call).
                if self.config.site.readback and (before is None or abs(before - amps) > 1e-9):
                    self._readbacks[t.spec.key] = (t, shape)
                return
            if status in ("lost", "NotSupported"):
                break
        if status == "lost":
            return  # stays unacknowledged: assumed at the higher of old and new, retried next round
        ctl.uncontrollable = True
        ctl.fallback = "all profiles refused: its maximum is reserved"
        t.reason = ctl.fallback
        log_event(log, "profile_fallback", logging.ERROR, cp_id=spec.cp_id, fallback=ctl.fallback, answer=status)

    def _note_pause(self, t: ConnectorTrack, amps: float, before: float | None) -> None:
        """Remember a pause of a charging car and its resumption, to spot cars that do not resume."""
        minimum = self.config.site.min_current_a
        if 0 <= amps < minimum and t.active and t.status == "Charging":  # a discharge (< 0) is no pause
            t.paused_mid_session = True
        elif amps >= minimum and t.paused_mid_session and (before or 0.0) < minimum:
            t.resumed_at = self.clock.now()

    async def _set(
        self,
        cp_id: str,
        connector_id: int,
        profile: dict[str, Any],
        reason: str,
        amps: float,
        valid_until: datetime | None = None,
        clock: ClockEstimate | None = None,
    ) -> str:
        """SetChargingProfile; ``valid_until`` (our clock) is stored beside it, ``clock`` is the charger clock
        estimate its times were written in (logged: None means they are in ours)."""
        from ocpp.v16 import call

        try:
            res = await self.csms.send(
                cp_id,
                call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile),
                timeout=CALL_TIMEOUT_S,
                reason=f"load management: {reason}"[:250],
                valid_until=valid_until,
            )
        except CallErrorReceived as err:
            log_event(log, "limit_refused", logging.WARNING, cp_id=cp_id, connector_id=connector_id, error=str(err))
            return "NotSupported" if err.code in ("NotSupported", "NotImplemented") else "Rejected"
        except (ChargePointNotConnected, CsmsError) as err:
            log_event(log, "limit_unacknowledged", logging.WARNING, cp_id=cp_id, connector_id=connector_id,
                      error=str(err))  # fmt: skip
            return "lost"
        status = str(res.status)
        log_event(log, "limit_set", cp_id=cp_id, connector_id=connector_id, limit_a=amps, status=status,
                  stack_level=profile["stackLevel"], reason=reason, valid_to=profile.get("validTo"),
                  clock_offset_s=None if clock is None else round(clock.offset_s, 3))  # fmt: skip
        return status

    async def _read_back(self, t: ConnectorTrack, shape: prof.Shape) -> None:
        from ocpp.v16 import call

        asked_at_a = t.assumed_a  # a round may change the limit while the charger answers: either may be in force
        try:
            res = await self.csms.send(
                t.spec.cp_id,
                call.GetCompositeSchedule(connector_id=t.spec.connector_id, duration=60, charging_rate_unit=shape.unit),
                timeout=CALL_TIMEOUT_S,
            )
        except CsmsError as err:
            t.flags.add("no readback")
            log_event(log, "readback_failed", logging.DEBUG, cp_id=t.spec.cp_id, error=str(err))
            return
        # The answer's scheduleStart is the charger's clock when it answered: an answer is not queued behind the
        # charger's buffered messages, so it is a tight sample of its clock (``controller.clock_skew``).
        start = stamp_of(getattr(res, "schedule_start", None))
        clock_sample = getattr(self.csms, "clock_sample", None)
        if start is not None and clock_sample is not None:
            clock_sample(t.spec.cp_id, start, self.clock.now())
        got = prof.composite_limit_a(res, shape)
        if got is None or t.assumed_a is None:
            return
        # The composite may be lower (a ChargePointMaxProfile, the rating) but never higher than what was set, or
        # than the fail-safe once the live limit's expiry has passed (the controller counts that too).
        in_force = t.in_force_a(self.clock.now(), self._fail_safe_for(t.spec))
        allowed = max(in_force if in_force is not None else t.assumed_a, asked_at_a if asked_at_a is not None else 0.0)
        if got > allowed + 0.2:
            t.flags.add("readback mismatch")
            log_event(log, "readback_mismatch", logging.WARNING, cp_id=t.spec.cp_id, connector_id=t.spec.connector_id,
                      set_a=t.assumed_a, composite_a=round(got, 2))  # fmt: skip
        else:
            t.flags.discard("readback mismatch")

    async def _send_fail_safes(self) -> None:
        async def one(item: tuple[str, ChargerControl]) -> None:
            cp_id, ctl = item
            specs = self._specs_by_cp.get(cp_id, [])
            if not specs:
                return
            amps = min(self._fail_safe_for(s) for s in specs) if not ctl.fail_safe_rejected else self.fail_safe_a
            if ctl.fail_safe_a is not None and abs(ctl.fail_safe_a - amps) < 1e-9:
                return
            shape = prof.Shape.from_capabilities(self.csms.capabilities(cp_id), specs[0].voltage_v,
                                                 specs[0].phases, 0)  # fmt: skip
            clock = self.csms.clock_estimate(cp_id)
            profile = prof.fail_safe_profile(shape, amps, self.clock.now(), clock)
            status = await self._set(cp_id, 0, profile, f"fail-safe {amps:.1f} A (every connector at it fits)", amps,
                                     clock=clock)  # fmt: skip
            if status == "Accepted":
                ctl.fail_safe_a, ctl.fail_safe_rejected = amps, False
            elif status != "lost":
                ctl.fail_safe_rejected = True
                ctl.fail_safe_a = amps
                log_event(log, "fail_safe_refused", logging.ERROR, cp_id=cp_id, answer=status)
            await self._send_ceiling(cp_id, ctl, specs, shape)

        connected = self.csms.connected
        await for_each_bounded(
            [(cp, ctl) for cp, ctl in self.chargers.items() if cp in connected], one, CHARGERS_AT_ONCE
        )

    async def _send_ceiling(self, cp_id: str, ctl: ChargerControl, specs: list[ConnectorSpec], shape: Any) -> None:
        """ChargePointMaxProfile only where the charger's own circuit cannot carry all its connectors."""
        circuit = specs[0].circuit
        if ctl.ceiling_sent or circuit is None:
            return
        panel = next(p for p in self.config.site.panels if p.id == circuit)
        sharing = [s for s in self._specs if s.circuit == circuit]
        if {s.cp_id for s in sharing} != {cp_id}:
            return  # shared circuit: the live allocation holds it, a fixed ceiling would be arbitrary
        ceiling = panel.continuous_load_factor * panel.rating_a
        if ceiling >= sum(s.max_a for s in specs):
            return
        full = prof.Shape(shape.unit, 0, specs[0].voltage_v, specs[0].phases)
        clock = self.csms.clock_estimate(cp_id)
        status = await self._set(cp_id, 0, prof.ceiling_profile(full, ceiling, self.clock.now(), clock),
                                 f"circuit {circuit} ceiling {ceiling:.1f} A", ceiling, clock=clock)  # fmt: skip
        ctl.ceiling_sent = status == "Accepted"

    def _publish_limits(self) -> None:
        limits = {
            # load management's own limit, before a regulation setpoint lowered it (else the grant would ratchet
            # down to the aggregator's last setpoint); never above what the charger may be drawing under it
            (t.spec.cp_id, t.spec.connector_id): ConnectorEnvelope(
                self._grant_a(t), self.discharge_a.get((t.spec.cp_id, t.spec.connector_id), 0.0)
            )
            for t in self.tracks.values()
        }
        if limits != self.last_limits:
            self.last_limits = limits
            self.bus.publish(topics.LOADMGMT_LIMITS, types.MappingProxyType(dict(limits)))

    @staticmethod
    def _grant_a(t: ConnectorTrack) -> float:
        """What the aggregator may use on ``t``: load management's limit when acknowledged, else 0."""
        if t.assumed_a is None or t.unacked:
            return 0.0
        if t.granted_a is not None and t.regulation_a is not None:
            return t.granted_a
        return max(t.assumed_a, 0.0)

    # ------------------------------------------------------------------ state

    @staticmethod
    def _why(t: ConnectorTrack) -> str:
        """The reason shown for a connector's limit (API, dashboard, MQTT)."""
        if t.assumed_a is None and t.foreign_a is not None:
            return t.foreign_reason
        if t.assumed_a is None and not t.online and not t.unacked:
            return "no profile sent"  # never seen on line since the controller started
        return t.reason + (f" [{', '.join(sorted(t.flags))}]" if t.flags else "")

    def site_state(self) -> SiteState:
        now = self.clock.now()
        building, stale = self.building_kw(now)
        ev_kw = sum((t.power_w or 0.0) for t in self.tracks.values() if t.active) / 1000.0
        known = self.reading is not None or self.config.site.ev_only_meter
        limit = self.limit_kw()
        total = building + ev_kw if known else None
        period = self.plan.schedule.period(now) if self.plan.schedule is not None else None
        return SiteState(
            at=now,
            building_kw=building if known else None,
            ev_kw=ev_kw,
            total_kw=total,
            limit_kw=limit,
            headroom_kw=(limit - total) if total is not None else None,
            plan_period=period,
            meter_stale=stale,
            tariff_tier=self.tier.label if self.tier is not None else None,
            connectors=[
                ConnectorState(
                    t.spec.cp_id,
                    t.spec.connector_id,
                    t.assumed_a if t.assumed_a is not None else t.foreign_a,
                    self._why(t),
                    t.online,
                    t.status,
                    None if t.power_w is None else t.power_w / 1000.0,
                )
                for t in sorted(self.tracks.values(), key=lambda t: t.spec.key)
            ],
        )

    # ------------------------------------------------------------------ running

    def restore(self) -> None:
        """After a (re)start: the limits last acknowledged, from the store (``restore`` module)."""
        from controller.loadmgmt.restore import last_accepted

        store = getattr(self.csms, "store", None)
        if store is None:
            return
        live, safe = last_accepted(store)
        self.no_resume_tags |= {row.id_tag for row in store.no_resume_tags()}
        now = self.clock.now()
        for sent in live:
            t = self.tracks.get((sent.cp_id, sent.connector_id))
            if t is None:
                continue
            amps = sent.limit if sent.unit == "A" else sent.limit / (t.spec.voltage_v * t.spec.phases)
            t.set_limit(amps, now, sent.valid_to, "restored from the store after a restart")
        for sent in safe:
            ctl = self.chargers.setdefault(sent.cp_id, self._control(sent.cp_id))
            specs = self._specs_by_cp.get(sent.cp_id)
            if specs:
                spec = specs[0]
                ctl.fail_safe_a = sent.limit if sent.unit == "A" else sent.limit / (spec.voltage_v * spec.phases)
        log_event(log, "loadmgmt_restored", live_limits=len(live), fail_safes=len(safe),
                  no_resume_tags=len(self.no_resume_tags))  # fmt: skip

    def seed_from_csms(self) -> None:
        """After a (re)start: open transactions and connected chargers the central system already knows."""
        self.restore()
        self.load_departure_history()
        self.load_meter_history()
        # Each open transaction's id tag, start and meter start too (one query): a car known not to resume after
        # a pause is known by its tag, and the departure estimate counts from the real start, not the restart.
        store = getattr(self.csms, "store", None)
        stored = {tx.id: tx for tx in store.transactions(open_only=True)} if store is not None else {}
        for cp_id in {s.cp_id for s in self._specs} | set(self.csms.connected):
            for tx_id, conn in self.csms.open_transactions(cp_id).items():
                if conn is not None and (t := self._track(cp_id, conn)) is not None:
                    t.tx_id, t.tx_start = tx_id, self.clock.now()
                    row = stored.get(tx_id)
                    if row is not None:
                        t.id_tag = row.id_tag
                        t.tx_start = row.start_time or t.tx_start
                        t.meter_start_wh = float(row.meter_start) if row.meter_start is not None else None
                        self._estimate_departure(t)
            if cp_id in self.csms.connected:
                self.chargers.setdefault(cp_id, self._control(cp_id))
                for t in self._tracks_of.get(cp_id, ()):
                    t.online = True
        self.rebuild()  # new connectors, and a fail-safe the meter history may now size

    async def run(self) -> None:
        """Consume events and rebalance (debounced, and every ``period_s``) until cancelled."""
        from controller.loadmgmt.clockwork import Clockwork

        subs = [
            self.bus.subscribe(topics.OCPP_ALL),
            self.bus.subscribe(topics.METER_SITE),
            self.bus.subscribe(topics.LOADMGMT_SITE_LIMIT),
            self.bus.subscribe(topics.LOADMGMT_REPLAN),
            self.bus.subscribe(topics.LOADMGMT_DEPARTURE),
            self.bus.subscribe(topics.REGULATION_SETPOINTS),
        ]
        self.seed_from_csms()
        self.switch_tier(self.clock.now())
        clockwork = Clockwork(self, self.clock)
        self._tasks = [asyncio.create_task(self._pump(s), name=f"loadmgmt-{s.pattern}") for s in subs]
        self._tasks += clockwork.tasks()
        site = self.config.site
        if not (self.config.mqtt.enabled or site.ev_only_meter or site.building_peak_kw is not None or site.plan):
            log_event(log, "loadmgmt_building_unknown", logging.WARNING,
                      advice="no building meter ([mqtt] enabled), no [site] plan and no building_peak_kw: the building "
                      "is assumed to take the whole limit and cars get 0 A until a meter reading arrives")  # fmt: skip
        log_event(log, "loadmgmt_started", connectors=len(self._specs), limit_kw=round(self.limit_kw(), 3),
                  fail_safe_a=self.fail_safe_a, policy=self.config.site.policy,
                  plan=str(self.config.site.plan) if self.config.site.plan else None)  # fmt: skip
        try:
            while True:
                await self._wait_for_wake(self.config.site.period_s)
                if self.config.site.debounce_s > 0:
                    await self.clock.sleep(self.config.site.debounce_s)
                self._wake.clear()
                try:
                    await self.rebalance()
                except Exception:
                    log.exception("loadmgmt_round_failed")
        finally:
            if self._readback_task is not None:
                self._tasks.append(self._readback_task)
            if self.replanner.task is not None:
                self._tasks.append(self.replanner.task)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for s in subs:
                self.bus.unsubscribe(s)

    async def _wait_for_wake(self, timeout_s: float) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(timeout_s))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    async def _pump(self, sub: Any) -> None:
        async for topic, payload in sub:
            try:
                self.handle(topic, payload)
            except Exception:
                log.exception("loadmgmt_event_failed topic=%s", topic)
