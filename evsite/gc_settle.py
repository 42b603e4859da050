"""Freeze the cyclic garbage collector's view of the heap once the charger connections have settled.

Why: with thousands of chargers connected, each session keeps a few hundred long-lived objects alive. Until a
full collection promotes them, the collector's older generations walk them again and again, and the pauses
(hundreds of ms at 10,000 chargers) land in the MeterValues latency tail. ``gc.freeze()`` moves every object
tracked so far into a permanent generation that no collection walks; done when the number of connects and
disconnects has not moved for a few seconds, it takes the settled sessions out of every later collection.

The price: reference cycles that are already garbage at the freeze, or that become garbage later among frozen
objects (a frozen session whose charger disconnects), are not reclaimed while frozen. So the freeze is undone
(``gc.unfreeze()``: the objects go back to the oldest generation, where the next full collection reclaims the
dead ones) as soon as the churn since the freeze exceeds a budget, and redone when things settle again. The
memory held back is bounded by that budget's worth of sessions.

``SettleFreeze`` is the pure decision (given a churn counter and the time); ``run_settle_freeze`` applies it.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from evsite.clock import Clock
from evsite.log import log_event

log = logging.getLogger("evsite.gc")

Action = Literal["freeze", "unfreeze"]


@dataclass
class SettleFreeze:
    """Decides when to freeze and unfreeze from a monotonic count of connection events (connects + drops).

    ``settle_s``: how long the count must stay unchanged before freezing. ``budget``: events since the freeze
    after which it is undone; at least ``min_budget``, else ``budget_share`` of the connections held at the
    freeze (so a site of 10,000 chargers tolerates ordinary churn without unfreezing every few minutes).
    """

    settle_s: float = 5.0
    min_budget: int = 50
    budget_share: float = 0.05
    frozen_at: int | None = None
    budget: int = 0
    _last: int = -1
    _since: float = 0.0
    _done_at: int = -1  # the count at the last freeze: no refreeze until something changed

    def step(self, events: int, connected: int, now_s: float) -> Action | None:
        """The action to take now, if any, given the event count and the connections held."""
        if events != self._last:
            self._last, self._since = events, now_s
        if self.frozen_at is not None:
            if events - self.frozen_at > self.budget:
                self.frozen_at = None
                return "unfreeze"
            return None
        if connected > 0 and events != self._done_at and now_s - self._since >= self.settle_s:
            self.frozen_at = self._done_at = events
            self.budget = max(self.min_budget, int(self.budget_share * connected))
            return "freeze"
        return None


async def run_settle_freeze(
    clock: Clock, events: Callable[[], int], connected: Callable[[], int], period_s: float = 1.0
) -> None:
    """Poll the counters every ``period_s`` and freeze / unfreeze the collector as ``SettleFreeze`` decides."""
    decide = SettleFreeze()
    while True:
        await clock.sleep(period_s)
        held = connected()
        action = decide.step(events(), held, clock.monotonic())
        if action == "freeze":
            gc.freeze()
            log_event(log, "gc_frozen", connected=held, frozen_objects=gc.get_freeze_count(), budget=decide.budget)
        elif action == "unfreeze":
            gc.unfreeze()
            log_event(log, "gc_unfrozen", connected=held)
