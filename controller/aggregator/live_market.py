"""The live hourly-market aggregator in ``evsite serve``: the simulation's control law on real chargers.

The same ``Tracker`` as ``evsite regulate`` (hourly offer, energy first, current modulation, few switches)
runs on a clock over the connectors of ``[[chargers]]``; ``service.LiveFleet`` turns the central system's
events into its view (plug-in from transactions, SoC from meter values, dead-reckoned from the setpoints in
between; departure estimated per id tag from the store's history, since OCPP 1.6 carries none). Each step
(``step_s``):

1. the events since the last step are applied and load management's latest envelope is taken
   (``limits.LimitGate`` on ``loadmgmt/limits``): its charging grant becomes the Tracker's ``limit_kw``, so
   no setpoint is planned above it and a connector without a grant is planned idle; its discharge bound
   becomes the car's discharge power (``fleet.p_discharge_kw``), and a car may be planned to discharge
   only where that bound reaches the minimum current (so never behind a charger that did not declare
   discharge, ``evsite.discharge``, nor beyond what the site can absorb);
2. at each clock hour (and at the first step) the base point and capacity are fixed for the hour and
   published on ``regulation/capacity``; the departure history is re-read from the store;
3. the newest signal sample (``regulation/signal``; older than ``signal_timeout_s``: 0, hold the base)
   sets the target; the changed setpoints go out as current limits (``ProfileDispatcher.apply_setpoints``,
   which checks the grant and the bidirectional flag a second time).
"""

from __future__ import annotations

import asyncio
import logging
import math

import numpy as np

from controller.aggregator.dispatch import ProfileDispatcher, can_discharge_mask
from controller.aggregator.limits import LimitGate
from controller.aggregator.service import CAPACITY_TOPIC, CapacityOffer, LiveFleet, run_every
from controller.aggregator.signal_source import BUS_TOPIC as SIGNAL_TOPIC
from controller.aggregator.tracker import REASONS, Step, Tracker, TrackerSettings
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.log import log_event
from planning.ssm import StateSpaceModel

logger = logging.getLogger("evsite.controller.aggregator.market")


class MarketService:
    """Runs ``Tracker`` on a clock against a ``LiveFleet``, inside load management's envelope."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        live: LiveFleet,
        model: StateSpaceModel,
        dispatcher: ProfileDispatcher,
        gate: LimitGate,
        *,
        settings: TrackerSettings | None = None,
        step_s: float = 2.0,
        signal_timeout_s: float = 30.0,
        model_dt_s: float = 4.0,
        refresh_s: float | None = None,
    ) -> None:
        self.bus, self.clock, self.live, self.dispatcher, self.gate = bus, clock, live, dispatcher, gate
        self.step_s, self.signal_timeout_s = step_s, signal_timeout_s
        self.tracker = Tracker(live.fleet, model, settings or TrackerSettings(),
                               departure_est_s=live.fleet.departure_s,
                               can_discharge=can_discharge_mask(live.connectors), model_dt_s=model_dt_s)  # fmt: skip
        self._ocpp = bus.subscribe(topics.OCPP_ALL)
        self._signal = bus.subscribe(SIGNAL_TOPIC)
        self.signal_value = 0.0
        self._signal_at = -math.inf
        self._hour: tuple[int, int, int, int] | None = None
        self.offer: CapacityOffer | None = None
        self._declared = can_discharge_mask(live.connectors)  # the operator's [[chargers]] bidirectional flag
        self._last_t: float | None = None
        #: re-send an unchanged setpoint this often (None: never). Load management ignores a setpoint older than
        #: a live profile's validity (it takes the aggregator for stopped), so a steady one must be repeated.
        self.refresh_s = refresh_s
        self._sent_at = np.full(len(live.connectors), -np.inf)

    def _drain(self, t: float) -> None:
        f, tr = self.live.fleet, self.tracker
        if self._last_t is not None:  # what the setpoints in force moved since the last step
            tr.dead_reckon(t - self._last_t)
        self._last_t = t
        soc_before = f.soc.copy()
        while (item := self._ocpp.get_nowait()) is not None:
            self.live.on_event(item[1], t)
        while (item := self._signal.get_nowait()) is not None:
            self.signal_value, self._signal_at = float(item[1].value), t
        online = f.online(t)
        came = online & ~tr.online
        tr.observe_online(online, t)
        # a car that just plugged in draws what its charger allows, not the 0 kW of an empty slot: its first
        # setpoint must go out even if it equals the view's 0 (``step_once`` sends what was never sent)
        self._sent_at[came] = -np.inf
        tr.departure_est_s[:] = self.live.departure_est_s
        read = np.flatnonzero(f.soc != soc_before)
        tr.observe_soc(read, f.soc[read])
        self.gate.poll()
        refs = self.live.connectors
        tr.limit_kw = self.gate.limit_kw(refs)
        f.p_discharge_kw[:] = np.minimum(self.live.rated_discharge_kw, self.gate.discharge_kw(refs))
        tr.can_discharge = self._declared & (f.p_discharge_kw >= np.maximum(f.p_min_kw, 1e-6))

    async def step_once(self) -> Step:
        """One step at the clock's current time: events and grant, the hour's offer, decision, dispatch."""
        t = self.clock.monotonic()
        self._drain(t)
        now = self.clock.now()
        hour = (now.year, now.month, now.day, now.hour)
        tr = self.tracker
        planned: Step | None = None
        if hour != self._hour:
            refresh = getattr(self.live.estimate, "refresh", None)
            if refresh is not None and self._hour is not None:  # the stays that ended in the last hour
                await asyncio.to_thread(refresh)
            o, planned = tr.offer(t, 3600.0 - (now.minute * 60 + now.second))
            online = int(tr.online.sum())
            self.offer = CapacityOffer(now, o.base_kw, o.capacity_kw, o.up_kw, o.down_kw, online)
            self.bus.publish(CAPACITY_TOPIC, self.offer)
            log_event(logger, "regulation_capacity_declared", base_kw=round(o.base_kw, 1),
                      capacity_kw=round(o.capacity_kw, 1), required_kw=round(o.required_kw, 1),
                      online=online)  # fmt: skip
            self._hour = hour
        assert self.offer is not None
        before = tr.sent_kw.copy()
        value = self.signal_value if t - self._signal_at <= self.signal_timeout_s else 0.0
        target = self.offer.base_kw + value * self.offer.capacity_kw
        step = tr.decide(t, target)
        changed, reasons = step.changed, [REASONS[r] for r in step.reason]
        if planned is not None and planned.changed.size:  # the hour's mode plan goes out with the first step
            extra = np.setdiff1d(planned.changed, changed)
            changed = np.concatenate([changed, extra])
            reasons += [REASONS[r] for r in planned.reason[np.isin(planned.changed, extra)]]
        due = self._sent_at == -np.inf  # never sent since the car plugged in (or its last one failed)
        if self.refresh_s is not None:
            due |= t - self._sent_at >= self.refresh_s
        stale = np.setdiff1d(np.flatnonzero(tr.online & due), changed)
        changed = np.concatenate([changed, stale])
        reasons += ["refresh of an unchanged setpoint"] * stale.size
        self._sent_at[changed] = t
        result = await self.dispatcher.apply_setpoints(changed, tr.sent_kw[changed], reasons)
        for cp_id, connector_id, _ in result.failed:  # not applied: the view keeps the setpoint in force
            i = self.live.index[(cp_id, connector_id)]
            tr.sent_kw[i] = before[i]
            self._sent_at[i] = -np.inf
        log_event(logger, "regulation_step", signal=round(value, 4), target_kw=round(target, 1),
                  switches=int(step.switched.size), sent=result.sent, refused=result.refused,
                  failed=len(result.failed))  # fmt: skip
        return step

    async def run(self) -> None:
        """Step every ``step_s`` on the clock until cancelled (a slow step is not made up for)."""
        await run_every(self.clock, self.step_s, self.step_once)
