"""``evsite demo``: the whole product on one simulated site, in about a minute, with nothing but Python.

Why: a new user's first question is "what does it do with my chargers?". The demo answers it end to end with
the real components, not mock-ups:

1. **Plan**: a generated year of office-like building load (no real data is shipped) goes through the load
   study (cleaning, k-means, NEC 220.87 / 625.42 capacity, GEKKO schedule); the result is the site's hourly
   EV limit, as the OCPP daily Recurring profile that ``evsite plan`` writes.
2. **Serve**: the OCPP 1.6J central system starts on a free loopback port with an SQLite store.
3. **Simulate**: simulated charge points connect over real WebSockets, boot, and EVs from the seed-study
   fleet arrive, authorise, charge and leave on an accelerated clock, beside a simulated building meter.
4. **Apply**: live load management (``controller.loadmgmt``) reads the plan, the building meter and the
   chargers' events and gives every connector a limit (fail-safe TxDefaultProfile at boot, expiring live
   limits after), as OCPP 1.6 section 3.13 says.
5. **Report**: the hourly EV power the central system saw (from MeterValues) against the plan's limit and the
   service rating, transactions and energy from the store, and the simulator's own ground truth (total load
   against ``continuous_load_factor x rating``, violations longer than ``[site] response_s``) at the run's speed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock, ScaledClock
from evsite.config import Config
from evsite.log import log_event

if TYPE_CHECKING:
    from simulators.meter import ReplayLoadSeries

log = logging.getLogger("evsite.cli.demo_run")

DEMO_PROFILE_ID = 900  # the demo's ChargePointMaxProfile id (distinct from the aggregator's ids)
DEMO_ID_TAG = "EVSITE-DEMO"  # the simulated drivers' tag, added to the store for the demo only


@dataclass
class HourRow:
    hour: int
    building_kw: float
    ev_kw_max: float
    ev_limit_kw: float
    service_kw: float


@dataclass
class DemoReport:
    """What the demo measured; ``format`` renders it for the terminal."""

    chargers: int
    connectors: int
    simulated_hours: float
    wall_s: float
    chargers_without_lm: int
    chargers_with_lm: int
    cost_per_day: float
    profiles_accepted: int
    profiles_sent: int
    transactions: int
    transactions_closed: int
    energy_kwh: float
    meter_values: int
    ev_peak_over_limit_kw: float
    ground_truth: dict = field(default_factory=dict)
    speed: float = 0.0
    hours: list[HourRow] = field(default_factory=list)
    store_url: str = ""
    plan_dir: str = ""
    report_path: str = ""
    fresh_store: bool = False
    #: what the plan's charger count assumes: EV energy per charger-day and where that figure came from
    ev_kwh_per_charger_day: float = 0.0
    ev_source: str = ""
    dashboard_url: str = ""
    samples: list[tuple[float, float, float]] = field(default_factory=list)


def demo_building(service_kw: float, start: datetime, seed: int = 0, days: int = 364) -> ReplayLoadSeries:
    """A generated office-like year sized to the service (base 20 %, weekday peak 50 % of its rating).

    One series serves both halves of the demo: the plan studies it, and the simulated meter replays it, so the
    building the site runs next to is the building that was planned.
    """
    from simulators.meter import synthetic_series

    return synthetic_series(
        base_kw=0.2 * service_kw, peak_kw=0.5 * service_kw, days=days, step_s=3600.0, seed=seed, start=start
    )


def plan_demo_site(config: Config, building: ReplayLoadSeries, out_dir: Path):
    """Run the planning pipeline on the generated building; write its reports; return the plan."""
    from planning.meter import StudyLoadSeries
    from planning.pipeline import plan_building
    from planning.report import write_outputs, write_plots

    index = pd.DatetimeIndex(pd.Timestamp(building.start.replace(tzinfo=None)) + pd.to_timedelta(building.t_s, "s"))
    kw = pd.Series(building.power_kw, index=index, name="demo-building")
    meter = StudyLoadSeries(name="demo-building", kw=kw, source="generated", unit_in="kW", data_tz=None, site_tz="UTC")
    plan = plan_building(meter, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs([plan], out_dir, meta={"source": "evsite demo (generated building load)"})
    write_plots(plan, out_dir)  # the clusters, capacity and schedule the report points to
    return plan


def demo_config(
    base: Config, workdir: Path, db_url: str | None, chargers: int = 0, connectors: int = 2, plan: Path | None = None
) -> Config:
    """The user's config with what a self-contained demo needs: loopback, free port, own store, the chargers."""
    data = base.model_dump()
    data["chargers"] = [
        *data["chargers"],
        *({"id": f"DEMO{i + 1:04d}", "connectors": connectors} for i in range(chargers)),
    ]
    data["site"].update(plan=plan, period_s=300.0, debounce_s=5.0, profile_validity_s=1800.0)
    data["server"].update(
        host="127.0.0.1",
        port=0,
        allow_unknown_chargers=True,
        require_auth=False,
        tls_cert=None,
        tls_key=None,
        meter_value_sample_interval_s=300,
    )
    data["store"]["url"] = db_url or f"sqlite:///{workdir / 'demo.db'}"
    data["id_tags"] = [*data["id_tags"], {"id_tag": DEMO_ID_TAG, "status": "Accepted"}]
    return Config.model_validate(data)


class PowerMonitor:
    """The central system's view of EV power: the latest Power.Active.Import per connector, sampled hourly."""

    def __init__(self, bus: EventBus, clock: Clock, origin_s: float) -> None:
        self.clock = clock
        self.origin_s = origin_s
        self._meter = bus.subscribe(topics.OCPP_METER)
        self._tx = bus.subscribe(topics.OCPP_TRANSACTION)
        self.bus = bus
        self.power_w: dict[tuple[str, int], float] = {}
        self.samples: list[tuple[float, float, float]] = []  # (t_s, building_kw, ev_kw)

    def drain(self) -> None:
        while (item := self._meter.get_nowait()) is not None:
            ev = item[1]
            if ev.power_w is not None and ev.transaction_id is not None:
                self.power_w[(ev.cp_id, ev.connector_id)] = ev.power_w
        while (item := self._tx.get_nowait()) is not None:
            tx = item[1]
            if tx.kind != "started":
                self.power_w.pop((tx.cp_id, tx.connector_id or 0), None)

    async def run(self, every_s: float = 300.0) -> None:
        while True:
            await self.clock.sleep(every_s)
            self.drain()
            reading = self.bus.last("meter/site")
            building = reading.power_kw if reading is not None else float("nan")
            ev_kw = sum(self.power_w.values()) / 1000.0
            self.samples.append((self.clock.monotonic() - self.origin_s, building, ev_kw))


async def run_demo(
    config: Config,
    workdir: Path,
    *,
    chargers: int = 10,
    connectors: int = 2,
    hours: float = 24.0,
    speed: float = 2880.0,
    seed: int = 0,
    db_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    dashboard: bool = False,
    keep_running: bool = False,
    on_report: Callable[[DemoReport], None] | None = None,
    on_interrupted: Callable[[str], None] | None = None,
) -> DemoReport:
    """Plan, serve, simulate and report (see the module docstring).

    ``progress`` gets one line per simulated hour (and the dashboard's address); with ``dashboard`` the
    operator API and dashboard run on a free loopback port with a one-time token; with ``keep_running`` the
    site stays up after ``on_report`` until the task is cancelled (Ctrl-C). A Ctrl-C during the simulated
    hours gives ``on_interrupted`` the figures so far (no report is written).
    """
    from controller.csms import CentralSystem
    from controller.loadmgmt.manager import LoadManager
    from controller.store import Store
    from evsite.ev_fleet import seed_fleet
    from planning.report import ocpp_profile
    from simulators.ground_truth import GroundTruth
    from simulators.meter import BuildingMeter, bus_publisher
    from simulators.site import SimulatedSite, charger_specs

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    building = demo_building(config.service.rating_kw, start, seed)
    plan = await asyncio.to_thread(plan_demo_site, config, building, workdir / "plan")
    cfg = demo_config(config, workdir, db_url, chargers, connectors, workdir / "plan" / "plan.json")
    if db_url is None:  # each run starts from an empty store: the report counts this run only
        for suffix in ("", "-wal", "-shm", "-journal"):
            (workdir / f"demo.db{suffix}").unlink(missing_ok=True)
    clock = ScaledClock(speed=speed, start=start)
    bus = EventBus(queue_size=100_000)
    store = Store.open(cfg.store.url)
    csms = CentralSystem(cfg, store, clock, bus)
    await csms.start()
    url = f"ws://127.0.0.1:{csms.port}{cfg.server.path_prefix}"
    site_profile = ocpp_profile(plan, start_date=start.date().isoformat())
    log_event(log, "demo_started", url=url, chargers=chargers, connectors=connectors, speed=speed, hours=hours)

    manager = LoadManager(cfg, csms, bus, clock)
    profiles = bus.subscribe(topics.OCPP_PROFILE)

    meter = BuildingMeter(building, clock, interval_s=60.0)
    specs = charger_specs(chargers, connectors, prefix="DEMO", meter_interval_s=300)
    fleet = seed_fleet(2 * chargers * connectors, seed)
    site = SimulatedSite(
        url,
        clock,
        specs,
        fleet,
        id_tags=[DEMO_ID_TAG],
        seed=seed,
        step_s=30.0,
        fleet_origin=start,
        meter=meter,
        meter_publish=bus_publisher(bus),
    )
    site.ground_truth = GroundTruth(cfg.service.rating_kw * cfg.service.continuous_load_factor, cfg.site.response_s)
    monitor = PowerMonitor(bus, clock, clock.monotonic())
    tasks = [asyncio.create_task(manager.run()), asyncio.create_task(monitor.run())]
    say = progress or (lambda _line: None)
    api = None
    try:
        api = await _start_dashboard(cfg, csms, store, bus, clock, manager, say) if dashboard else None
        await site.start()  # the simulated hours count from here: progress lines, hourly table and summary
        monitor.origin_s = clock.monotonic()
        site_end = clock.now() + timedelta(hours=hours)
        reporter = asyncio.create_task(_report_progress(say, clock, hours, site, monitor, manager))
        tasks.append(reporter)
        try:
            summary = await site.run(hours)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us; say what was done before stopping
            if on_interrupted is not None:
                gt = site.ground_truth
                on_interrupted(
                    f"{site.summary().format()}\npeak building + EV load {gt.peak_kw:.1f} kW against the limit "
                    f"{gt.limit_kw:.1f} kW (continuous_load_factor x rating); {gt.seconds_over:.0f} s above it "
                    f"(including the allowed {gt.response_s:g} s response)"
                )
            raise
        await asyncio.sleep(0.2)
        report = _build_report(
            cfg,
            plan,
            site,
            summary,
            store,
            profiles,
            monitor,
            site_profile,
            site_end=site_end,
            hours=hours,
            speed=speed,
            chargers=chargers,
            connectors=connectors,
            workdir=workdir,
            fresh=db_url is None,
        )
        report.dashboard_url = api.url if api is not None else ""
        if on_report is not None:
            on_report(report)
        if keep_running:
            reporter.cancel()  # the simulation is over: no more progress lines
            say("the simulation is over; the central system and dashboard stay up for exploring: Ctrl-C to stop")
            await asyncio.Event().wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if api is not None:
            await api.stop()
        await csms.stop()
        store.close()
    return report


async def _report_progress(say: Callable[[str], None], clock: Clock, hours: float, site, monitor, manager) -> None:
    """One line per simulated hour: time, load against the limit, connectors charging, energy so far."""
    origin = clock.monotonic()
    while True:
        await clock.sleep(3600.0)
        monitor.drain()
        building = monitor.samples[-1][1] if monitor.samples else float("nan")
        ev_kw = sum(monitor.power_w.values()) / 1000.0
        charging = sum(len(cp.tx) for cp in site.chargers)
        energy = site.summary().energy_kwh
        say(
            f"simulated {(clock.monotonic() - origin) / 3600:.0f}/{hours:g} h: building {building:.1f} kW + EV "
            f"{ev_kw:.1f} kW against a limit of {manager.limit_kw():.1f} kW; {charging} connector(s) charging; "
            f"{energy:.1f} kWh delivered so far"
        )


async def _start_dashboard(cfg: Config, csms, store, bus: EventBus, clock: Clock, manager, say):
    """The operator API and dashboard on a free loopback port, with a token made for this run only."""
    from controller.api import ApiContext, ApiServer, LiveSite
    from controller.api.auth import new_token, token_digest

    token = new_token()
    data = cfg.model_dump()
    data["api"].update(enabled=True, host="127.0.0.1", port=0,
                       tokens=[{"name": "demo", "sha256": token_digest(token), "role": "operator"}])  # fmt: skip
    api_cfg = Config.model_validate(data)
    live = LiveSite(bus, clock, lambda: api_cfg, lambda: csms.connected)
    live.source = manager
    api = ApiServer(ApiContext(csms, store, bus, clock, lambda: api_cfg, live))
    await api.start()
    say(f"dashboard: {api.url}")
    say(f"dashboard token for this run: {token}")
    return api


def _build_report(
    cfg: Config,
    plan,
    site,
    summary,
    store,
    profiles,
    monitor,
    site_profile,
    *,
    site_end: datetime,
    hours: float,
    speed: float,
    chargers: int,
    connectors: int,
    workdir: Path,
    fresh: bool,
) -> DemoReport:
    """What the run measured, from the bus, the store and the simulator; also written to ``report.md``."""
    from evsite.cli.demo_report import write_report

    sent = accepted = 0
    while (item := profiles.get_nowait()) is not None:
        if item[1].at > site_end:  # load management still ran while the simulated chargers went away
            continue
        sent += 1
        accepted += item[1].status == "Accepted"
    site.ground_truth.finish()
    truth = site.ground_truth.report(*site.sessions_outcome(), speed)
    txs = store.transactions()
    meter_values = len(store.meter_values())

    service_kw = cfg.service.rating_kw * cfg.service.continuous_load_factor
    rows = [r for r in hourly_rows(monitor.samples, site_profile, service_kw) if r.hour < math.ceil(hours)]
    over = ev_over_limit_kw(monitor.samples, site_profile, lag_s=cfg.server.meter_value_sample_interval_s)
    report = DemoReport(
        chargers=chargers,
        connectors=chargers * connectors,
        simulated_hours=summary.simulated_hours,
        wall_s=summary.wall_s,
        chargers_without_lm=int(plan.nec["chargers_without_lm"]),
        chargers_with_lm=plan.chargers_with_lm,
        cost_per_day=plan.cost_per_day,
        profiles_sent=sent,
        profiles_accepted=accepted,
        transactions=len(txs),
        transactions_closed=sum(1 for t in txs if t.stop_time is not None),
        energy_kwh=summary.energy_kwh,
        meter_values=meter_values,
        ev_peak_over_limit_kw=over,
        ground_truth=truth,
        speed=speed,
        hours=rows,
        store_url=cfg.store.url,
        plan_dir=str(workdir / "plan"),
        samples=list(monitor.samples),
        fresh_store=fresh,
        ev_kwh_per_charger_day=float(plan.ev["energy_kwh_per_charger_day"]),
        ev_source=str(plan.ev.get("source", "")),
    )
    from evsite.cli.demo_report import plot_chargers

    power = [(m.cp_id, m.connector_id, m.timestamp, m.value)
             for m in store.meter_values(measurand="Power.Active.Import") if m.value is not None]  # fmt: skip
    limits = []
    for p in store.charging_profiles():
        sched = (p.profile or {}).get("chargingSchedule") or {}
        periods = sched.get("chargingSchedulePeriod") or []
        if p.action == "SetChargingProfile" and p.status == "Accepted" and periods:
            limits.append((p.cp_id, p.connector_id or 0, p.sent_at, float(periods[0]["limit"]),
                           sched.get("chargingRateUnit")))  # fmt: skip
    specs = {c.id: (c.voltage_v, c.phases) for c in cfg.chargers}
    plot_chargers(power, limits, specs, workdir / "chargers.png")
    report.report_path = str(write_report(report, report.samples, workdir))
    return report


def _limits_kw(profile: dict) -> np.ndarray:
    periods = profile["chargingSchedule"]["chargingSchedulePeriod"]
    return np.array([p["limit"] for p in periods], dtype=float) / 1000.0


def ev_over_limit_kw(samples: list[tuple[float, float, float]], profile: dict, lag_s: float) -> float:
    """Largest excess of EV power over the plan's limit (0 when never exceeded).

    A sample's EV power is the chargers' latest MeterValues, up to ``lag_s`` old, so a reading taken just
    after the limit dropped may still show the previous hour's power: it is held to the higher of the two.
    """
    if not samples:
        return 0.0
    arr = np.asarray(samples, dtype=float)
    limits = _limits_kw(profile)
    now_h = (arr[:, 0] // 3600).astype(int) % 24
    then_h = (np.maximum(arr[:, 0] - lag_s, 0.0) // 3600).astype(int) % 24
    bound = np.maximum(limits[now_h], limits[then_h])
    return float(max(0.0, np.max(arr[:, 2] - bound)))


def hourly_rows(samples: list[tuple[float, float, float]], profile: dict, service_kw: float) -> list[HourRow]:
    """Per simulated hour: mean building load, max EV power seen, and the plan's EV limit for that hour."""
    if not samples:
        return []
    arr = np.asarray(samples, dtype=float)
    hour = (arr[:, 0] // 3600).astype(int)
    limits_kw = _limits_kw(profile)
    rows = []
    for h in np.unique(hour):
        sel = hour == h
        rows.append(
            HourRow(
                hour=int(h),
                building_kw=float(np.nanmean(arr[sel, 1])),
                ev_kw_max=float(arr[sel, 2].max()),
                ev_limit_kw=float(limits_kw[int(h) % 24]),
                service_kw=service_kw,
            )
        )
    return rows
