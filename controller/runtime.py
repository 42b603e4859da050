"""The running site: the central system plus the adapters around it, started and stopped as one.

Why a runtime object: ``evsite serve`` (and load management) need the same set of
parts wired the same way: the OCPP central system, the MQTT building-meter bridge and regulation-signal
subscriber when ``[mqtt] enabled``, the regulation aggregator when ``[regulation] enabled``, the operator
HTTP API and dashboard when ``[api] enabled`` (tokens apply live), and the live
reload of ``config.toml``. Each part is a task on one event loop and one clock; a failure of an optional
adapter is logged and does not take the central system down.

Live config reload (``ConfigWatcher``): chargers and id tags take effect at once (new chargers may connect,
passwords change, tags are (un)blocked, a tag removed from the file answers Invalid, a charger removed from it
is refused at its next connection); ``[server]`` settings read per connection or per message
(``allow_unknown_chargers``, ``require_auth``, ``max_cp_id_length``, heartbeat and its timeout) apply at once;
``logging`` is re-applied; changes to the listening socket (the port compared with the one actually bound),
TLS or the store are logged as ``config_needs_restart`` and wait for a restart. A rejected edit changes
nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.csms import CentralSystem
from controller.store import Store
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.config_watch import TOPIC_CHANGED, ConfigChange, ConfigWatcher
from evsite.log import configure_logging, log_event

log = logging.getLogger("controller.runtime")

#: [server] keys that only a restart can apply (the socket is already bound with them).
RESTART_SERVER_KEYS = ("host", "port", "path_prefix", "tls_cert", "tls_key", "max_frame_bytes", "auth_workers")


def restart_needed(old: Config, new: Config, bound_port: int | None = None) -> list[str]:
    """Which changed settings wait for a restart (dotted names), in a stable order.

    The port is compared with the socket actually bound (``bound_port``) when known: a file saying
    ``port = 0`` (any free port) is satisfied by whatever port was bound, and a file that names the port
    already bound needs nothing, whatever the previous file said.
    """
    keys = []
    for k in RESTART_SERVER_KEYS:
        if k == "port" and bound_port is not None:
            if new.server.port not in (0, bound_port):
                keys.append("server.port")
        elif getattr(old.server, k) != getattr(new.server, k):
            keys.append(f"server.{k}")
    if old.store.url != new.store.url:
        keys.append("store.url")
    if old.mqtt != new.mqtt:
        keys.append("mqtt")
    if old.regulation.enabled != new.regulation.enabled:
        keys.append("regulation.enabled")
    if old.site.enabled != new.site.enabled:
        keys.append("site.enabled")
    if (old.api.enabled, old.api.host, old.api.port) != (new.api.enabled, new.api.host, new.api.port):
        keys.append("api")
    return keys


class SiteRuntime:
    """Start with ``await start()``, stop with ``await stop()``; ``csms`` is the central system."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        config_path: str | Path | None = None,
        config_poll_s: float = 2.0,
        store: Store | None = None,
        bus: EventBus | None = None,
        overrides: Callable[[Config], Config] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus or EventBus()
        self.store = store or Store.open(config.store.url)
        self._own_store = store is None
        self.csms = CentralSystem(config, self.store, clock, self.bus)
        self.watcher = (
            ConfigWatcher(config_path, config, self.bus, clock, config_poll_s, overrides) if config_path else None
        )
        self.regulation: Any = None
        self.config_path = Path(config_path) if config_path else None
        #: the operator HTTP API and dashboard (``controller.api.ApiServer``) when ``[api] enabled``
        self.api: Any = None
        self.loadmgmt: Any = None
        if config.site.enabled:
            from controller.loadmgmt.manager import LoadManager

            self.loadmgmt = LoadManager(config, self.csms, self.bus, clock)
        self._tasks: list[asyncio.Task[None]] = []

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log_event(log, "runtime_task_failed", logging.ERROR, task=task.get_name(), error=repr(task.exception()))

    async def start(self) -> None:
        await self.csms.start()
        cfg = self.config
        if cfg.mqtt.enabled:
            from controller.meter_bridge import MeterBridge

            bridge = MeterBridge(self.bus, self.clock, cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.meter_topic,
                                 cfg.mqtt.client_id)  # fmt: skip
            self._spawn("mqtt-meter-bridge", bridge.run())
        if self.loadmgmt is not None:
            self._spawn("load-management", self.loadmgmt.run())
            if cfg.mqtt.enabled:
                from controller.loadmgmt.state_publisher import publish_site_state

                self._spawn("mqtt-site-state", publish_site_state(self.loadmgmt, cfg.mqtt, cfg.site, self.clock))
        if cfg.regulation.enabled:
            await self._start_regulation()
        if cfg.api.enabled:
            await self._start_api()
        if self.watcher is not None:
            self._spawn("config-watcher", self.watcher.run())
            self._spawn("config-apply", self._apply_config_changes())
        log_event(log, "site_started", url=self.csms.url, mqtt=cfg.mqtt.enabled, regulation=cfg.regulation.enabled,
                  load_management=self.loadmgmt is not None,
                  watching=str(self.watcher.path) if self.watcher else None)  # fmt: skip

    async def _start_api(self) -> None:
        from controller.api import ApiContext, ApiServer, LiveSite

        def config() -> Config:
            return self.config

        live = LiveSite(self.bus, self.clock, config, lambda: self.csms.connected)
        live.source = self.loadmgmt  # load management's own view of the site, when it runs
        ctx = ApiContext(self.csms, self.store, self.bus, self.clock, config, live, self.config_path)
        self.api = ApiServer(ctx)
        await self.api.start()

    async def _start_regulation(self) -> None:
        from controller.aggregator.service import service_from_config
        from controller.aggregator.signal_source import SignalSubscriber

        cfg = self.config
        if not cfg.chargers:
            log_event(log, "regulation_not_started", logging.WARNING, reason="no [[chargers]] in the config")
            return
        # Estimating A on a simulated fleet takes a moment of CPU: keep it off the event loop.
        self.regulation = await asyncio.to_thread(service_from_config, cfg, self.bus, self.clock, self.csms.send,
                                                  via_load_management=self.loadmgmt is not None,
                                                  store=self.store)  # fmt: skip
        self._spawn("regulation", self.regulation.run())
        if cfg.mqtt.enabled:
            sub = SignalSubscriber(self.bus, self.clock, cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.regulation_topic)
            self._spawn("mqtt-regulation-signal", sub.run())

    async def _apply_config_changes(self) -> None:
        changes = self.bus.subscribe(TOPIC_CHANGED)
        try:
            async for _topic, change in changes:
                await self.apply(change)
        finally:
            self.bus.unsubscribe(changes)

    async def apply(self, change: ConfigChange) -> None:
        """Take a validated config change live (see the module docstring for what needs a restart)."""
        old, new = change.old, change.new
        if "logging" in change.sections:
            configure_logging(new.logging.level, new.logging.format)
        await self.csms.apply_config(new)
        if self.loadmgmt is not None:
            self.loadmgmt.apply_config(new)
        waiting = restart_needed(old, new, self.csms.port)
        if waiting:
            log_event(log, "config_needs_restart", logging.WARNING, keys=",".join(waiting))
        self.config = new
        log_event(log, "config_applied", sections=",".join(change.sections), restart_pending=bool(waiting))

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
        for task in self._tasks:
            task.cancel()
        # Failures were logged when they happened (``_task_done``); here only the cancellation is awaited.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.csms.stop()
        if self._own_store:
            self.store.close()
