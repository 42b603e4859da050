"""The live aggregator's view of the site and its wiring: the cars behind real OCPP chargers.

Why this shape: the decision (``tracker.Tracker``, run by ``live_market.MarketService``) and the dispatch
(``dispatch.ProfileDispatcher``) are the same as in the simulation; what the live site adds is *where the
fleet state comes from*. The central system publishes its events on the bus (``controller.events``);
``LiveFleet`` keeps one EV slot per configured connector up to date from them:

- ``ocpp/transaction`` started: a car is plugged in (online from now); its departure is *estimated*, since
  OCPP 1.6 carries none: by ``departure_estimator`` from the store's closed transactions per id tag (the
  same ``planning.allocation.departure.DepartureHistory`` load management uses: the tag's median stay on
  that day type, then the site's, then ``[site] departure_default_h``). Stopped: it left.
- ``ocpp/meter`` with a SoC reading: the slot's SoC.
- ``ocpp/status`` Available/Unavailable/Faulted, or ``ocpp/connection`` disconnected: not controllable.

Being plugged in and the estimated departure are kept apart: a car that stays past its estimate is still
online (it is then charged for its need first, its slack being gone).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from controller import events as ev
from controller.aggregator.dispatch import ConnectorRef, ProfileDispatcher, Send
from evsite import topics
from evsite.bus import EventBus
from evsite.clock import Clock
from evsite.config import Config
from evsite.ev_fleet import CHARGING, Fleet
from evsite.log import log_event
from evsite.site_state import RegulationSetpoint
from planning.ssm import StateSpaceModel

#: ``(id_tag, plugged in at) -> (estimated stay in s, what the estimate rests on)``
StayEstimator = Callable[[str | None, datetime], tuple[float, str]]

logger = logging.getLogger("evsite.controller.aggregator")

CAPACITY_TOPIC = topics.REGULATION_CAPACITY
_OFFLINE_STATUSES = {"Available", "Unavailable", "Faulted"}


@dataclass(frozen=True)
class LiveDefaults:
    """What OCPP 1.6 does not tell about a car: assumed until (if ever) a reading says otherwise.
    ``dwell_h``: the stay assumed when ``LiveFleet`` has no estimator (tests); ``evsite serve`` estimates."""

    capacity_kwh: float = 60.0
    efficiency: float = 0.9
    soc: float = 0.5
    soc_target: float = 0.8
    dwell_h: float = 8.0
    #: the chargers' minimum current (A per phase, IEC 61851: 6 A): below it a car neither charges nor feeds
    min_current_a: float = 6.0


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

    def __init__(
        self,
        connectors: Sequence[ConnectorRef],
        defaults: LiveDefaults | None = None,
        estimate: StayEstimator | None = None,
    ) -> None:
        self.connectors = list(connectors)
        self.defaults = d = defaults or LiveDefaults()
        self.estimate = estimate
        n = len(self.connectors)
        self.index = {(r.cp_id, r.connector_id): i for i, r in enumerate(self.connectors)}
        p = np.array([r.power_kw(r.max_current_a) for r in self.connectors], dtype=float)
        #: the connectors' rated discharge power (kW); ``fleet.p_discharge_kw`` is this within the envelope
        self.rated_discharge_kw = p.copy()
        #: estimated departure of each car (same time base as ``fleet``; -inf when none plugged) and why
        self.departure_est_s = np.full(n, -np.inf)
        self.departure_basis = [""] * n
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
            p_min_kw=np.array([r.power_kw(min(d.min_current_a, r.max_current_a)) for r in self.connectors]),
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
                f.departure_s[i] = np.inf  # plugged in until the transaction stops
                stay_s, basis = (self.defaults.dwell_h * 3600.0, "assumed dwell") if self.estimate is None else (
                    self.estimate(payload.id_tag, payload.at))  # fmt: skip
                self.departure_est_s[i], self.departure_basis[i] = t_s + stay_s, basis
                f.soc[i] = self.defaults.soc
                f.mode[i] = CHARGING
                log_event(logger, "regulation_departure_estimated", cp_id=payload.cp_id,
                          connector_id=payload.connector_id, stay_h=round(stay_s / 3600.0, 2), basis=basis)  # fmt: skip
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
    store: Any | None = None,
):
    """The live aggregator for a site (``live_market.MarketService``): one slot per ``[[chargers]]`` connector,
    ``[regulation]`` settings, inside load management's envelope (``loadmgmt/limits``).

    ``via_load_management``: load management runs, so setpoints go to it on ``regulation/setpoints`` and it
    sends them inside its own live profile (one writer per connector); otherwise profiles are sent directly.

    ``send`` is ``CentralSystem.send``; ``store`` (``controller.store.Store``) gives the departure estimates
    their history (``departure_estimator``). Without ``model``, A is estimated in test mode on a simulated fleet of
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
    defaults = defaults or LiveDefaults(min_current_a=config.site.min_current_a)
    live = LiveFleet(refs, defaults, departure_estimator(config, store))
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
    # through load management a setpoint lapses after a live profile's validity: repeat it well within
    refresh = config.site.profile_validity_s / 3.0 if via_load_management else None
    return MarketService(bus, clock, live, model, dispatcher, gate, settings=settings,
                         step_s=rc.step_s, model_dt_s=rc.step_s, refresh_s=refresh)  # fmt: skip


def departure_estimator(config: Config, store: Any | None) -> StayEstimator:
    """Stays per id tag from ``store``'s closed transactions, read now (``refresh()`` re-reads them), else the
    site's median, else ``[site] departure_default_h``: ``planning.allocation.departure``, as load management."""
    return _HistoryEstimator(config.site.timezone, config.site.departure_default_h * 3600.0, store)


class _HistoryEstimator:
    """A ``StayEstimator`` over a ``DepartureHistory`` read from the store (empty without one)."""

    def __init__(self, tz: str, default_s: float, store: Any | None) -> None:
        self.tz, self.default_s, self.store = tz, default_s, store
        self.refresh()

    def refresh(self) -> None:
        from planning.allocation.departure import DepartureHistory

        rows = [] if self.store is None else [(t.id_tag, t.start_time, t.stop_time) for t in self.store.transactions()]
        self.history = DepartureHistory.from_stays(rows, self.tz)
        log_event(logger, "regulation_departure_history", stays=len(self.history.stay_s))

    def __call__(self, id_tag: str | None, at: datetime) -> tuple[float, str]:
        import pandas as pd

        est = self.history.estimate(id_tag or "", pd.Timestamp(at), site_default_s=self.default_s)
        return est.stay_s, est.basis
