"""A simulated site: many OCPP charge points in one process, the EV fleet plugging into them, a building meter.

Why one orchestrator: per-charger work must be cheap for a process to drive hundreds of chargers, so there is
one WebSocket (plus one sender task) per charger, one shared clock, and one *site step* that advances every
connector at once (``simulators.connectors.step`` over numpy arrays, the fleet's SoC through
``evsite.ev_fleet.FleetStepper``). Each step:

1. EVs whose arrival time has come take a free connector (Preparing, Authorize, StartTransaction); EVs whose
   departure time has come stop their transaction (EVDisconnected) and leave.
2. Every charger recomputes its connectors' composite limits from the profiles it holds (also while offline).
3. The vectorised power step: ``min(EV acceptance, composite limit, rating)``, ChargePointMaxProfile shared
   across a charger's connectors, SoC and energy registers integrated.
4. Status transitions become StatusNotifications; MeterValues and Heartbeats go out when due.

``run_simulation`` is the in-process API (``evsite simulate`` and ``evsite demo`` use it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from evsite.clock import Clock
from evsite.ev_fleet import Fleet, FleetStepper, seed_fleet
from evsite.log import log_event
from simulators import connectors as conn_model
from simulators.chargepoint import ChargerSpec, SimChargePoint
from simulators.connectors import FAULTED, RESERVED, UNAVAILABLE, ConnectorArrays
from simulators.ground_truth import GroundTruth
from simulators.meter import BuildingMeter, Publisher

logger = logging.getLogger("evsite.simulators.site")


@dataclass
class Summary:
    """What a simulation did; printed by ``evsite simulate`` when ``--hours`` have passed."""

    chargers: int
    connectors: int
    simulated_hours: float
    wall_s: float
    transactions_started: int
    transactions_stopped: int
    energy_kwh: float
    messages_sent: int
    messages_dropped_offline: int
    messages_pending: int
    reconnects: int
    profiles_accepted: int
    profiles_rejected: int
    evs_plugged: int
    evs_turned_away: int
    chargers_online: int
    meter_readings: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def format(self) -> str:
        rows = [
            ("chargers (online at end)", f"{self.chargers} ({self.chargers_online})"),
            ("connectors", f"{self.connectors}"),
            ("simulated / wall time", f"{self.simulated_hours:.2f} h / {self.wall_s:.1f} s"),
            ("transactions started / stopped", f"{self.transactions_started} / {self.transactions_stopped}"),
            ("energy delivered", f"{self.energy_kwh:.1f} kWh"),
            ("EVs plugged / turned away (no free connector)", f"{self.evs_plugged} / {self.evs_turned_away}"),
            (
                "messages sent / dropped offline / still queued",
                f"{self.messages_sent} / {self.messages_dropped_offline} / {self.messages_pending}",
            ),
            ("reconnects", f"{self.reconnects}"),
            ("profiles accepted / rejected", f"{self.profiles_accepted} / {self.profiles_rejected}"),
            ("building meter readings", f"{self.meter_readings}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def charger_specs(n: int, connectors: int = 2, prefix: str = "SIM", **kwargs: object) -> list[ChargerSpec]:
    """``n`` identical chargers named ``<prefix>0001``..."""
    return [ChargerSpec(cp_id=f"{prefix}{i + 1:04d}", connectors=connectors, **kwargs) for i in range(n)]  # type: ignore[arg-type]


class SimulatedSite:
    """Chargers + fleet + meter on one clock. ``await start()``, ``await step()`` (tests) or ``run(hours)``."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        specs: Sequence[ChargerSpec],
        fleet: Fleet | None = None,
        *,
        id_tags: Sequence[str] = ("SIM-TAG",),
        step_s: float = 10.0,
        seed: int = 0,
        fleet_origin: datetime | None = None,
        meter: BuildingMeter | None = None,
        meter_publish: Publisher | None = None,
        response_timeout_s: float = 30.0,
        backoff_base_s: float = 2.0,
    ) -> None:
        if not specs:
            raise ValueError("a simulated site needs at least one charger")
        self.clock = clock
        self.step_s = step_s
        self.id_tags = list(id_tags) or ["SIM-TAG"]
        self.rng = np.random.default_rng(seed)
        volt, ph, rating, group, owner, conn_no = [], [], [], [], [], []
        for g, s in enumerate(specs):
            for c in range(1, s.connectors + 1):
                volt.append(s.voltage_v)
                ph.append(s.phases)
                rating.append(s.max_current_a)
                group.append(g)
                owner.append(g)
                conn_no.append(c)
        self.arrays = ConnectorArrays.build(volt, ph, rating, group)
        self._owner = np.asarray(owner)
        self._conn_no = np.asarray(conn_no)
        self.chargers: list[SimChargePoint] = []
        index = 0
        for g, s in enumerate(specs):
            cp = SimChargePoint(
                s,
                url,
                clock,
                self.arrays,
                index,
                rng=random.Random(seed * 100_003 + g),
                response_timeout_s=response_timeout_s,
                backoff_base_s=backoff_base_s,
            )
            self.chargers.append(cp)
            index += s.connectors
        self.fleet = fleet if fleet is not None else seed_fleet(len(self.arrays), seed)
        for cp in self.chargers:
            cp.fleet = self.fleet
        self.stepper = FleetStepper(self.fleet)
        self._arrival_order = np.argsort(self.fleet.arrival_s, kind="stable")
        self._next_arrival = 0
        self.fleet_origin = fleet_origin or self.fleet.epoch or clock.now()
        self.meter = meter
        self.meter_publish = meter_publish
        self.evs_plugged = 0
        self.evs_turned_away = 0
        #: set by the caller to measure total load against the service limit (``ground_truth`` module)
        self.ground_truth: GroundTruth | None = None
        #: per EV of the fleet: a car that never resumes after a 0 A pause (``connectors.step``)
        self.no_resume = np.zeros(len(self.fleet), dtype=bool)
        self.plugged_evs: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._last_mono: float | None = None
        self._mono0 = clock.monotonic()
        self._wall0 = time.perf_counter()

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every charger's connection loop (and the meter); the caller drives ``step`` or ``run``."""
        self._mono0 = self.clock.monotonic()
        self._last_mono = self._mono0
        self._wall0 = time.perf_counter()
        for cp in self.chargers:
            self._tasks.append(asyncio.create_task(cp.run(), name=f"{cp.id}-run"))
        if self.meter is not None and self.meter_publish is not None:
            self._tasks.append(asyncio.create_task(self.meter.run(self.meter_publish), name="building-meter"))

    async def wait_online(self, timeout_s: float = 30.0) -> int:
        """Wait (real time) until every charger has booted (or was refused with a 404) or ``timeout_s``;
        returns how many are online."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            # A 404 (wrong path, unknown id) will not change by retrying: no need to wait out the timeout.
            if all(cp.online.is_set() or "HTTP 404" in (cp.last_error or "") for cp in self.chargers):
                break
            await asyncio.sleep(0.01)
        return sum(cp.online.is_set() for cp in self.chargers)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait (real time, at most ``timeout_s``) until connected chargers have delivered their outboxes.

        A clean stop sends what is queued rather than dropping it; offline chargers keep theirs (reported in
        the summary as still queued).
        """
        deadline = time.monotonic() + timeout_s
        while any(cp.pending and cp.online.is_set() for cp in self.chargers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        await asyncio.gather(*(cp.stop() for cp in self.chargers), return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def run(self, hours: float) -> Summary:
        """Step until ``hours`` of simulated time have passed, then stop cleanly and summarise."""
        if not self._tasks:
            await self.start()
        end = self._mono0 + hours * 3600.0
        due = self._mono0
        try:
            while self.clock.monotonic() < end:
                # Sleep to the next deadline (not a fixed step) so the work done in a step does not add drift.
                due = min(due + self.step_s, end)
                await self.clock.sleep(max(due - self.clock.monotonic(), 0.0))
                self.step()
            await self.drain()
            summary = self.summary()
        finally:
            await self.stop()
        summary.wall_s = time.perf_counter() - self._wall0
        return summary

    # ------------------------------------------------------------------------------------------ the step

    def fleet_time_s(self) -> float:
        return (self.clock.now() - self.fleet_origin).total_seconds()

    def step(self) -> None:
        """One site step over the time since the previous one (see the module docstring)."""
        mono = self.clock.monotonic()
        dt = mono - (self._last_mono if self._last_mono is not None else mono)
        self._last_mono = mono
        t = self.fleet_time_s()
        self._departures(t)
        self._arrivals(t)
        for cp in self.chargers:
            cp.refresh_limits()
        caps = np.array([cp.charge_point_cap_w() for cp in self.chargers])
        if dt > 0:
            codes = conn_model.step(self.arrays, self.stepper, t - dt, dt, caps, self.no_resume)
            for cp in self.chargers:
                cp.apply_step(codes)
            if self.ground_truth is not None:
                building = self.meter.power_kw_at(mono - dt / 2) if self.meter is not None else 0.0
                ev_kw = float(self.arrays.power_w.sum()) / 1000.0
                self.ground_truth.record(mono - self._mono0, dt, building, ev_kw)
        for cp in self.chargers:
            cp.tick()

    def _departures(self, t: float) -> None:
        a = self.arrays
        occupied = np.flatnonzero(a.ev_id >= 0)
        if occupied.size == 0:
            return
        leaving = occupied[self.fleet.departure_s[a.ev_id[occupied]] <= t]
        for i in leaving:
            self.chargers[self._owner[i]].ev_departed(int(self._conn_no[i]))

    def _arrivals(self, t: float) -> None:
        order, fleet, a = self._arrival_order, self.fleet, self.arrays
        start = self._next_arrival
        end = int(np.searchsorted(fleet.arrival_s[order], t, side="right"))
        if end <= start:
            return
        self._next_arrival = end
        arriving = order[start:end]
        arriving = arriving[fleet.departure_s[arriving] > t]
        if arriving.size == 0:
            return
        status = np.array([self.chargers[o].status[c] for o, c in zip(self._owner, self._conn_no, strict=True)])
        free = np.flatnonzero(~a.ev_present & (a.ev_id < 0) & ~np.isin(status, (FAULTED, RESERVED, UNAVAILABLE)))
        free = self.rng.permutation(free)
        n = min(len(free), len(arriving))
        self.evs_turned_away += len(arriving) - n
        for ev, i in zip(arriving[:n], free[:n], strict=True):
            a.ev_id[i] = ev
            if a.stuck is not None and a.charged is not None:
                a.stuck[i] = a.charged[i] = False
            cp = self.chargers[self._owner[i]]
            cp.ev_arrived(int(self._conn_no[i]), self.id_tags[int(ev) % len(self.id_tags)])
            self.evs_plugged += 1
            self.plugged_evs.append(int(ev))
        if len(arriving) > n:
            log_event(logger, "site_evs_turned_away", logging.DEBUG, count=len(arriving) - n, t_s=t)

    # ------------------------------------------------------------------------------------------ results

    def sessions_outcome(self) -> tuple[float, float, int, int]:
        """Energy requested and delivered (kWh, at the connector) and sessions (plugged, fully served).

        A car requests what takes it from its arrival SoC to its target, drawn from the grid (divided by the
        charging efficiency); it is served when it reached its target or is short by less than 0.1 kWh.
        """
        f = self.fleet
        evs = np.asarray(self.plugged_evs, dtype=np.int64)
        if evs.size == 0:
            return 0.0, float(self.arrays.energy_wh.sum() / 1000.0), 0, 0
        eff = np.where(f.efficiency[evs] > 0, f.efficiency[evs], 1.0)
        requested = np.maximum(f.soc_target[evs] - f.soc_initial[evs], 0.0) * f.capacity_kwh[evs] / eff
        got = np.maximum(f.soc[evs] - f.soc_initial[evs], 0.0) * f.capacity_kwh[evs] / eff
        served = int(np.sum(requested - got < 0.1))
        return float(requested.sum()), float(self.arrays.energy_wh.sum() / 1000.0), int(evs.size), served

    def summary(self) -> Summary:
        cs = [cp.counters for cp in self.chargers]
        return Summary(
            chargers=len(self.chargers),
            connectors=len(self.arrays),
            simulated_hours=(self.clock.monotonic() - self._mono0) / 3600.0,
            wall_s=time.perf_counter() - self._wall0,
            transactions_started=sum(c.transactions_started for c in cs),
            transactions_stopped=sum(c.transactions_stopped for c in cs),
            energy_kwh=float(self.arrays.energy_wh.sum() / 1000.0),
            messages_sent=sum(c.messages_sent for c in cs),
            messages_dropped_offline=sum(c.messages_dropped_offline for c in cs),
            messages_pending=sum(len(cp.pending) for cp in self.chargers),
            reconnects=sum(c.reconnects for c in cs),
            profiles_accepted=sum(c.profiles_accepted for c in cs),
            profiles_rejected=sum(c.profiles_rejected for c in cs),
            evs_plugged=self.evs_plugged,
            evs_turned_away=self.evs_turned_away,
            chargers_online=sum(cp.online.is_set() for cp in self.chargers),
            meter_readings=self.meter.published if self.meter is not None else 0,
        )


async def run_simulation(
    url: str,
    n_chargers: int,
    connectors: int,
    clock: Clock,
    hours: float,
    *,
    fleet: Fleet | None = None,
    meter: BuildingMeter | None = None,
    meter_publish: Publisher | None = None,
    id_tags: Sequence[str] = ("SIM-TAG",),
    seed: int = 0,
    step_s: float = 10.0,
    prefix: str = "SIM",
    **charger: object,
) -> Summary:
    """Run ``n_chargers`` simulated chargers against the central system at ``url`` for ``hours`` simulated.

    ``charger`` keyword arguments go to every ``ChargerSpec`` (voltage_v, phases, max_current_a,
    capabilities, meter_interval_s, password...).
    """
    site = SimulatedSite(
        url,
        clock,
        charger_specs(n_chargers, connectors, prefix, **charger),
        fleet,
        id_tags=id_tags,
        seed=seed,
        step_s=step_s,
        meter=meter,
        meter_publish=meter_publish,
    )
    return await site.run(hours)
