"""``/healthz`` (no token: up/down only) and ``/metrics`` (read token, Prometheus text format).

Metrics and what they count:

- ``evsite_chargers_online`` / ``evsite_chargers_known``: connections now / chargers in the store.
- ``evsite_ocpp_events_total{action}``: events the central system published on the bus, by the OCPP action
  that caused them (one per MeterValues *element*, one per Start/StopTransaction, one per profile sent).
- ``evsite_api_call_latency_seconds{action}``: round trip of the OCPP calls the API sent to chargers.
- ``evsite_ocpp_call_latency_seconds{action,outcome}``: every call the central system sent to a charger (load
  management, configuration, the API...), timed by the router from send to answer; outcome ``ok``,
  ``callerror``, ``timeout``, ``lost`` (connection gone before the answer) or ``invalid`` (schema-violating answer).
- ``evsite_store_write_lag_seconds``: how long a write submitted at scrape time took to be committed (the
  write-behind queue plus the commit).
- ``evsite_site_*_kw``: building, EV and total load and the limit, from the site state source.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller import events as ev
from controller.api import queries
from controller.api.context import ApiContext
from controller.api.deps import Ctx, Reader
from evsite import topics

router = APIRouter()

_ACTION_OF = {
    topics.OCPP_BOOT: "BootNotification",
    topics.OCPP_STATUS: "StatusNotification",
    topics.OCPP_METER: "MeterValues",
}


class ApiMetrics(Collector):
    """A registry of its own (several sites in one test process must not share counters)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx
        self.registry = CollectorRegistry()
        self.events: Counter[str] = Counter()
        self.write_lag_s: float | None = None
        self.known: int | None = None
        self.latency = Histogram(
            "evsite_api_call_latency_seconds",
            "Round trip of OCPP calls sent through the API",
            ["action"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.ocpp_latency = Histogram(
            "evsite_ocpp_call_latency_seconds",
            "Round trip of every OCPP call the central system sent to a charger, by action and outcome",
            ["action", "outcome"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        ctx.csms.call_observers.append(self.observe_ocpp_call)
        self.registry.register(self)

    def observe_ocpp_call(self, action: str, seconds: float, outcome: str) -> None:
        self.ocpp_latency.labels(action, outcome).observe(seconds)

    def observe_call(self, action: str, seconds: float) -> None:
        self.latency.labels(action).observe(seconds)

    def count(self, topic: str, payload: Any) -> None:
        """Count one bus event under its OCPP action."""
        if isinstance(payload, ev.TransactionEvent):
            self.events["StartTransaction" if payload.kind == "started" else "StopTransaction"] += 1
        elif isinstance(payload, ev.ProfileEvent):
            self.events[payload.action] += 1
        elif topic in _ACTION_OF:
            self.events[_ACTION_OF[topic]] += 1

    async def follow(self) -> None:
        """Count OCPP events until cancelled."""
        sub = self.ctx.bus.subscribe(topics.OCPP_ALL)
        try:
            async for topic, payload in sub:
                self.count(topic, payload)
        finally:
            self.ctx.bus.unsubscribe(sub)

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        ctx = self.ctx
        yield GaugeMetricFamily("evsite_chargers_online", "Chargers connected now", value=len(ctx.csms.connected))
        if self.known is not None:
            yield GaugeMetricFamily("evsite_chargers_known", "Chargers in the store", value=self.known)
        c = CounterMetricFamily("evsite_ocpp_events", "OCPP events published, by action", labels=["action"])
        for action, n in sorted(self.events.items()):
            c.add_metric([action], n)
        yield c
        if self.write_lag_s is not None:
            yield GaugeMetricFamily("evsite_store_write_lag_seconds", "Time to commit a write submitted now",
                                    value=self.write_lag_s)  # fmt: skip
        state = ctx.source.site_state()
        for name, value, text in (
            ("building", state.building_kw, "Building load (kW)"),
            ("ev", state.ev_kw, "EV charging load (kW)"),
            ("total", state.total_kw, "Building + EV load (kW)"),
            ("limit", state.limit_kw, "Site limit in force (kW)"),
        ):
            if value is not None:
                yield GaugeMetricFamily(f"evsite_site_{name}_kw", text, value=value)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: Ctx, _: Reader) -> Response:
    m: ApiMetrics = ctx.extra["metrics"]  # type: ignore[assignment]
    started = time.perf_counter()
    await ctx.csms.flush()
    m.write_lag_s = time.perf_counter() - started
    m.known = len(await asyncio.to_thread(ctx.store.charge_points))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


async def _broker_up(host: str, port: int) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@router.get("/healthz", summary="up/down of the process, the store and (when enabled) the MQTT broker")
async def healthz(ctx: Ctx) -> JSONResponse:
    cfg = ctx.config()
    checks = {"process": "up", "store": "up" if await asyncio.to_thread(queries.store_is_up, ctx.store) else "down"}
    if cfg.mqtt.enabled:
        checks["broker"] = "up" if await _broker_up(cfg.mqtt.host, cfg.mqtt.port) else "down"
    up = all(v == "up" for v in checks.values())
    return JSONResponse({"status": "up" if up else "down", **checks}, status_code=200 if up else 503)
