"""Where the API reads the site's state: the ``SiteStateSource`` protocol and the fallback that needs no load
management.

Why a protocol: load management (``controller.loadmgmt``) knows the real limit of every connector and why;
until it runs, the API still shows the building meter, the EV power the chargers report and the service's
continuous rating as the limit. Either object plugs in as ``site_state() -> SiteState``.

``LiveSite`` follows the bus (building meter, charger meter values, transactions, profiles sent, temporary
site limits) and keeps the load history the dashboard draws.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from controller import events as ev
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.meter_reading import MeterReading
from evsite.site_state import ConnectorState, SiteLimitOverride, SiteState


@runtime_checkable
class SiteStateSource(Protocol):
    """Anything that can say what the site looks like now (load management, or ``LiveSite``)."""

    def site_state(self) -> SiteState: ...


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of the dashboard's load stack: building + EV against the limit."""

    at: datetime
    building_kw: float | None
    ev_kw: float
    limit_kw: float


def continuous_rating_kw(config: Config) -> float:
    """The most the service may carry continuously (NEC: rating x continuous load factor)."""
    return config.service.rating_kw * config.service.continuous_load_factor


def profile_limit(profile: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """First period's limit of a SetChargingProfile body and its unit (``A`` or ``W``), or (None, None)."""
    if not profile:
        return None, None
    schedule = profile.get("chargingSchedule") or {}
    periods = schedule.get("chargingSchedulePeriod") or []
    if not periods:
        return None, None
    return float(periods[0]["limit"]), schedule.get("chargingRateUnit")


class LiveSite:
    """Follows the bus; ``site_state()`` and ``history()`` answer from what it has seen.

    Connector limits are the last SetChargingProfile a charger accepted, with the reason it was sent; a
    connector with none shows ``limit_a=None`` and reason ``"no profile sent"``.
    """

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        config: Callable[[], Config],
        connected: Callable[[], set[str]] | None = None,
        history_every_s: float = 5.0,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self._config = config
        #: the ids connected now (``CentralSystem.connected``); None: unknown
        self._connected = connected
        #: load management, when it runs: the history then records its view instead of this one's
        self.source: SiteStateSource | None = None
        self.history_every_s = history_every_s
        self._ev_w: dict[tuple[str, int], float] = {}
        self._status: dict[tuple[str, int], str] = {}
        self._limits: dict[tuple[str, int], tuple[float, str]] = {}
        self._override: SiteLimitOverride | None = None
        self._history: deque[HistoryPoint] = deque()

    # ------------------------------------------------------------------ reading the bus

    async def run(self) -> None:
        """Follow the bus until cancelled."""
        subs = [self.bus.subscribe(t) for t in (topics.METER_SITE, topics.OCPP_ALL, topics.LOADMGMT_SITE_LIMIT)]
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def pump(sub: Any) -> None:
            async for item in sub:
                await queue.put(item)

        pumps = [asyncio.create_task(pump(s)) for s in subs]
        try:
            while True:
                topic, payload = await queue.get()
                self.handle(topic, payload)
        finally:
            for p in pumps:
                p.cancel()
            for s in subs:
                self.bus.unsubscribe(s)

    def handle(self, topic: str, payload: Any) -> None:
        """Update the live view with one bus message (pure bookkeeping, no I/O)."""
        if topic == topics.METER_SITE and isinstance(payload, MeterReading):
            self._record(force=True)
        elif topic == topics.OCPP_METER and isinstance(payload, ev.MeterEvent):
            if payload.power_w is not None and payload.connector_id > 0:
                self._ev_w[(payload.cp_id, payload.connector_id)] = payload.power_w
                self._record(force=False)
        elif topic == topics.OCPP_TRANSACTION and isinstance(payload, ev.TransactionEvent):
            if payload.kind == "stopped" and payload.connector_id is not None:
                self._ev_w.pop((payload.cp_id, payload.connector_id), None)
                self._record(force=True)
        elif topic == topics.OCPP_STATUS and isinstance(payload, ev.StatusEvent):
            self._status[(payload.cp_id, payload.connector_id)] = payload.status
        elif topic == topics.OCPP_PROFILE and isinstance(payload, ev.ProfileEvent):
            self._profile(payload)
        elif topic == topics.LOADMGMT_SITE_LIMIT and isinstance(payload, SiteLimitOverride):
            self._override = payload
            self._record(force=True)

    def _profile(self, p: ev.ProfileEvent) -> None:
        if p.status != "Accepted" or p.connector_id is None:
            return
        if p.action == "ClearChargingProfile":
            self._limits.pop((p.cp_id, p.connector_id), None)
            return
        limit, unit = profile_limit(p.profile)
        if limit is None:
            return
        charger = next((c for c in self.config.chargers if c.id == p.cp_id), None)
        if unit == "W":  # shown in A per phase, through the charger's own voltage and phases
            volts, phases = (charger.voltage_v, charger.phases) if charger else (230.0, 3)
            limit = limit / (volts * phases)
        self._limits[(p.cp_id, p.connector_id)] = (limit, p.reason or "no reason given")

    def _record(self, force: bool) -> None:
        """Append a point; a charger sample within ``history_every_s`` of the last point replaces it instead
        (thousands of chargers must not grow the history by thousands of points a minute)."""
        now = self.clock.now()
        state = (self.source or self).site_state()
        point = HistoryPoint(now, state.building_kw, state.ev_kw, state.limit_kw)
        if not force and self._history and (now - self._history[-1].at).total_seconds() < self.history_every_s:
            self._history[-1] = point
            return
        self._history.append(point)
        horizon = now - timedelta(hours=self.config.api.history_hours)
        while self._history and self._history[0].at < horizon:
            self._history.popleft()

    # ------------------------------------------------------------------ answers

    @property
    def config(self) -> Config:
        return self._config()

    def _building(self) -> MeterReading | None:
        reading = self.bus.last(topics.METER_SITE)
        return reading if isinstance(reading, MeterReading) else None

    def ev_kw(self) -> float:
        return sum(self._ev_w.values()) / 1000.0

    def override(self) -> SiteLimitOverride | None:
        """The operator's temporary site limit while it applies."""
        o = self._override
        return o if o is not None and o.expires_at > self.clock.now() else None

    def limit_kw(self) -> float:
        rating = continuous_rating_kw(self.config)
        o = self.override()
        return min(o.limit_kw, rating) if o is not None else rating

    def history(self, hours: float | None = None) -> list[HistoryPoint]:
        if hours is None:
            return list(self._history)
        since = self.clock.now() - timedelta(hours=hours)
        return [p for p in self._history if p.at >= since]

    def site_state(self) -> SiteState:
        now = self.clock.now()
        reading = self._building()
        building = reading.power_kw if reading else None
        stale = reading is None or (now - reading.ts).total_seconds() > self.config.meter.stale_after_s
        ev_kw = self.ev_kw()
        total = None if building is None else building + ev_kw
        limit = self.limit_kw()
        connected = set(self._connected()) if self._connected else set()
        keys = set(self._status) | set(self._ev_w) | set(self._limits)
        keys |= {(c.id, n) for c in self.config.chargers for n in range(1, c.connectors + 1)}
        connectors = []
        for cp_id, n in sorted(k for k in keys if k[1] > 0):
            limit_a, reason = self._limits.get((cp_id, n), (None, "no profile sent"))
            power = self._ev_w.get((cp_id, n))
            connectors.append(
                ConnectorState(
                    cp_id,
                    n,
                    limit_a,
                    reason,
                    cp_id in connected,
                    self._status.get((cp_id, n)),
                    None if power is None else power / 1000.0,
                )
            )
        return SiteState(
            at=now,
            building_kw=building,
            ev_kw=ev_kw,
            total_kw=total,
            limit_kw=limit,
            headroom_kw=None if total is None else limit - total,
            plan_period=None,
            meter_stale=stale,
            connectors=connectors,
        )
