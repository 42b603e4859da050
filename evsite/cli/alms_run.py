"""A load-managed site against the simulated physical world: the harness of the ALMS tests and benchmark.

Why here: only ``evsite/cli`` may wire the controller and the simulators together. One function runs the
real central system and load manager (``controller.runtime.SiteRuntime``: real WebSockets, the MQTT meter
bridge on a real broker) beside ``simulators.site.SimulatedSite`` (chargers, cars and a replayed building
meter publishing over MQTT), lets faults happen, and returns the simulator's ground truth
(``simulators.ground_truth``): violations are counted by the physical world, not by the controller.

Faults (``AlmsFaults``): chargers dropping their connection mid-session, rejecting every profile, accepting
only stack level 0, the meter going silent for a while, and the controller stopped and started again.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from evsite.clock import ScaledClock
from evsite.config import Config, parse_config
from evsite.ev_fleet import Fleet


@dataclass
class AlmsFaults:
    drop_every_s: float | None = None  # a random charger loses its connection every N simulated s
    reject_profiles: int = 0  # this many chargers answer Rejected to every profile
    stack0_only: int = 0  # this many chargers accept only stack level 0
    meter_silent: tuple[float, float] | None = None  # (from_s, to_s) simulated: the building meter stops
    controller_restart_at_s: float | None = None  # the controller is stopped here ...
    controller_down_s: float = 60.0  # ... and started again this much later
    no_resume_every: int = 0  # every N-th car never resumes after a 0 A pause (0: none)
    limit_drop: tuple[float, float, float] | None = None  # (from_s, to_s, kW): an operator's lower site limit


@dataclass
class AlmsResult:
    report: dict[str, Any]
    summary: Any
    speed: float
    wall_s: float
    fallbacks: dict[str, str] = field(default_factory=dict)
    no_resume_found: set[str] = field(default_factory=set)  # id tags load management found not resuming
    no_resume_cars: set[str] = field(default_factory=set)  # id tags of the cars that really do not resume
    limits_published: int = 0  # ``loadmgmt/limits`` messages on the bus
    ceilings: set[str] = field(default_factory=set)  # chargers that accepted a ChargePointMaxProfile ceiling


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def arriving_fleet(n: int, hours: float, seed: int = 0, p_kw: float = 11.0) -> Fleet:
    """``n`` cars arriving over the first 60 % of the run and staying 30-100 % of the rest (randomised)."""
    rng = np.random.default_rng(seed)
    span = hours * 3600.0
    arrival = np.sort(rng.uniform(0.01, 0.6, n)) * span
    stay = rng.uniform(0.3, 1.0, n) * (span - arrival)
    return Fleet(
        arrival_s=arrival,
        departure_s=arrival + np.maximum(stay, 600.0),
        capacity_kwh=rng.uniform(40.0, 75.0, n),
        p_charge_kw=np.full(n, p_kw),
        p_discharge_kw=np.full(n, p_kw),
        efficiency=np.full(n, 0.92),
        soc=rng.uniform(0.15, 0.5, n),
        soc_target=rng.uniform(0.8, 0.95, n),
        mode=np.zeros(n, dtype=np.int8),
    )


def driver_tags(n: int) -> list[str]:
    """One id tag per car, so what load management learns about a car (it does not resume) stays with it."""
    return [f"SIM-{i:04d}" for i in range(n)]


def alms_config(
    base: dict[str, Any],
    *,
    chargers: int,
    connectors: int,
    max_a: float,
    port: int,
    db: str,
    topic: str,
    drivers: int = 200,
    circuits: dict[str, float] | None = None,
) -> Config:
    """The site under test: listed chargers, MQTT meter on ``topic``, load management on.

    ``circuits`` ``{charger id: rating A}`` puts a charger on a circuit of its own (a ``[[site.panels]]`` entry).
    """
    circuits = circuits or {}
    data = {
        **base,
        "server": {"host": "127.0.0.1", "port": port, "meter_value_sample_interval_s": 30},
        "store": {"url": db},
        "chargers": [
            {"id": f"SIM{i + 1:04d}", "connectors": connectors, "max_current_a": max_a, "voltage_v": 230.0, "phases": 3}
            | ({"circuit": f"circuit-SIM{i + 1:04d}"} if f"SIM{i + 1:04d}" in circuits else {})
            for i in range(chargers)
        ],
        "id_tags": [{"id_tag": tag} for tag in ["SIM-TAG", *driver_tags(drivers)]],
        "mqtt": {"enabled": True, "meter_topic": f"{topic}/meter", "regulation_topic": f"{topic}/reg"},
    }
    data.setdefault("site", {})
    data["site"] = {
        **data["site"],
        "state_topic": f"{topic}/state",
        "panels": [{"id": f"circuit-{cp}", "rating_a": amps} for cp, amps in circuits.items()],
    }
    return parse_config(data, "alms")


async def run_alms(
    config: Config,
    building: Any,
    fleet: Fleet,
    *,
    hours: float,
    speed: float,
    start: datetime,
    replay_from: datetime | None = None,
    faults: AlmsFaults | None = None,
    step_s: float = 2.0,
    seed: int = 0,
    series: bool = False,
    on_started: Callable[[Any, Any, ScaledClock], list[Coroutine[Any, Any, None]]] | None = None,
) -> AlmsResult:
    """Run the load-managed site for ``hours`` simulated at ``speed`` (see the module docstring).

    ``on_started(site, runtime, clock)``: called once the chargers are online; the coroutines it returns run
    beside the site until the end (e.g. a regulation signal replay, ``regulation_live``).
    """
    import random
    import time

    from controller.runtime import SiteRuntime
    from controller.store import Store
    from evsite.bus import EventBus
    from simulators.ground_truth import GroundTruth
    from simulators.meter import BuildingMeter, MqttMeterPublisher
    from simulators.site import SimulatedSite, charger_specs
    from simulators.smart_charging import Capabilities

    faults = faults or AlmsFaults()
    clock = ScaledClock(speed, start=start)
    store = Store.open(config.store.url)
    runtime = SiteRuntime(config, clock, store=store, bus=EventBus(queue_size=100_000))
    await runtime.start()
    url = f"ws://127.0.0.1:{config.server.port}{config.server.path_prefix}"
    ch = config.chargers
    specs = charger_specs(len(ch), ch[0].connectors, "SIM", voltage_v=ch[0].voltage_v, phases=ch[0].phases,
                          max_current_a=ch[0].max_current_a, meter_interval_s=30)  # fmt: skip
    # a charger configured bidirectional is simulated as one (it declares it and takes discharge setpoints)
    specs = [type(s)(**{**s.__dict__, "bidirectional": c.bidirectional}) for s, c in zip(specs, ch, strict=True)]
    quirky = [
        type(s)(**{**s.__dict__, "capabilities": Capabilities(only_stack_level_0=True)})
        if i < faults.stack0_only
        else s
        for i, s in enumerate(specs)
    ]
    meter = BuildingMeter(building, clock, interval_s=10.0, replay_from=replay_from)
    publisher = MqttMeterPublisher(config.mqtt.host, config.mqtt.port, config.mqtt.meter_topic)
    silent = faults.meter_silent

    async def publish(reading: Any) -> None:
        t = clock.monotonic() - site._mono0
        if silent is not None and silent[0] <= t < silent[1]:
            return
        await publisher(reading)

    tags = driver_tags(len(fleet))
    site = SimulatedSite(url, clock, quirky, fleet, step_s=step_s, seed=seed, fleet_origin=start, meter=meter,
                         meter_publish=publish, id_tags=tags)  # fmt: skip
    if faults.no_resume_every:
        site.no_resume[:: faults.no_resume_every] = True
    limits = runtime.bus.subscribe("loadmgmt/limits")
    for cp in site.chargers[len(site.chargers) - faults.reject_profiles :] if faults.reject_profiles else []:
        cp.faults.reject_profiles = True
    limit_kw = config.service.rating_kw * config.service.continuous_load_factor
    site.ground_truth = GroundTruth(limit_kw, config.site.response_s, keep_series=series)
    extra: list[asyncio.Task[None]] = []
    state = {"runtime": runtime}

    async def drops() -> None:
        rng = random.Random(seed)
        assert faults.drop_every_s is not None
        while True:
            await clock.sleep(faults.drop_every_s)
            await rng.choice(site.chargers).drop_connection()

    async def drop_limit() -> None:
        from evsite import topics
        from evsite.site_state import SiteLimitOverride

        assert faults.limit_drop is not None
        at_s, until_s, kw = faults.limit_drop
        await clock.sleep(at_s)
        until = clock.now() + timedelta(seconds=until_s - at_s)
        state["runtime"].bus.publish(topics.LOADMGMT_SITE_LIMIT, SiteLimitOverride(kw, until, "alms test operator"))

    async def restart() -> None:
        assert faults.controller_restart_at_s is not None
        await clock.sleep(faults.controller_restart_at_s)
        await state["runtime"].stop()
        await clock.sleep(faults.controller_down_s)
        again = SiteRuntime(config, clock, store=store, bus=EventBus(queue_size=100_000))
        await again.start()
        state["runtime"] = again

    wall0 = time.perf_counter()
    try:
        async with publisher:
            await site.start()
            await site.wait_online(15.0)
            if faults.drop_every_s:
                extra.append(asyncio.create_task(drops()))
            if faults.limit_drop is not None:
                extra.append(asyncio.create_task(drop_limit()))
            if faults.controller_restart_at_s is not None:
                extra.append(asyncio.create_task(restart()))
            if on_started is not None:
                extra += [asyncio.create_task(c) for c in on_started(site, state["runtime"], clock)]
            summary = await site.run(hours)
    finally:
        for t in extra:
            t.cancel()
        await asyncio.gather(*extra, return_exceptions=True)
        lm = state["runtime"].loadmgmt
        fallbacks = {cp: c.fallback for cp, c in lm.chargers.items() if c.fallback} if lm is not None else {}
        found = set(lm.no_resume_tags) if lm is not None else set()
        ceilings = {cp for cp, c in lm.chargers.items() if c.ceiling_sent} if lm is not None else set()
        await state["runtime"].stop()
        store.close()
    site.ground_truth.finish()
    requested, delivered, sessions, served = site.sessions_outcome()
    report = site.ground_truth.report(requested, delivered, sessions, served, speed, with_series=series)
    published = 0
    while limits.get_nowait() is not None:
        published += 1
    cars = {tags[i] for i in np.flatnonzero(site.no_resume)}
    return AlmsResult(report, summary, speed, time.perf_counter() - wall0, fallbacks, found, cars, published, ceilings)


def scaled_building(path: Path, column: str, peak_kw: float) -> Any:
    """A real building's hourly load scaled so its peak is ``peak_kw`` (the shape is the building's own)."""
    from dataclasses import replace

    from simulators.meter import load_meter_csv

    series = load_meter_csv(path, column)
    return replace(series, power_kw=series.power_kw * (peak_kw / float(np.max(series.power_kw))))


def default_start() -> datetime:
    return datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
