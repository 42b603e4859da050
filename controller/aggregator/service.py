"""The live aggregator: the cars behind real OCPP chargers follow the regulation signal.

Why this shape: the decision (``core.RegulationController``) and the dispatch (``dispatch.ProfileDispatcher``)
are the same as in the simulation; what the live site adds is *where the fleet state comes from*. The
central system publishes its events on the bus (``controller.events``); ``LiveFleet`` keeps one EV slot
per configured connector up to date from them:

- ``ocpp/transaction`` started: a car is plugged in (online from now, charging, departure assumed after
  ``LiveDefaults.dwell_h`` since OCPP 1.6 carries no departure time); stopped: it left.
- ``ocpp/meter`` with a SoC reading: the slot's SoC (between readings the SoC is dead-reckoned from the
  commanded power with the fleet simulator's physics, and corrected at the next reading).
- ``ocpp/status`` Available/Unavailable/Faulted, or ``ocpp/connection`` disconnected: not controllable.

``RegulationService.run`` then, every ``step_s`` on the given clock: applies the queued events, takes the
newest signal sample from ``regulation/signal`` (``signal_source.SignalSubscriber`` puts it there; a
sample older than ``signal_timeout_s`` counts as 0, i.e. hold the base point), re-declares base point and
capacity every ``capacity_horizon_s`` (published on ``regulation/capacity``), decides, and dispatches.
A car whose profile failed keeps its previous commanded mode, so the model never believes in a switch
that did not happen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from controller import events as ev
from controller.aggregator.core import Decision, RegulationController
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher, Send, can_discharge_mask
from controller.aggregator.signal_source import BUS_TOPIC as SIGNAL_TOPIC
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.ev_fleet import CHARGING, Fleet, FleetStepper
from evsite.log import log_event
from evsite.site_state import RegulationSetpoint
from planning.ssm import StateSpaceModel

logger = logging.getLogger("evsite.controller.aggregator")

CAPACITY_TOPIC = topics.REGULATION_CAPACITY
_OFFLINE_STATUSES = {"Available", "Unavailable", "Faulted"}


@dataclass(frozen=True)
class LiveDefaults:
    """What OCPP 1.6 does not tell about a car: assumed until (if ever) a reading says otherwise."""

    capacity_kwh: float = 60.0
    efficiency: float = 0.9
    soc: float = 0.5
    soc_target: float = 0.8
    dwell_h: float = 8.0


@dataclass(frozen=True, slots=True)
class CapacityOffer:
    """The base point and the symmetric regulation capacity declared for the next interval (kW, injection +)."""

    at: datetime
    base_kw: float
    capacity_kw: float
    up_kw: float
    down_kw: float
    online: int


class LiveFleet:
    """One EV slot per connector (index = position in ``connectors``), fed by the central system's events."""

    def __init__(self, connectors: Sequence[ConnectorRef], defaults: LiveDefaults | None = None) -> None:
        self.connectors = list(connectors)
        self.defaults = d = defaults or LiveDefaults()
        n = len(self.connectors)
        self.index = {(r.cp_id, r.connector_id): i for i, r in enumerate(self.connectors)}
        p = np.array([r.power_kw(r.max_current_a) for r in self.connectors], dtype=float)
        self.fleet = Fleet(
            arrival_s=np.full(n, np.inf),
            departure_s=np.full(n, -np.inf),
            capacity_kwh=np.full(n, d.capacity_kwh),
            p_charge_kw=p,
            p_discharge_kw=p.copy(),
            efficiency=np.full(n, d.efficiency),
            soc=np.full(n, d.soc),
            soc_target=np.full(n, d.soc_target),
            mode=np.zeros(n, dtype=np.int8),
        )

    def _leave(self, i: int, t_s: float) -> None:
        self.fleet.departure_s[i] = min(self.fleet.departure_s[i], math.nextafter(t_s, -math.inf))

    def on_event(self, payload: object, t_s: float) -> bool:
        """Apply one central-system event at time ``t_s``; True when it concerned a known connector."""
        f = self.fleet
        if isinstance(payload, ev.ConnectionEvent):
            if payload.connected:
                return False
            hit = [i for (cp, _), i in self.index.items() if cp == payload.cp_id]
            for i in hit:
                self._leave(i, t_s)
            return bool(hit)
        i = self.index.get((getattr(payload, "cp_id", None), getattr(payload, "connector_id", None)))
        if i is None:
            return False
        if isinstance(payload, ev.TransactionEvent):
            if payload.kind == "started":
                f.arrival_s[i] = t_s
                f.departure_s[i] = t_s + self.defaults.dwell_h * 3600.0
                f.soc[i] = self.defaults.soc
                f.mode[i] = CHARGING
            else:
                self._leave(i, t_s)
            return True
        if isinstance(payload, ev.MeterEvent):
            if payload.soc_pct is not None and 0.0 <= payload.soc_pct <= 100.0:
                f.soc[i] = payload.soc_pct / 100.0
            return True
        if isinstance(payload, ev.StatusEvent):
            if payload.status in _OFFLINE_STATUSES:
                self._leave(i, t_s)
            return True
        return False


class RegulationService:
    """Runs the aggregator on a clock against a ``LiveFleet``; see the module docstring."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        live: LiveFleet,
        model: StateSpaceModel,
        dispatcher: ProfileDispatcher,
        *,
        step_s: float = 4.0,
        capacity_horizon_s: float = 300.0,
        safety_margin: float = 0.1,
        signal_timeout_s: float = 30.0,
        boundary: bool = True,
    ) -> None:
        self.bus, self.clock, self.live, self.dispatcher = bus, clock, live, dispatcher
        self.step_s, self.capacity_horizon_s = step_s, capacity_horizon_s
        self.safety_margin, self.signal_timeout_s = safety_margin, signal_timeout_s
        self.ctrl = RegulationController(live.fleet, model, can_discharge=can_discharge_mask(live.connectors),
                                         boundary=boundary)  # fmt: skip
        self._stepper = FleetStepper(live.fleet)
        self._ocpp = bus.subscribe(topics.OCPP_ALL)
        self._signal = bus.subscribe(SIGNAL_TOPIC)
        self.signal_value = 0.0
        self._signal_at = -math.inf
        self._next_declare = -math.inf
        self.offer: CapacityOffer | None = None
        self._last_t: float | None = None

    def _drain(self, t: float) -> None:
        while (item := self._ocpp.get_nowait()) is not None:
            self.live.on_event(item[1], t)
        while (item := self._signal.get_nowait()) is not None:
            self.signal_value, self._signal_at = float(item[1].value), t

    def _declare(self, t: float) -> None:
        p_now, up, down = self.ctrl.capacity(t, self.capacity_horizon_s, self.step_s)
        base = p_now + (up - down) / 2.0
        cap = max((up + down) / 2.0 * (1.0 - self.safety_margin), 0.0)
        online = int(self.live.fleet.online(t).sum())
        self.offer = CapacityOffer(self.clock.now(), base, cap, up, down, online)
        self.bus.publish(CAPACITY_TOPIC, self.offer)
        log_event(logger, "regulation_capacity_declared", base_kw=round(base, 1), capacity_kw=round(cap, 1),
                  up_kw=round(up, 1), down_kw=round(down, 1), online=online)  # fmt: skip
        self._next_declare = t + self.capacity_horizon_s

    async def step_once(self) -> Decision:
        """One control step at the clock's current time: events, signal, (re-)declaration, decision, dispatch."""
        t = self.clock.monotonic()
        if self._last_t is not None:  # dead-reckon the SoCs over the step that just ended
            self.live.fleet.mode[:] = self.ctrl.commanded
            self._stepper.step(self._last_t, t - self._last_t)
        self._last_t = t
        self._drain(t)
        if t >= self._next_declare:
            self._declare(t)
        assert self.offer is not None
        value = self.signal_value
        if t - self._signal_at > self.signal_timeout_s:
            value = 0.0  # no fresh signal: hold the base point
        target = self.offer.base_kw + value * self.offer.capacity_kw
        before = self.ctrl.commanded.copy()
        d = self.ctrl.decide(t, target)
        result = await self.dispatcher.apply(d.changed, d.new_mode, d.reason)
        for cp_id, connector_id, _ in result.failed:  # the switch did not happen: keep the model honest
            i = self.live.index[(cp_id, connector_id)]
            self.ctrl.commanded[i] = before[i]
        log_event(logger, "regulation_step", signal=round(value, 4), target_kw=round(target, 1),
                  predicted_kw=round(d.predicted_kw, 1), online=d.ne, switches=int(d.changed.size),
                  sent=result.sent, failed=len(result.failed))  # fmt: skip
        return d

    async def run(self) -> None:
        """Step every ``step_s`` on the clock until cancelled (a slow step is not made up for)."""
        await run_every(self.clock, self.step_s, self.step_once)


async def run_every(clock: Clock, step_s: float, step: Callable[[], Awaitable[object]]) -> None:
    """Await ``step`` every ``step_s`` on ``clock`` until cancelled; a slow step is not made up for."""
    next_t = clock.monotonic()
    while True:
        await step()
        next_t = max(next_t + step_s, clock.monotonic())
        await clock.sleep(next_t - clock.monotonic())


def service_from_config(
    config: Config,
    bus: EventBus,
    clock: Clock,
    send: Send,
    model: StateSpaceModel | None = None,
    defaults: LiveDefaults | None = None,
    via_load_management: bool = False,
):
    """The live aggregator for a site (``live_market.MarketService``): one slot per ``[[chargers]]`` connector,
    ``[regulation]`` settings, inside load management's envelope (``loadmgmt/limits``).

    ``via_load_management``: load management runs, so setpoints go to it on ``regulation/setpoints`` and it
    sends them inside its own live profile (one writer per connector); otherwise profiles are sent directly.

    ``send`` is ``CentralSystem.send``. Without ``model``, A is estimated in test mode on a simulated fleet of
    the seed study (a stand-in until the site has its own history; ``StateSpaceModel.load`` a saved one).
    Start it with ``asyncio.create_task(service.run())`` next to a ``SignalSubscriber``.
    """
    from controller.aggregator.dispatch import connectors_from_config
    from controller.aggregator.limits import LimitGate
    from controller.aggregator.live_market import MarketService
    from controller.aggregator.tracker import TrackerSettings
    from evsite.ev_fleet import seed_fleet
    from planning.ssm_estimate import estimate_model

    rc = config.regulation
    refs = connectors_from_config(config.chargers)
    if model is None:
        model = estimate_model(seed_fleet(2000, config.simulation.seed), ns=rc.soc_bins,
                               learning_rate=rc.learning_rate, duration_s=900.0, dt_s=rc.step_s)  # fmt: skip
    elif model.ns != rc.soc_bins:
        raise ValueError(f"the model has {model.ns} SoC bins but [regulation] soc_bins is {rc.soc_bins}")
    live = LiveFleet(refs, defaults)
    gate = LimitGate(bus)
    settings = TrackerSettings(soc_force_charge=rc.soc_force_charge, slack_margin_s=rc.slack_margin_s,
                               min_hold_s=rc.min_hold_s, soc_cv=rc.soc_cv, safety_margin=rc.safety_margin,
                               departure_sd_s=rc.departure_sd_s, early_share=rc.early_share)  # fmt: skip
    publish = None
    if via_load_management:

        def publish(cp_id: str, connector_id: int, limit_a: float, reason: str) -> None:
            bus.publish(topics.REGULATION_SETPOINTS, RegulationSetpoint(cp_id, connector_id, limit_a, reason,
                                                                        clock.now()))  # fmt: skip

    dispatcher = ProfileDispatcher(send, refs, gate=gate, publish=publish)
    return MarketService(bus, clock, live, model, dispatcher, gate, settings=settings,
                         step_s=rc.step_s, model_dt_s=rc.step_s)  # fmt: skip
