"""Online/offline state of each charge point: the heartbeat timeout and the offline sweep.

Why: load management must not keep budgeting current for a charger that vanished. A charger is *offline*
when its socket closed or when it has sent nothing for ``[server] heartbeat_timeout_factor`` times the
heartbeat interval we gave it at boot (a charger with an open socket that stopped talking is as good as
gone). It is online again the moment it speaks. Each change is one ``ChargerOnlineEvent`` on
``ocpp/online``, one ``charger_online``/``charger_offline`` log line, and the store's ``online`` field;
going offline also marks the connectors' last status stale (see ``CentralSystem.on_liveness``).

Time is the injected clock's: a test advances a ``ManualClock`` past the timeout and runs ``sweep``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from controller import events as ev
from controller.registry import ChargerRegistry
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.log import log_event

log = logging.getLogger("controller.liveness")


class Liveness:
    """Tracks ``KnownCharger.online`` / ``last_heard`` and reports every change to ``on_change``."""

    def __init__(
        self,
        registry: ChargerRegistry,
        clock: Clock,
        bus: EventBus,
        config: Callable[[], Config],
        on_change: Callable[[ev.ChargerOnlineEvent], None],
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.bus = bus
        self._config = config
        self._on_change = on_change

    @property
    def timeout_s(self) -> float:
        srv = self._config().server
        return srv.heartbeat_timeout_factor * srv.heartbeat_interval_s

    def heard(self, cp_id: str, now: datetime, reason: str = "message") -> None:
        """The charger spoke (a call, or a new connection): remember when, and bring it online."""
        known = self.registry.known.get(cp_id)
        if known is None:
            return
        known.last_heard = now
        if not known.online:
            known.online = True
            self._emit(cp_id, True, now, reason)

    def dropped(self, cp_id: str, now: datetime, reason: str) -> None:
        """Its socket closed (and no newer connection replaced it)."""
        known = self.registry.known.get(cp_id)
        if known is not None and known.online:
            known.online = False
            self._emit(cp_id, False, now, reason)

    def sweep(self, now: datetime) -> list[str]:
        """Mark offline every online charger silent for longer than the timeout; returns their ids."""
        timeout = self.timeout_s
        silent = [
            cp_id
            for cp_id, k in self.registry.known.items()
            if k.online and k.last_heard is not None and (now - k.last_heard).total_seconds() > timeout
        ]
        for cp_id in silent:
            self.registry.known[cp_id].online = False
            self._emit(cp_id, False, now, "heartbeat_timeout")
        return silent

    async def run(self) -> None:
        """Sweep every quarter of the timeout (at least once a second) until cancelled."""
        while True:
            await self.clock.sleep(max(1.0, self.timeout_s / 4))
            self.sweep(self.clock.now())

    def _emit(self, cp_id: str, online: bool, at: datetime, reason: str) -> None:
        event = ev.ChargerOnlineEvent(cp_id, online, at, reason)
        self._on_change(event)
        self.bus.publish(ev.TOPIC_ONLINE, event)
        if online:
            log_event(log, "charger_online", cp_id=cp_id, reason=reason)
        else:
            last = self.registry.known[cp_id].last_heard
            # A closed socket is an ordinary event; a charger that went silent on an open one is worth a warning.
            level = logging.WARNING if reason == "heartbeat_timeout" else logging.INFO
            log_event(log, "charger_offline", level, cp_id=cp_id, reason=reason, last_heard=str(last))
